"""``factorcast portfolio``: a portfolio's exposures, risk, VaR/ES, diversification,
tilt and groups at one bar (ANALYTICS.md sections 4, 5 and 7) as the JSON object of
section 13, from a :class:`MarketState`.  Every key is always there; a figure
that cannot be computed is ``null`` and ``reasons`` says why.

Besides the keys of section 13: ``bar_time``, ``source`` (``data`` or ``redis``),
``model``, ``horizon`` (bars; every risk figure but ``sigma`` and
``sigma_annual`` is for it), ``nav``, ``cash``, ``quote`` (``null`` for a
portfolio of weights), ``risk.sigma_horizon``, the ``*_shares`` (a contribution
over ``sigma``), ``groups.{dimension}.{group}.members``, ``var.window`` and
``reasons``: for every ``null`` figure (or group of figures), the path of the key
and why, with the labels of ``Reason`` where one fits, else ``no_mapping_file``
(no ``--groups``).

Choices the contract leaves open, made here: the risk model is the one of the
factor-return regression (``universe`` and its factors), so with
``factors.analytics.factors`` set, the factor contributions cover those factors
while the exposures cover every model factor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np

from factorcast.factors.analytics.portfolio import (
    Holding,
    PortfolioExposure,
    group_breakdown,
    holdings_weights,
    portfolio_exposure,
)
from factorcast.factors.analytics.riskattr import (
    DEFAULT_VAR_WINDOW,
    TailRisk,
    historical_tail,
    parametric_tail,
    portfolio_risk,
)
from factorcast.factors.analytics.tilt import Tilt, tilt
from factorcast.factors.reasons import Reason
from factorcast.factors.registry import REGISTRY, FactorRegistry
from factorcast.strategy.analytics_wire import number
from factorcast.strategy.market_state import MarketState
from factorcast.strategy.wire import iso_ms

__all__ = ["NO_MAPPING_FILE", "level_key", "named", "portfolio_report", "tilt_object"]

#: the reason of ``groups: null``
NO_MAPPING_FILE: Final = "no_mapping_file"


def level_key(level: float) -> str:
    """``0.95`` -> ``"0.95"``: the key of a confidence level."""
    return f"{level:g}"


def named(names: Sequence[str], values: Sequence[float] | np.ndarray) -> dict[str, float | None]:
    return {n: number(v) for n, v in zip(names, values, strict=True)}


def tilt_object(t: Tilt) -> dict[str, Any]:
    """``{sentence, factors: {name: {exposure, strength, word}}}``."""
    return {
        "sentence": t.sentence,
        "factors": {
            f.name: {"exposure": number(f.exposure), "strength": f.strength, "word": f.word}
            for f in t.factors
        },
    }


def _tail(tail: TailRisk, values: np.ndarray) -> dict[str, float | None]:
    return {level_key(a): number(v) for a, v in zip(tail.levels, values, strict=True)}


def _groups(
    pe: PortfolioExposure, mapping: Mapping[str, Mapping[str, str]]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for dimension, members in mapping.items():
        g = group_breakdown(pe, members)
        out[dimension] = {
            name: {
                "weight": number(g.weights[j]),
                "contributions": named(pe.names, g.contributions[j]),
                "members": list(g.members[j]),
            }
            for j, name in enumerate(g.groups)
        }
    return out


def portfolio_report(
    state: MarketState,
    holdings: Sequence[Holding],
    mapping: Mapping[str, Mapping[str, str]] | None = None,
    *,
    horizon: int = 1,
    var_window: int = DEFAULT_VAR_WINDOW,
    registry: FactorRegistry = REGISTRY,
) -> dict[str, Any]:
    """The portfolio of ``holdings`` at the state's bar, as ``portfolio --json``
    prints it (tilt words from ``registry``: the model's, custom factors included).
    Raises ``PortfolioInputError`` for holdings the universe refuses."""
    w = holdings_weights(holdings, state.symbols, state.close)
    pe = portfolio_exposure(
        w.symbols, w.weights, state.names, state.exposure[w.index], state.reason[w.index]
    )
    covered = w.index[pe.rows]
    risk = portfolio_risk(
        state.risk_names,
        state.covariance,
        state.specific[covered],
        state.risk_exposure[covered],
        pe.weights,
        bars_per_year=state.bars_per_year,
        horizon=horizon,
    )
    parametric = parametric_tail(risk.sigma, horizon=horizon)
    historical = historical_tail(
        pe.weights, state.returns[:, covered], window=var_window, horizon=horizon
    )
    reasons: dict[str, str] = {}
    if risk.reason != Reason.OK:
        for key in ("risk", "var.parametric", "es.parametric", "diversification"):
            reasons[key] = risk.reason.label
    if historical.reason != Reason.OK:
        reasons["var.historical"] = reasons["es.historical"] = historical.reason.label
    if mapping is None:
        reasons["groups"] = NO_MAPPING_FILE
    div = risk.diversification
    return {
        "bar_ts": state.bar_ts,
        "bar_time": iso_ms(state.bar_ts),
        "source": state.source,
        "model": state.model,
        "horizon": horizon,
        "nav": w.nav,
        "cash": w.cash,
        "quote": w.quote,
        "weights": named(w.symbols, w.weights),
        "exposures": named(pe.names, pe.exposure),
        "contributions": {
            s: named(pe.names, pe.contributions[i]) for i, s in enumerate(pe.symbols)
        },
        "covered_weight": number(pe.covered_weight),
        "uncovered": {s: r.label for s, r in pe.uncovered.items()},
        "risk": {
            "sigma": number(risk.sigma),
            "sigma_annual": number(risk.sigma_annual),
            "sigma_horizon": number(risk.sigma_horizon),
            "factor_contributions": named(risk.names, risk.factor_contributions),
            "factor_shares": named(risk.names, risk.factor_shares),
            "specific_contribution": number(risk.specific_contribution),
            "specific_share": number(risk.specific_share),
            "position_contributions": named(pe.symbols, risk.position_contributions),
            "position_shares": named(pe.symbols, risk.position_shares),
            "reason": risk.reason.label,
        },
        "var": {
            "parametric": _tail(parametric, parametric.var),
            "historical": _tail(historical, historical.var),
            "historical_bars": historical.bars,
            "window": var_window,
        },
        "es": {
            "parametric": _tail(parametric, parametric.es),
            "historical": _tail(historical, historical.es),
        },
        "diversification": {
            "ratio": number(div.ratio),
            "score": number(div.score),
            "effective_bets": number(div.effective_bets),
        },
        "tilt": tilt_object(tilt(pe.names, pe.exposure, registry)),
        "groups": None if mapping is None else _groups(pe, mapping),
        "reasons": reasons,
    }
