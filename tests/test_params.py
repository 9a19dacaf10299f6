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
SECTIONS = {"analytics", "custom"}


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


# -- factors.custom (ANALYTICS.md section 9) ------------------------------------------------


def _custom(**spec: Any) -> dict[str, Any]:
    return {"custom": {"rev": spec}}


@pytest.mark.parametrize(
    ("factors", "message"),
    [
        (_custom(expr="-1 * ts_sum(retuns, 24)"), "factors.custom.rev.expr: column 13: unknown"),
        (
            _custom(expr="ts_sum(returns)"),
            "factors.custom.rev.expr: column 1: ts_sum(x, d) takes 2",
        ),
        (_custom(expr="ts_sum(returns, 2.5)"), "factors.custom.rev.expr: column 17: the window d"),
        (_custom(expr="ts_mean(close, 0)"), "factors.custom.rev.expr: column 16: the window d"),
        (_custom(expr="delay(close, -3)"), "factors.custom.rev.expr: column 14: the window d"),
        ({"custom": {"market": {"expr": "close"}}}, "factors.custom.market: the name is already"),
        ({"custom": {"close": {"expr": "open"}}}, "factors.custom.close: the name is an input"),
        ({"custom": {"Rev": {"expr": "close"}}}, "factors.custom.Rev: a factor name must be"),
        (_custom(expr="close", colour="red"), "factors.custom.rev.colour: Unexpected keyword"),
        (_custom(mode="plugin"), "factors.custom.rev.class: mode 'plugin' needs class"),
        (_custom(mode="plugin", **{"class": "nodots"}), "factors.custom.rev.class: expected"),
        (_custom(mode="model", expr="close"), "factors.custom.rev.path: mode 'model' needs path"),
        (_custom(expr="close", path="m.json"), "factors.custom.rev.path: not a key of mode 'expr'"),
        (_custom(mode="magic"), "factors.custom.rev.mode: Input should be"),
        (_custom(expr="close", weight=-0.1), "factors.custom.rev.weight: Input should be greater"),
        (_custom(expr="close", direction=2), "factors.custom.rev.direction: Input should be"),
        (_custom(expr="close", words=["losers"]), "factors.custom.rev.words"),
        (_custom(expr="close", weight=0.5), "add up to 1.5: at most 1"),
    ],
)
def test_custom_factors_are_checked_with_errors_naming_the_field(
    factors: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(factors=factors)
    text = str(raised.value)
    assert text.startswith("config error: ") and "\n" not in text
    assert message in text, text


def test_custom_factors_join_the_view_the_warm_up_and_the_analytics_choice() -> None:
    st = load_settings(
        factors={
            "custom": {
                "rev": {"expr": "-1 * ts_sum(returns, 300)", "weight": 0.1, "direction": -1},
                "hl": {"expr": "(high - low) / close"},
            },
            "analytics": {"factors": ["size", "rev"]},
        },
        signals={"weights": {"market": 0.1}},
    )
    assert list(st.factors.custom) == ["rev", "hl"]
    assert st.factors.history_bars == 301  # the expression's 300 bars and the bar itself
    view = st.signals.to_view(st.factors.custom)
    assert view.names[6:] == ("rev", "hl")
    assert list(view.weights[6:]) == [0.1, 0.0] and list(view.directions[6:]) == [-1.0, 1.0]
    with pytest.raises(ConfigError, match=r"factors\.analytics\.factors: unknown factor\(s\) hl2"):
        load_settings(
            factors={"custom": {"hl": {"expr": "high"}}, "analytics": {"factors": ["hl2"]}}
        )


def test_the_model_tag_follows_the_custom_factors_definitions() -> None:
    plain = load_settings().factors.tag()
    one = load_settings(factors=_custom(expr="-1 * ts_sum(returns, 24)")).factors.tag()
    respaced = load_settings(factors=_custom(expr="-1*ts_sum( (returns) ,24)")).factors.tag()
    other = load_settings(factors=_custom(expr="-1 * ts_sum(returns, 25)")).factors.tag()
    viewed = load_settings(
        factors=_custom(expr="-1 * ts_sum(returns, 24)", weight=0.0, direction=-1, words=["a", "b"])
    ).factors.tag()
    renamed = load_settings(
        factors={"custom": {"rev2": {"expr": "-1 * ts_sum(returns, 24)"}}}
    ).factors.tag()
    assert len({plain, one, other, renamed}) == 4
    assert one == respaced == viewed  # the same definition, another spelling or view
    assert FactorParams().tag() == plain  # no custom factor: the tag of before
    plug = {"mode": "plugin", "class": "tests.custom_plugins:RangeMean"}
    a = load_settings(factors=_custom(**plug, params={"window": 5})).factors.tag()
    b = load_settings(factors=_custom(**plug, params={"window": 6})).factors.tag()
    assert a != b
