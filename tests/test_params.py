"""The factor parameters, declared once: the same bounds in code and in the settings,
the rules between fields in one place, and ``model`` tags that do not move."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from factorcast.factors import FactorParams
from factorcast.strategy.app.settings import ConfigError, load_settings

#: Tags computed before the parameters moved into one declaration: a tag is on every
#: published signal (``model``), and the same parameters must keep the same tag.
PINNED_TAGS = [
    ({}, "fc6-v1+f10d7f4adf"),
    ({"beta_window": 120, "beta_min_obs": 60}, "fc6-v1+6e9529f54b"),
    (
        {"weighting": "adv", "scaling": "rank", "winsor_k": 1.5, "clip": 2.0},
        "fc6-v1+3b17d9e3af",
    ),
    (
        {
            "beta_window": 3,
            "beta_min_obs": 3,
            "size_window": 3,
            "size_min_obs": 2,
            "momentum_lag": 1,
            "value_lag": 2,
            "volatility_window": 3,
            "volatility_min_obs": 3,
            "liquidity_window": 3,
            "liquidity_min_obs": 2,
        },
        "fc6-v1+e9be093923",
    ),
]


@pytest.mark.parametrize(("fields", "tag"), PINNED_TAGS)
def test_tags_do_not_change(fields: dict[str, Any], tag: str) -> None:
    assert FactorParams(**fields).tag() == tag
    # the settings build the same dataclass, with the same tag
    assert load_settings(factors=fields).factors.tag() == tag


def test_settings_hold_the_dataclass_itself() -> None:
    settings = load_settings(factors={"beta_window": "120", "beta_min_obs": 60, "winsor_k": 3})
    assert type(settings.factors) is FactorParams
    assert settings.factors == FactorParams(beta_window=120, beta_min_obs=60)
    assert load_settings().factors == FactorParams()


#: Per field, a value just outside its bound (and, for literals, a word not allowed).
OUTSIDE = {
    "beta_window": 1,
    "beta_min_obs": 1,
    "size_window": 1,
    "size_min_obs": 1,
    "momentum_lag": 0,
    "value_lag": 0,
    "volatility_window": 1,
    "volatility_min_obs": 1,
    "liquidity_window": 1,
    "liquidity_min_obs": 1,
    "weighting": "market_cap",
    "scaling": "minmax",
    "winsor_k": 0.0,
    "clip": -1.0,
}


#: sections of their own inside ``factors``, with their own tests below
SECTIONS = {"analytics"}


def test_every_field_has_a_bound_checked() -> None:
    assert set(OUTSIDE) == {f.name for f in dataclasses.fields(FactorParams)} - SECTIONS


@pytest.mark.parametrize(("field", "value"), OUTSIDE.items())
def test_one_bound_for_code_and_configuration(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        FactorParams(**{field: value})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=rf"^config error: factors\.{field}: "):
        load_settings(factors={field: value})


def test_the_lowest_values_allowed() -> None:
    lowest = FactorParams(
        beta_window=2,
        beta_min_obs=2,
        size_window=2,
        size_min_obs=2,
        momentum_lag=1,
        value_lag=2,
        volatility_window=2,
        volatility_min_obs=2,
        liquidity_window=2,
        liquidity_min_obs=2,
        winsor_k=1e-9,
        clip=1e-9,
    )
    assert load_settings(factors=dataclasses.asdict(lowest)).factors == lowest


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"beta_min_obs": 300}, "beta_min_obs must be between 2 and beta_window (252), got 300"),
        ({"size_window": 50}, "size_min_obs must be between 2 and size_window (50), got 100"),
        ({"liquidity_window": 10}, "liquidity_min_obs must be between 2 and liquidity_window"),
        ({"volatility_min_obs": 22}, "volatility_min_obs must be between 2 and"),
        ({"value_lag": 63}, "value_lag (63) must be greater than momentum_lag (63)"),
        ({"momentum_lag": 300}, "value_lag (252) must be greater than momentum_lag (300)"),
    ],
)
def test_rules_between_fields(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        FactorParams(**fields)
    with pytest.raises(ConfigError) as raised:
        load_settings(factors=fields)
    assert str(raised.value).startswith("config error: factors: " + message)


def test_unknown_field_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^config error: factors\.nope: "):
        load_settings(factors={"nope": 1})


# -- factors.analytics, health, risk -------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"factors": {"analytics": {"factors": []}}}, "factors.analytics: factors: name at least"),
        ({"factors": {"analytics": {"factors": ["size", "size"]}}}, "a factor is named twice"),
        ({"factors": {"analytics": {"factors": ["size", "nope"]}}}, "unknown factor(s) nope"),
        ({"health": {"horizons": [4, 16]}}, "health: horizons must include 1"),
        ({"health": {"horizons": [1, 0]}}, "health.horizons.1: Input should be greater"),
        ({"health": {"window": 20, "min_obs": 30}}, "health: min_obs must be between 2 and window"),
        ({"health": {"t_enter": 1.0, "t_exit": 1.5}}, "t_exit must be between 0 and t_enter"),
        ({"risk": {"half_life": 0}}, "risk.half_life: Input should be greater than 0"),
        ({"risk": {"window": 50, "min_obs": 60}}, "risk: min_obs must be between 1 and window"),
    ],
)
def test_analytics_settings_are_checked(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(**overrides)
    text = str(raised.value)
    assert text.startswith("config error: ") and "\n" not in text
    assert message in text


def test_the_analytics_factors_leave_the_model_tag_alone() -> None:
    """They change what is computed from the exposures, never the exposures."""
    plain = load_settings()
    subset = load_settings(factors={"analytics": {"factors": ["size", "momentum"]}})
    assert subset.factors.analytics.factors == ("size", "momentum")
    assert subset.factors.tag() == plain.factors.tag()
    assert load_settings(factors={"beta_window": 200}).factors.tag() != plain.factors.tag()
