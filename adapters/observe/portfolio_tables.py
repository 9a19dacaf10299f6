"""Terminal tables of the portfolio commands (``portfolio``, ``factor regress``,
``factor scan``, ``factor suggest``), drawn from the JSON objects their ``--json``
prints (:mod:`strategy.portfolio_wire`, :mod:`strategy.factor_tools_wire`), so a
table and its JSON never say different things."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from factorcast.adapters.observe.analytics_tables import _num, _table
from factorcast.factors.registry import UNIVERSE
from factorcast.strategy.wire import iso_ms

__all__ = ["portfolio_tables", "regression_tables", "scan_tables", "suggestion_tables"]


def _pct(x: float | None, fmt: str = "+.2%") -> str:
    return _num(x, fmt)


def _styles(names: list[str]) -> list[str]:
    return [n for n in names if n != UNIVERSE]


def _sentence(tilt: dict[str, Any]) -> Text:
    return Text(f"tilt: {tilt['sentence']}", style="bold")


def portfolio_tables(report: dict[str, Any]) -> list[RenderableType]:
    """Positions with their contributions, the tilt, the risk attribution, VaR/ES
    and the groups."""
    names = list(report["exposures"])
    styles = _styles(names)
    risk = report["risk"]
    shares = risk["position_shares"]
    caption = f"covered weight {_num(report['covered_weight'], '.4f')}"
    if report["nav"] is not None:
        caption += (
            f" · NAV {report['nav']:,.2f} {report['quote'] or ''} (cash {report['cash']:,.2f})"
        )
    if report["uncovered"]:
        caption += " · left out: " + ", ".join(f"{s} ({r})" for s, r in report["uncovered"].items())
    pos = _table(
        f"portfolio at {report['bar_time']} ({report['source']}): exposure contributions "
        "w·X per position",
        caption,
    )
    for col in ("symbol", "weight", *styles, "risk share"):
        pos.add_column(col, justify="left" if col == "symbol" else "right", no_wrap=True)
    for symbol, c in report["contributions"].items():
        pos.add_row(
            symbol,
            _num(report["weights"][symbol], "+.4f"),
            *(_num(c[n], "+.3f") for n in styles),
            _pct(shares.get(symbol), ".1%"),
        )
    x = report["exposures"]
    pos.add_row(
        Text("portfolio", style="bold"),
        _num(x[UNIVERSE], "+.4f"),
        *(Text(_num(x[n], "+.3f"), style="bold") for n in styles),
        _pct(None if risk["sigma"] is None else 1.0, ".0%"),
    )
    div = report["diversification"]
    out: list[RenderableType] = [pos, _sentence(report["tilt"]), _risk_table(report)]
    if div["ratio"] is not None:
        out.append(
            Text(
                f"diversification: ratio {_num(div['ratio'], '.2f')}, score "
                f"{_num(div['score'], '.2f')}, effective bets {_num(div['effective_bets'], '.2f')}"
            )
        )
    out.append(_tail_table(report))
    for dimension, groups in (report["groups"] or {}).items():
        g = _table(f"by {dimension}")
        for col in (dimension, "weight", *styles, "members"):
            g.add_column(col, justify="left" if col == dimension else "right", no_wrap=True)
        for name, grp in groups.items():
            g.add_row(
                name,
                _num(grp["weight"], "+.4f"),
                *(_num(grp["contributions"][n], "+.3f") for n in styles),
                str(len(grp["members"])),
            )
        out.append(g)
    return out


def _risk_table(report: dict[str, Any]) -> Table:
    risk = report["risk"]
    h = report["horizon"]
    if risk["sigma"] is None:
        t = _table(f"risk: none ({risk['reason']})")
        t.add_column("why")
        t.add_row(risk["reason"])
        return t
    title = (
        f"risk: sigma {_pct(risk['sigma'], '.3%')} per bar, {_pct(risk['sigma_annual'], '.1%')}"
        " annualized"
    )
    if h != 1:
        title += f", {_pct(risk['sigma_horizon'], '.3%')} over {h} bars"
    t = _table(title, "Euler contributions (they sum to sigma)")
    for col in ("source", "contribution", "share"):
        t.add_column(col, justify="left" if col == "source" else "right")
    for name, rc in risk["factor_contributions"].items():
        t.add_row(name, _pct(rc, "+.4%"), _pct(risk["factor_shares"][name], "+.1%"))
    t.add_row(
        "specific",
        _pct(risk["specific_contribution"], "+.4%"),
        _pct(risk["specific_share"], "+.1%"),
    )
    t.add_row(Text("total", style="bold"), _pct(risk["sigma"], "+.4%"), "100.0%")
    return t


def _tail_table(report: dict[str, Any]) -> Table:
    var, es, h = report["var"], report["es"], report["horizon"]
    t = _table(
        f"VaR and expected shortfall, {h} bar{'s' if h != 1 else ''} (losses, fraction of NAV)",
        f"historical: {var['historical_bars']} bars of today's weights (window {var['window']})",
    )
    for col in ("method", "VaR 95%", "VaR 99%", "ES 95%", "ES 99%"):
        t.add_column(col, justify="left" if col == "method" else "right")
    for method in ("parametric", "historical"):
        v, e = var[method], es[method]
        t.add_row(
            method,
            *(_pct(v[k], ".3%") for k in ("0.95", "0.99")),
            *(_pct(e[k], ".3%") for k in ("0.95", "0.99")),
        )
    return t


def regression_tables(reg: dict[str, Any]) -> list[RenderableType]:
    """The loadings with their errors, and the same per position."""
    first, last = reg["first_ts"], reg["last_ts"]
    span = "" if first is None else f" over {reg['T']} bars"
    lag = f", Newey-West lags {reg['maxlags']}" if reg["maxlags"] is not None else ""
    pen = f", ridge lambda {reg['lambda']:g}" if reg["lambda"] is not None else ""
    t = _table(
        f"regression of the {reg['input']}' returns on factor returns ({reg['method']}{span})",
        f"R² {_num(reg['r2'], '.4f')} · adj. R² {_num(reg['r2_adj'], '.4f')} · T {reg['T']}"
        f"{lag}{pen} · alpha/yr {_pct(reg['alpha_annual'], '+.2%')}"
        + ("" if last is None else f" · bars {iso_ms(first)} .. {iso_ms(last)}")
        + ("" if reg["reason"] == "ok" else f" · no regression: {reg['reason']}"),
    )
    for col in ("term", "estimate", "se", "t", "p"):
        t.add_column(col, justify="left" if col == "term" else "right")
    t.add_row(
        "alpha",
        _num(reg["alpha"], "+.3e"),
        _num(reg["alpha_se"], ".3e"),
        _num(reg["alpha_t"], "+.2f"),
        _num(reg["alpha_p"], ".4f"),
    )
    for name, b in reg["loadings"].items():
        t.add_row(
            name,
            _num(b, "+.4f"),
            _num(reg["se"][name], ".4f"),
            _num(reg["t"][name], "+.2f"),
            _num(reg["p"][name], ".4f"),
        )
    out: list[RenderableType] = [t]
    if reg["positions"]:
        names = list(reg["loadings"])
        p = _table(
            "per position (the same regression of each holding's returns)",
            f"sum of weight x position = portfolio, to {_num(reg['max_disagreement'], '.1e')}",
        )
        for col in ("symbol", "weight", "alpha/yr", *names):
            p.add_column(col, justify="left" if col == "symbol" else "right", no_wrap=True)
        for symbol, pos in reg["positions"].items():
            p.add_row(
                symbol,
                _num(reg["weights"][symbol], "+.4f"),
                _pct(pos["alpha_annual"], "+.1%"),
                *(_num(pos["loadings"][n], "+.3f") for n in names),
            )
        out.append(p)
    return out


def scan_tables(scan: dict[str, Any]) -> list[RenderableType]:
    """The top symbols for the wanted tilt, and their equal-weighted basket."""
    want = ", ".join(f"{k}={v:g}" for k, v in scan["want"].items())
    top = scan["symbols"][: scan["top"]]
    names = list(scan["symbols"][0]["exposures"]) if scan["symbols"] else []
    t = _table(
        f"scan for {want} at {scan['bar_time']} ({scan['source']}): top {len(top)} of "
        f"{len(scan['symbols'])}",
        "alignment t·X/|t| · purity: the cosine · efficiency: alignment per unit of volatility"
        " (per bar)",
    )
    for col in ("#", "symbol", "efficiency", "alignment", "purity", *names):
        t.add_column(col, justify="left" if col == "symbol" else "right", no_wrap=True)
    for i, s in enumerate(top, start=1):
        t.add_row(
            str(i),
            s["symbol"],
            _num(s["efficiency"], "+.2f"),
            _num(s["alignment"], "+.3f"),
            _num(s["purity"], "+.2f"),
            *(_num(s["exposures"][n], "+.2f") for n in names),
        )
    b = scan["basket"]
    vol = b["sigma_annual"]
    t.add_row(
        "",
        Text("basket", style="bold"),
        "",
        "",
        "",
        *(Text(_num(b["exposures"][n], "+.2f"), style="bold") for n in names),
    )
    basket = Text(
        f"equal-weighted basket of the top {len(b['symbols'])}: volatility "
        f"{_pct(b['sigma'], '.3%')} per bar, {_pct(vol, '.1%')} annualized"
        + ("" if b["reason"] == "ok" else f" ({b['reason']})")
    )
    return [t, basket]


#: trades shown in the table (the largest), and the smallest shown
SHOWN_TRADES = 20
SMALLEST_TRADE = 5e-5


def suggestion_tables(s: dict[str, Any]) -> list[RenderableType]:
    """The largest trades, the exposures before and after, and the new tilt."""
    target = ", ".join(f"{k}={v:g}" for k, v in s["target"].items())
    lo = "long-only" if s["long_only"] else "long-short"
    trades: dict[str, float] = {k: v for k, v in s["trades"].items() if v is not None}
    order = sorted(trades, key=lambda k: -abs(trades[k]))
    large = [k for k in order if abs(trades[k]) >= SMALLEST_TRADE]
    shown = large[:SHOWN_TRADES]
    caption = (
        f"at {s['bar_time']} ({s['source']}; max weight {s['max_weight']:g}, {lo}) · "
        f"turnover {_num(s['turnover'], '.4f')} · tracking error "
        f"{_pct(s['tracking_error_annual'], '.2%')} annualized"
    )
    if len(shown) < len(large):
        caption += f" · the {len(shown)} largest of {len(large)} trades"
    if len(large) < len(trades):
        caption += f" · {len(trades) - len(large)} below {SMALLEST_TRADE:.0e} not shown"
    if s["left_out"]:
        caption += f" · kept as is (no exposures): {', '.join(s['left_out'])}"
    t = _table(f"trades toward {target}", caption)
    for col in ("symbol", "weight now", "trade", "new weight"):
        t.add_column(col, justify="left" if col == "symbol" else "right", no_wrap=True)
    for symbol in shown:
        t.add_row(
            symbol,
            _num(s["current"].get(symbol, 0.0), "+.4f"),
            _num(s["trades"][symbol], "+.4f"),
            _num(s["weights"][symbol], "+.4f"),
        )
    e = _table("exposures")
    for col in ("factor", "now", "target", "after"):
        e.add_column(col, justify="left" if col == "factor" else "right")
    for name, after in s["exposures"].items():
        want = s["target"].get(name)
        e.add_row(
            name,
            _num(s["current_exposures"][name], "+.3f"),
            "" if want is None else _num(want, "+.3f"),
            _num(after, "+.3f"),
        )
    return [t, e, _sentence(s["tilt"])]
