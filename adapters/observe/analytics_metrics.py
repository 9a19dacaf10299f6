"""The Prometheus metrics of the factor analytics (ANALYTICS.md sections 1 and 2),
on the service's registry (:class:`adapters.observe.metrics.Metrics` builds them).

Gauges, set at every live bar from the engine's :class:`AnalyticsBar`:

- ``factorcast_factor_return{factor}``: the bar's factor return (``universe``, the
  intercept, included);
- ``factorcast_factor_ic{factor,horizon}`` and ``factorcast_factor_icir{factor,horizon}``:
  the rolling mean rank IC and its ICIR at each configured horizon;
- ``factorcast_factor_cum_return{factor}``: the cumulative return of the factor-return
  track over the health window (the Grafana panel's curve);
- ``factorcast_factor_state{factor,state}``: 1 for the factor's health state, 0 for
  each of the four others.

A figure that cannot be computed (NaN, with a reason in the analytics) *removes*
its series, as a NaN exposure does in ``factorcast_exposure``: a scrape never shows
a value left over from an earlier bar.  The counter
``factorcast_factor_alerts_total{kind}`` counts the alerts the Redis sink published,
each once (a re-raised alert that Redis already had is not published, nor counted).

Label values are the registry's factor names, the analytics' own names (``universe``,
the states and alert kinds of :mod:`factors.analytics.health`) and the configured
horizons: small closed sets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge

from factorcast.factors.analytics.health import AlertKind, HealthState
from factorcast.factors.analytics.pipeline import AnalyticsBar

__all__ = ["AnalyticsMetrics"]

_STATES = tuple(str(s) for s in HealthState)


class _Series:
    """One gauge's series, set from whole arrays: NaN removes a series."""

    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge
        self._children: dict[tuple[str, ...], Gauge] = {}

    def set(self, labels: tuple[str, ...], value: float) -> None:
        child = self._children.get(labels)
        if not math.isfinite(value):
            if child is not None:
                self.gauge.remove(*labels)
                del self._children[labels]
            return
        if child is None:
            child = self._children[labels] = self.gauge.labels(*labels)
        child.set(value)

    def labels(self) -> tuple[tuple[str, ...], ...]:
        return tuple(self._children)


class AnalyticsMetrics:
    """See the module docstring."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self._return = _Series(
            Gauge(
                "factorcast_factor_return",
                "Factor return of the last bar (ANALYTICS.md section 1; universe is the "
                "intercept); absent where it cannot be computed.",
                ["factor"],
                registry=r,
            )
        )
        self._ic = _Series(
            Gauge(
                "factorcast_factor_ic",
                "Rolling mean rank IC of a factor at a horizon (bars); absent where NaN.",
                ["factor", "horizon"],
                registry=r,
            )
        )
        self._icir = _Series(
            Gauge(
                "factorcast_factor_icir",
                "Rolling ICIR (mean IC / std IC) of a factor at a horizon; absent where NaN.",
                ["factor", "horizon"],
                registry=r,
            )
        )
        self._cum_return = _Series(
            Gauge(
                "factorcast_factor_cum_return",
                "Cumulative factor return over the health window; absent where NaN.",
                ["factor"],
                registry=r,
            )
        )
        self._state = Gauge(
            "factorcast_factor_state",
            "1 for the factor's health state (unknown, unrated, working, flat, inverted), "
            "0 for the others.",
            ["factor", "state"],
            registry=r,
        )
        self._alerts = Counter(
            "factorcast_factor_alerts",
            "Factor health alerts published, by kind (each once).",
            ["kind"],
            registry=r,
        )
        for kind in AlertKind:  # known label values start at 0
            self._alerts.labels(str(kind))

    def set_bar(self, bar: AnalyticsBar, names: Sequence[str]) -> None:
        """The gauges of one live bar; ``names`` are the model's factors in the
        order of the health arrays."""
        fr = bar.returns
        for name, value in zip(fr.names, fr.returns.tolist(), strict=True):
            self._return.set((name,), value)
        health = bar.health
        for h, stats in health.stats.items():
            horizon = str(h)
            for name, ic, icir in zip(
                names, stats.mean_ic.tolist(), stats.icir.tolist(), strict=True
            ):
                self._ic.set((name, horizon), ic)
                self._icir.set((name, horizon), icir)
        for name, cum, state in zip(names, health.cum_return.tolist(), health.states, strict=True):
            self._cum_return.set((name,), cum)
            for s in _STATES:
                self._state.labels(name, s).set(1 if s == state else 0)

    def alerts(self, kind: str, n: int = 1) -> None:
        """``factorcast_factor_alerts_total{kind} += n``; ``kind`` an :class:`AlertKind`."""
        if kind not in AlertKind.__members__.values():
            raise ValueError(f"unknown alert kind {kind!r}")
        self._alerts.labels(kind).inc(n)

    def series(self) -> dict[str, tuple[tuple[str, ...], ...]]:
        """The label sets currently exported per gauge (for tests and debugging)."""
        return {
            "return": self._return.labels(),
            "ic": self._ic.labels(),
            "icir": self._icir.labels(),
            "cum_return": self._cum_return.labels(),
        }
