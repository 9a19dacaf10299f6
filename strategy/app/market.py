"""What the portfolio commands share: the market state at one bar, from recorded
candles (``--data``, the offline runner of :mod:`.offline`) or from the live
service's Redis (``--redis``), and the flags that choose it.

Offline, the bar ``T`` is ``--at`` (default: the data's last bar).  The holdings
are checked against the universe and the as-of closes, read from the candles,
*before* the engine runs, so that bad input costs no run.  ``T`` must be a bar
of some symbol (a cross-section): the engine has no exposures at a grid time
inside a gap of the data.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.analytics.portfolio import Holding, holdings_weights
from factorcast.factors.analytics.riskattr import DEFAULT_VAR_WINDOW
from factorcast.factors.custom import model_registry
from factorcast.strategy.analytics import AnalyticsHistory
from factorcast.strategy.app.commands import UsageError, timestamp_ms
from factorcast.strategy.app.offline import OfflineRun, Recorded, analyze, load
from factorcast.strategy.app.settings import ConfigError, Settings
from factorcast.strategy.engine import StepResult
from factorcast.strategy.market_state import DATA, MarketState, asof_close, grid_closes
from factorcast.strategy.market_state import grid_returns as _grid_returns

FloatArray = NDArray[np.float64]


def add_holdings_argument(parser: argparse.ArgumentParser) -> None:
    """``--holdings FILE``, as ``portfolio`` and ``factor suggest`` take it."""
    parser.add_argument(
        "--holdings",
        type=Path,
        required=True,
        help="CSV (or .json): symbol and weight or quantity, optional CASH row (quantity)",
    )


def add_market_arguments(parser: argparse.ArgumentParser, *, redis: bool = True) -> None:
    """``--data DIR`` (or ``--redis [URL]``), ``--timeframe``, ``--at``, ``--json``,
    ``--quiet``."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--data", type=Path, help="freqtrade-layout candle dir (offline run)")
    if redis:
        where.add_argument(
            "--redis",
            nargs="?",
            const="",
            metavar="URL",
            help="the live service's latest bar on Redis (default URL: redis.url, or the "
            "embedded server of `factorcast run`)",
        )
    parser.add_argument("--timeframe", help="timeframe to read when the directory has several")
    parser.add_argument(
        "--at",
        type=timestamp_ms,
        help="with --data: the bar (open time: ms or ISO-8601, UTC by default); default the last",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as one JSON object, nothing else"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or tables")


# -- offline --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offline:
    """An offline run up to ``T``: the candles, the run, and the closes on the grid."""

    data: Recorded
    bar_ts: int
    grid: NDArray[np.int64]  # the grid times from the data's first bar to T
    closes: FloatArray  # (grid, n): NaN where no bar

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.data.panel.symbols

    @property
    def asof(self) -> FloatArray:
        return asof_close(self.closes)


def offline_closes(args: argparse.Namespace, settings: Settings) -> Offline:
    """Read ``--data`` and place its closes up to ``T`` on the grid."""
    data = load(args, settings)
    panel = data.panel
    bar_ts = int(panel.ts[-1]) if args.at is None else int(args.at)
    data.check_bar(bar_ts)
    close = np.where(panel.present, panel.fields["close"], np.nan)
    grid, closes = grid_closes(panel.ts, close, data.timeframe_ms, int(panel.ts[0]), bar_ts)
    row = int(np.searchsorted(panel.ts, bar_ts))
    if row >= panel.ts.size or int(panel.ts[row]) != bar_ts:
        raise UsageError(f"--at {bar_ts}: no symbol has a bar there (a gap in the data)")
    return Offline(data, bar_ts, grid, closes)


class _AtBar:
    """An output that keeps the exposures and reasons of one bar."""

    def __init__(self, ts: int) -> None:
        self.ts = ts
        self.exposure: FloatArray | None = None
        self.reason: NDArray[np.int8] | None = None

    async def handle(self, result: StepResult) -> None:
        if result.ts == self.ts:
            self.exposure = result.factors.exposure.copy()
            self.reason = result.factors.reason.astype(np.int8)

    async def close(self) -> None:
        pass


async def offline_state(
    off: Offline, settings: Settings, *, progress: bool
) -> tuple[MarketState, OfflineRun]:
    """Run the engine over the candles up to ``T``: the state at ``T`` and the run
    (its history holds every grid step's factor returns)."""
    history = AnalyticsHistory(settings.health.horizons, risk_at=off.bar_ts)
    at = _AtBar(off.bar_ts)
    run = await analyze(
        settings, off.data, history, progress=progress, until=off.bar_ts, outputs=[at]
    )
    risk = history.risk
    if at.exposure is None or at.reason is None or risk is None:
        raise UsageError(f"--at {off.bar_ts}: no grid step of the engine there")
    state = MarketState(
        source=DATA,
        bar_ts=off.bar_ts,
        timeframe_ms=off.data.timeframe_ms,
        symbols=run.symbols,
        names=run.names,
        exposure=at.exposure,
        reason=at.reason,
        close=off.asof,
        risk_names=risk.names,
        covariance=risk.covariance,
        risk_reason=risk.reason,
        specific=risk.specific,
        returns_ts=off.grid,
        returns=_grid_returns(off.closes),
        model=run.model,
    )
    return state, run


# -- either side ----------------------------------------------------------------------


def redis_url(args: argparse.Namespace, settings: Settings) -> str:
    """``--redis URL``, else ``redis.url``, else the embedded server's socket."""
    url: str | None = args.redis or settings.redis.url
    if url:
        return url
    socket = (settings.state_dir / "redis" / "redis.sock").resolve()
    if not socket.exists():
        raise ConfigError(
            "config error: redis.url: not set, and no embedded server at "
            f"{socket} (is `factorcast run` running?)"
        )
    return f"unix://{socket}"


async def market_state(
    args: argparse.Namespace,
    settings: Settings,
    check: Callable[[Sequence[str], FloatArray], Any] | None = None,
) -> MarketState:
    """The state at ``T`` from ``--data`` or ``--redis``; ``check(symbols, asof
    closes)`` runs on the input first (offline: before the engine)."""
    if getattr(args, "redis", None) is not None:
        from factorcast.adapters.redis.snapshot_reader import read_market_state
        from factorcast.strategy.app import preflight

        for flag in ("at", "timeframe"):
            if getattr(args, flag, None) is not None:
                raise UsageError(f"--{flag}: only with --data (Redis holds the latest bar)")
        url = redis_url(args, settings)
        await preflight.check_redis_reachable_by_name(url)
        state = await read_market_state(
            url,
            password=settings.redis.password,
            prefix=settings.redis.prefix,
            history_bars=DEFAULT_VAR_WINDOW,
            timeframe=settings.exchange.timeframe,
        )
        if check is not None:
            check(state.symbols, state.close)
        return state
    off = offline_closes(args, settings)
    if check is not None:
        check(off.symbols, off.asof)
    state, _ = await offline_state(off, settings, progress=not (args.quiet or args.json))
    return state


def check_holdings(holdings: Sequence[Holding]) -> Callable[[Sequence[str], FloatArray], Any]:
    """The check of :func:`market_state` for holdings: they turn into weights."""

    def check(symbols: Sequence[str], close: FloatArray) -> Any:
        return holdings_weights(holdings, symbols, close)

    return check


def regression_names(settings: Settings) -> tuple[str, ...]:
    """The factors of the factor-return regression and the risk model (without
    ``universe``) the settings ask for: ``factors.analytics.factors`` or every model
    factor, in registry order."""
    chosen = settings.factors.analytics.factors
    return tuple(n for n in model_registry(settings.factors).names if chosen is None or n in chosen)
