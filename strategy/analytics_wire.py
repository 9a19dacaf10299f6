"""The analytics as JSON objects (ANALYTICS.md sections 12 and 13): one shape for
Redis and for the offline commands' ``--json``, so that a consumer reads both alike.

Names are registry names (``universe`` included where the math includes it); a
number that cannot be computed is ``null`` with its reason beside it; timestamps
are bar open times in ms UTC (plus ``bar_time``, ISO-8601, where an event is read
by people).

Where a figure of the offline health report (:func:`health_report`) is ``null``,
``reasons`` names why, with the labels of :class:`Reason` where one fits, and
these where none does: ``not_in_regression`` (the factor is left out of the
factor-return regression by ``factors.analytics.factors``: no factor-return
track), ``unrated`` (direction 0: no half-life), ``ic_against_direction``
(``d_k * mean_ic(1) <= 0``: no half-life), ``not_halved`` (no horizon of the
decay curve halves ``mean_ic(1)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

import numpy as np
import orjson
from numpy.typing import NDArray

from factorcast.factors.analytics.factor_returns import FactorReturnBar
from factorcast.factors.analytics.health import FactorAlert, HealthSnapshot
from factorcast.factors.analytics.risk import RiskSnapshot
from factorcast.factors.reasons import Reason
from factorcast.strategy.analytics import DecayFigures, ReturnsSummary
from factorcast.strategy.engine import StepResult
from factorcast.strategy.ports import Publication
from factorcast.strategy.wire import iso_ms

FACTOR_RETURNS_SCHEMA: Final = "factorcast.factor_returns/1"
ALERT_SCHEMA: Final = "factorcast.alert/1"


def number(x: float | np.floating[Any]) -> float | None:
    """A finite float, or ``None`` (JSON ``null``)."""
    v = float(x)
    return v if math.isfinite(v) else None


def _label(code: int) -> str:
    return Reason(int(code)).label


def factor_returns_event(bar_ts: int, fr: FactorReturnBar, model: str) -> dict[str, Any]:
    """``factorcast.factor_returns/1``: the regression of one bar.  ``reasons`` names
    the reason of every ``null`` return (the regression's: one for all of them)."""
    returns = {name: number(f) for name, f in zip(fr.names, fr.returns, strict=True)}
    return {
        "schema": FACTOR_RETURNS_SCHEMA,
        "bar_ts": bar_ts,
        "returns": returns,
        "r2": number(fr.r2),
        "n": fr.n,
        "reasons": {name: _label(fr.reason) for name, f in returns.items() if f is None},
        "model": model,
    }


def risk_object(
    bar_ts: int, risk: RiskSnapshot, symbols: Sequence[str], model: str
) -> dict[str, Any]:
    """The risk model at one bar: ``{bar_ts, factors, covariance, specific,
    fallback, model}`` plus ``reason`` (``ok`` or why the covariance is ``null``)
    and ``n_obs``.  A symbol without any residual in the window and no median to
    fall back on has a ``null`` specific variance."""
    ok = risk.reason == Reason.OK
    return {
        "bar_ts": bar_ts,
        "factors": list(risk.names),
        "covariance": matrix(risk.covariance) if ok else None,
        "reason": _label(risk.reason),
        "n_obs": risk.n_obs,
        "specific": {s: number(v) for s, v in zip(symbols, risk.specific, strict=True)},
        "fallback": [s for s, f in zip(symbols, risk.fallback, strict=True) if f],
        "model": model,
    }


def health_objects(health: HealthSnapshot, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per factor, the figures of section 2 at horizon 1 (``state, mean_ic, std_ic,
    icir, t_stat, n, hit_rate, cum_return, max_drawdown``, ``reason`` where the IC
    statistics are ``null``), and ``horizons``: the IC statistics at every
    configured horizon, keyed by the horizon as a string."""
    out: dict[str, dict[str, Any]] = {}
    one = health.stats[1]
    for k, name in enumerate(names):
        figures = _ic_figures(health, 1, k)
        out[name] = {
            "state": str(health.states[k]),
            **figures,
            "cum_return": number(health.cum_return[k]),
            "max_drawdown": number(health.max_drawdown[k]),
            "reason": None if one.reason[k] == Reason.OK else _label(one.reason[k]),
            "horizons": {str(h): _ic_figures(health, h, k) for h in health.stats},
        }
    return out


def _ic_figures(health: HealthSnapshot, h: int, k: int) -> dict[str, Any]:
    s = health.stats[h]
    return {
        "mean_ic": number(s.mean_ic[k]),
        "std_ic": number(s.std_ic[k]),
        "icir": number(s.icir[k]),
        "t_stat": number(s.t_stat[k]),
        "n": int(s.n[k]),
        "hit_rate": number(s.hit_rate[k]),
    }


def alert_event(alert: FactorAlert, model: str) -> dict[str, Any]:
    """``factorcast.alert/1``, with the deterministic ``id = {kind}:{factor}:{bar_ts}``."""
    return {
        "schema": ALERT_SCHEMA,
        "id": alert.id,
        "kind": str(alert.kind),
        "factor": alert.factor,
        "bar_ts": alert.bar_ts,
        "bar_time": iso_ms(alert.bar_ts),
        "from_state": str(alert.from_state),
        "to_state": str(alert.to_state),
        "mean_ic": number(alert.mean_ic),
        "icir": number(alert.icir),
        "t_stat": number(alert.t_stat),
        "n": alert.n,
        "window": alert.window,
        "horizon": alert.horizon,
        "model": model,
    }


def matrix(values: NDArray[np.float64]) -> list[list[float | None]]:
    """A 2-d array as nested lists, ``null`` for what is not finite."""
    return [[number(v) for v in row] for row in values]


def with_analytics(
    pub: Publication, result: StepResult, symbols: Sequence[str], model: str
) -> Publication:
    """``pub`` with the step's analytics for Redis (section 12): the bar's factor
    returns, the risk model, the health of each factor (with the ``bar_ts`` and
    ``model`` it is of) and the alerts of the step (those of the steps run again
    for late bars first).  ``pub`` itself when the engine runs no analytics."""
    bar = result.analytics
    if bar is None:
        return pub
    ts = result.ts
    dumps = orjson.dumps
    health = {
        name: dumps({"bar_ts": ts, **obj, "model": model})
        for name, obj in health_objects(bar.health, result.factors.names).items()
    }
    return replace(
        pub,
        factor_returns=dumps(factor_returns_event(ts, bar.returns, model)),
        risk=dumps(risk_object(ts, bar.risk, symbols, model)),
        health=health,
        alerts=tuple((a.id, dumps(alert_event(a, model))) for a in result.alerts),
    )


#: the figures of a factor in the health report, in the order of ANALYTICS.md section 13
HEALTH_FIGURES: Final = (
    "state",
    "mean_ic",
    "std_ic",
    "icir",
    "t_stat",
    "n",
    "hit_rate",
    "ic_half_life",
    "rank_autocorrelation",
    "quintile_spread",
    "cum_return",
    "max_drawdown",
)
_IC_FIGURES: Final = ("mean_ic", "std_ic", "icir", "t_stat", "hit_rate")


def health_report(
    health: HealthSnapshot,
    names: Sequence[str],
    regressed: Sequence[str],
    decay: DecayFigures,
    directions: NDArray[np.float64],
    alerts: Sequence[FactorAlert],
    *,
    window: int,
    horizons: Sequence[int],
    model: str,
) -> dict[str, Any]:
    """``factor health --json`` (section 13): ``{bar_ts, window, horizons, factors:
    {name: {state, mean_ic, std_ic, icir, t_stat, n, hit_rate, ic_half_life,
    rank_autocorrelation, quintile_spread, cum_return, max_drawdown}}, alerts}``
    at ``health``'s bar, the per-factor figures at horizon 1.

    Besides: per factor ``reason`` (that of the IC statistics), ``reasons`` (field
    -> why it is ``null``, for every ``null`` figure), ``decay`` (the decay curve,
    horizon as a string -> ``mean_ic``) and ``horizons`` (the IC statistics at each
    configured horizon); ``bar_time`` and ``model`` at the top."""
    per_factor = health_objects(health, names)
    factors: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(names):
        obj = per_factor[name]
        half = decay.half_life[k]
        figures: dict[str, Any] = {f: obj[f] for f in HEALTH_FIGURES if f in obj}
        figures["ic_half_life"] = half
        figures["rank_autocorrelation"] = number(decay.rank_autocorrelation[k])
        figures["quintile_spread"] = number(decay.quintile_spread[k])
        ic_reason = obj["reason"] or Reason.INSUFFICIENT_HISTORY.label
        why = {
            **{f: ic_reason for f in _IC_FIGURES},
            "ic_half_life": _half_life_reason(decay.curve[0, k], float(directions[k])),
            "rank_autocorrelation": Reason.INSUFFICIENT_HISTORY.label,
            "quintile_spread": Reason.TOO_FEW_SYMBOLS.label,
            "cum_return": "not_in_regression"
            if name not in regressed
            else Reason.INSUFFICIENT_HISTORY.label,
        }
        why["max_drawdown"] = why["cum_return"]
        factors[name] = {
            **{f: figures[f] for f in HEALTH_FIGURES},
            "reason": obj["reason"],
            "reasons": {f: why[f] for f in HEALTH_FIGURES if figures[f] is None},
            "decay": {str(h): number(decay.curve[i, k]) for i, h in enumerate(decay.horizons)},
            "horizons": obj["horizons"],
        }
    return {
        "bar_ts": health.bar_ts,
        "bar_time": iso_ms(health.bar_ts),
        "window": window,
        "horizons": list(horizons),
        "factors": factors,
        "alerts": [alert_event(a, model) for a in alerts],
        "model": model,
    }


def _half_life_reason(mean_ic_1: float, direction: float) -> str:
    if not math.isfinite(mean_ic_1):
        return Reason.INSUFFICIENT_HISTORY.label
    if direction == 0:
        return "unrated"
    if direction * mean_ic_1 <= 0:
        return "ic_against_direction"
    return "not_halved"


def returns_summary_object(
    summary: ReturnsSummary,
    reasons: dict[str, int],
    *,
    first_ts: int,
    bar_ts: int,
    bars: int,
    model: str,
) -> dict[str, Any]:
    """``factor returns --json``: the run's span, the regressions' reasons (label ->
    bars) and per name ``{n, mean, std, t_stat, cum_return, max_drawdown}``."""
    return {
        "first_ts": first_ts,
        "bar_ts": bar_ts,
        "bars": bars,
        "reasons": reasons,
        "factors": {
            name: {
                "n": int(summary.n[k]),
                "mean": number(summary.mean[k]),
                "std": number(summary.std[k]),
                "t_stat": number(summary.t_stat[k]),
                "cum_return": number(summary.cum_return[k]),
                "max_drawdown": number(summary.max_drawdown[k]),
            }
            for k, name in enumerate(summary.names)
        },
        "model": model,
    }
