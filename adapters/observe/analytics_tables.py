"""Terminal tables of the analytics: those of the offline ``factor`` commands, drawn
from the same JSON objects their ``--json`` prints (:mod:`strategy.analytics_wire`),
so a table and its JSON never say different things, and the factor health under
``factorcast run``'s live exposures (from the same objects as the Redis hash)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from factorcast.strategy.analytics_wire import health_objects
from factorcast.strategy.engine import StepResult
from factorcast.strategy.wire import iso_ms

_STATE_STYLE = {
    "working": "green",
    "inverted": "red",
    "flat": "yellow",
    "unknown": "dim",
    "unrated": "dim",
}
_KIND_STYLE = {"factor_decay": "yellow", "factor_inverted": "red", "factor_recovered": "green"}


def _num(x: float | None, fmt: str = "+.4f") -> str:
    return "—" if x is None or not math.isfinite(x) else format(x, fmt)


def _table(title: str, caption: str = "") -> Table:
    """A table whose title stays on one line (up to the console's width)."""
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        caption=caption or None,
        caption_justify="left",
        caption_style="dim",
        min_width=len(title),
    )


def returns_table(summary: dict[str, Any], bars_per_year: float) -> Table:
    """``factor returns``: per name, the factor returns over the run."""
    reasons = " · ".join(f"{k} {v}" for k, v in summary["reasons"].items())
    table = _table(
        f"factor returns {iso_ms(summary['first_ts'])} .. {iso_ms(summary['bar_ts'])}"
        f" ({summary['bars']} bars)",
        f"regressions: {reasons}",
    )
    for col in ("factor", "n", "mean", "vol/yr", "t", "cum", "max dd"):
        table.add_column(col, justify="left" if col == "factor" else "right", no_wrap=True)
    for name, f in summary["factors"].items():
        std = f["std"]
        table.add_row(
            name,
            str(f["n"]),
            _num(f["mean"], "+.2e"),
            _num(None if std is None else std * math.sqrt(bars_per_year), ".1%"),
            _num(f["t_stat"], "+.2f"),
            _num(f["cum_return"], "+.1%"),
            _num(f["max_drawdown"], ".1%"),
        )
    return table


def health_table(report: dict[str, Any]) -> Table:
    """``factor health``: state and figures per factor at the report's bar."""
    table = _table(
        f"factor health at {iso_ms(report['bar_ts'])} (window {report['window']} bars, h=1)",
        "IC: rank IC · half-life: first horizon with half the IC of h=1 · rank AC: rank "
        "autocorrelation · Q5-Q1: top minus bottom quintile's return · cum, max dd: the "
        "factor return over the window",
    )
    cols = ("factor", "state", "mean IC", "ICIR", "t", "hit", "n", "half-life", "rank AC")
    for col in (*cols, "Q5-Q1", "cum", "max dd"):
        table.add_column(col, justify="left" if col in ("factor", "state") else "right")
    for name, f in report["factors"].items():
        half = f["ic_half_life"]
        table.add_row(
            name,
            Text(f["state"], style=_STATE_STYLE.get(f["state"], "")),
            _num(f["mean_ic"]),
            _num(f["icir"], "+.3f"),
            _num(f["t_stat"], "+.2f"),
            _num(f["hit_rate"], ".0%"),
            str(f["n"]),
            "—" if half is None else str(half),
            _num(f["rank_autocorrelation"], "+.3f"),
            _num(f["quintile_spread"], "+.2e"),
            _num(f["cum_return"], "+.1%"),
            _num(f["max_drawdown"], ".1%"),
        )
    return table


def decay_table(report: dict[str, Any]) -> Table:
    """The decay curve: mean IC over the whole sample per horizon."""
    table = _table("decay curve: mean IC over the whole sample, by horizon (bars)")
    table.add_column("factor")
    first: dict[str, Any] = next(iter(report["factors"].values()), {"decay": {}})
    horizons = list(first["decay"])
    for h in horizons:
        table.add_column(h, justify="right")
    for name, f in report["factors"].items():
        table.add_row(name, *(_num(f["decay"][h]) for h in horizons))
    return table


def alerts_table(alerts: Sequence[dict[str, Any]], limit: int | None = None) -> Table:
    """The alert transitions of the run, in time order (the last ``limit``)."""
    shown = list(alerts) if limit is None else list(alerts)[-limit:]
    more = len(alerts) - len(shown)
    table = _table(
        f"alerts ({len(alerts)})",
        f"the last {len(shown)}; --json lists all {len(alerts)}" if more else "",
    )
    for col in ("bar", "factor", "alert", "from", "to", "t", "mean IC", "n"):
        table.add_column(col, justify="right" if col in ("t", "mean IC", "n") else "left")
    for a in shown:
        table.add_row(
            a["bar_time"],
            a["factor"],
            Text(a["kind"], style=_KIND_STYLE.get(a["kind"], "")),
            a["from_state"],
            a["to_state"],
            _num(a["t_stat"], "+.2f"),
            _num(a["mean_ic"]),
            str(a["n"]),
        )
    return table


def risk_tables(risk: dict[str, Any], bars_per_year: float, limit: int | None) -> list[Table]:
    """``factor risk``: the factor covariance (with annualized vols and
    correlations), the specific variances (the ``limit`` largest and smallest, or
    all) and the fallbacks."""
    names: list[str] = risk["factors"]
    cov = risk["covariance"]
    tables: list[Table] = []
    if cov is None:
        t = _table(f"no factor covariance at {iso_ms(risk['bar_ts'])}: {risk['reason']}")
        t.add_column("bars with every factor return")
        t.add_row(str(risk["n_obs"]))
        tables.append(t)
    else:
        t = _table(
            f"factor covariance at {iso_ms(risk['bar_ts'])} ({risk['n_obs']} bars), per bar",
            "vol/yr: sqrt(variance x bars per year)",
        )
        t.add_column("factor")
        for name in names:
            t.add_column(name, justify="right")
        t.add_column("vol/yr", justify="right")
        for j, name in enumerate(names):
            t.add_row(
                name,
                *(_num(v, "+.3e") for v in cov[j]),
                _num(math.sqrt(cov[j][j] * bars_per_year), ".1%"),
            )
        tables.append(t)
        c = _table("factor correlation")
        c.add_column("factor")
        for name in names:
            c.add_column(name, justify="right")
        for j, name in enumerate(names):
            c.add_row(name, *(_num(_corr(cov, j, k), "+.2f") for k in range(len(names))))
        tables.append(c)
    tables.append(_specific_table(risk, bars_per_year, limit))
    return tables


def _corr(cov: list[list[float | None]], j: int, k: int) -> float | None:
    a, b, c = cov[j][k], cov[j][j], cov[k][k]
    if a is None or b is None or c is None or b <= 0 or c <= 0:
        return None
    return a / math.sqrt(b * c)


def _specific_table(risk: dict[str, Any], bars_per_year: float, limit: int | None) -> Table:
    specific: dict[str, float | None] = risk["specific"]
    fallback = set(risk["fallback"])
    known = sorted((v, s) for s, v in specific.items() if v is not None)
    missing = [s for s, v in specific.items() if v is None]
    if limit is None or len(known) <= 2 * limit:
        rows = [s for _, s in reversed(known)]
        what = "all symbols"
    else:
        rows = [s for _, s in reversed(known[-limit:])] + [s for _, s in reversed(known[:limit])]
        what = f"the {limit} largest and {limit} smallest of {len(known)} (--all for every one)"
    caption = f"{what}; fallback: the cross-sectional median ({len(fallback)} symbols)"
    if missing:
        caption += f"; no specific variance: {len(missing)}"
    t = _table("specific variance, per bar", caption)
    for col in ("symbol", "variance", "vol/yr", "fallback"):
        t.add_column(col, justify="left" if col == "symbol" else "right")
    for s in rows:
        v = specific[s]
        assert v is not None
        t.add_row(
            s,
            _num(v, ".3e"),
            _num(math.sqrt(v * bars_per_year), ".1%"),
            "yes" if s in fallback else "",
        )
    return t


def live_health_table(result: StepResult) -> Table | None:
    """``factorcast run``'s factor health under its exposures: each factor's state,
    rolling IC figures (horizon 1), this bar's factor return and the cumulative one
    over the health window; ``None`` when the engine runs no analytics."""
    bar = result.analytics
    if bar is None:
        return None
    names = result.factors.names
    health = health_objects(bar.health, names)
    returns = dict(zip(bar.returns.names, bar.returns.returns.tolist(), strict=True))
    universe = bar.returns.names[0]
    table = _table(
        "factor health",
        f"IC: rolling mean rank IC (h=1) · f: this bar's factor return ({universe}"
        f" {_num(returns[universe], '+.2e')}) · cum: over the health window",
    )
    for col in ("factor", "state", "IC", "ICIR", "t", "f", "cum"):
        table.add_column(col, justify="left" if col in ("factor", "state") else "right")
    for name in names:
        h = health[name]
        table.add_row(
            name,
            Text(h["state"], style=_STATE_STYLE.get(h["state"], "")),
            _num(h["mean_ic"]),
            _num(h["icir"], "+.3f"),
            _num(h["t_stat"], "+.2f"),
            _num(returns.get(name), "+.2e"),
            _num(h["cum_return"], "+.1%"),
        )
    return table
