"""``factor regress``, ``factor scan`` and ``factor suggest`` as the JSON objects
of ANALYTICS.md section 13, from the results of ``factors.analytics``.

Names are registry names, ``null`` (with ``reason``/``reasons``) for a figure
that cannot be computed, timestamps bar open times in ms UTC.  Besides the keys
of section 13:

- regress: ``bar_ts`` (the last bar of the data used), ``first_ts``/``last_ts``
  (the sample's first and last bar), ``alpha_se``, ``alpha_t``, ``alpha_p``,
  ``lambda`` (ridge), ``input`` (``holdings`` or ``returns``), ``weights`` (the
  holdings'), ``reason``, ``model``; ``positions`` is ``null`` for a returns file
  (reason ``no_holdings``).
- scan: ``bar_ts``, ``source``, ``top``, per symbol ``exposures`` over the
  factors; the basket's ``weights``, ``sigma_annual`` and ``reason``.
- suggest: ``bar_ts``, ``source``, ``target``, ``max_weight``, ``long_only``,
  ``current`` (the weights before), ``current_exposures``, ``tracking_error`` (one
  bar), ``left_out`` (held symbols without exposures: their weight stays).
  ``weights`` lists every symbol held before or after, ``trades`` every nonzero
  trade.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.analytics.optimizer import Suggestion
from factorcast.factors.analytics.regression import ReturnRegression
from factorcast.factors.analytics.scan import Scan
from factorcast.factors.analytics.tilt import tilt
from factorcast.factors.reasons import Reason
from factorcast.factors.registry import REGISTRY, FactorRegistry
from factorcast.strategy.analytics_wire import number
from factorcast.strategy.portfolio_wire import named, tilt_object
from factorcast.strategy.wire import iso_ms

__all__ = ["NO_HOLDINGS", "regression_object", "scan_object", "suggestion_object"]

#: the reason of ``positions: null`` (a regression of a returns file)
NO_HOLDINGS: Final = "no_holdings"


def regression_object(
    reg: ReturnRegression,
    times: NDArray[np.int64],
    *,
    bar_ts: int,
    weights: Mapping[str, float] | None,
    bars_per_year: float,
    model: str,
) -> dict[str, Any]:
    """``factor regress --json``; ``times`` are the bar times of the regression's
    rows (``reg.sample`` marks those used)."""
    used = times[reg.sample]
    reasons: dict[str, str] = {}
    if reg.reason != Reason.OK:
        reasons["regression"] = reg.reason.label
    positions: dict[str, Any] | None = None
    if reg.positions is None:
        reasons["positions"] = NO_HOLDINGS
    else:
        p = reg.positions
        positions = {
            s: {
                "alpha": number(p.alpha[i]),
                "alpha_annual": number(p.alpha[i] * bars_per_year),
                "loadings": named(reg.names, p.loadings[i]),
            }
            for i, s in enumerate(p.symbols)
        }
    return {
        "bar_ts": bar_ts,
        "bar_time": iso_ms(bar_ts),
        "input": "returns" if weights is None else "holdings",
        "method": reg.method,
        "T": reg.n_obs,
        "first_ts": int(used[0]) if used.size else None,
        "last_ts": int(used[-1]) if used.size else None,
        "maxlags": reg.maxlags,
        "lambda": reg.penalty,
        "alpha": number(reg.alpha),
        "alpha_annual": number(reg.alpha_annual),
        "alpha_se": number(reg.alpha_se),
        "alpha_t": number(reg.alpha_t),
        "alpha_p": number(reg.alpha_p),
        "loadings": named(reg.names, reg.loadings),
        "se": named(reg.names, reg.se),
        "t": named(reg.names, reg.t),
        "p": named(reg.names, reg.p),
        "r2": number(reg.r2),
        "r2_adj": number(reg.r2_adj),
        "weights": None if weights is None else {s: number(v) for s, v in weights.items()},
        "positions": positions,
        "max_disagreement": None
        if reg.positions is None
        else number(reg.positions.max_disagreement),
        "reason": reg.reason.label,
        "reasons": reasons,
        "model": model,
    }


def scan_object(
    result: Scan, *, bar_ts: int, source: str, top: int, bars_per_year: float, model: str
) -> dict[str, Any]:
    """``factor scan --json``: every symbol with finite exposures, best first."""
    b = result.basket
    return {
        "bar_ts": bar_ts,
        "bar_time": iso_ms(bar_ts),
        "source": source,
        "want": dict(result.want),
        "top": top,
        "symbols": [
            {
                "symbol": s,
                "alignment": number(result.alignment[i]),
                "purity": number(result.purity[i]),
                "efficiency": number(result.efficiency[i]),
                "exposures": named(result.names, result.exposures[i]),
            }
            for i, s in enumerate(result.symbols)
        ],
        "basket": {
            "symbols": list(b.symbols),
            "weights": named(b.symbols, b.weights),
            "exposures": named(b.names, b.exposure),
            "sigma": number(b.sigma),
            "sigma_annual": number(b.sigma * math.sqrt(bars_per_year)),
            "reason": b.reason.label,
        },
        "model": model,
    }


def suggestion_object(
    s: Suggestion,
    exposures: NDArray[np.float64],
    *,
    bar_ts: int,
    source: str,
    max_weight: float,
    long_only: bool,
    model: str,
    registry: FactorRegistry = REGISTRY,
) -> dict[str, Any]:
    """``factor suggest --json``; ``exposures`` ``(n, K)`` are those of the
    suggestion's symbols (for the exposures before the trades); tilt words from
    ``registry`` (the model's)."""
    held = [i for i in range(len(s.symbols)) if s.current[i] != 0 or s.weights[i] != 0]
    before = np.concatenate([[s.current.sum()], s.current @ exposures])
    return {
        "bar_ts": bar_ts,
        "bar_time": iso_ms(bar_ts),
        "source": source,
        "target": dict(s.target),
        "max_weight": max_weight,
        "long_only": long_only,
        "weights": {s.symbols[i]: number(s.weights[i]) for i in held},
        "current": {s.symbols[i]: number(s.current[i]) for i in held if s.current[i] != 0},
        "trades": {
            s.symbols[i]: number(s.trades[i]) for i in range(len(s.symbols)) if s.trades[i] != 0
        },
        "exposures": named(s.names, s.exposure),
        "current_exposures": named(s.names, before),
        "tilt": tilt_object(tilt(s.names, s.exposure, registry)),
        "objective": number(s.objective),
        "tracking_error": number(s.tracking_error),
        "tracking_error_annual": number(s.tracking_error_annual),
        "turnover": number(s.turnover),
        "left_out": {k: number(v) for k, v in s.left_out.items()},
        "model": model,
    }
