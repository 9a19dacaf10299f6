"""A bar that comes late, through the real ccxt client and the embedded exchange: the
recorded Bittrex candles served live, one symbol's closing kline held back past the
grace deadline (its REST candles refused meanwhile), then pushed.  The late
cross-section goes out with the symbol ``late``; every one after it equals, bit for
bit, what replay gives over the same candles.

In process rather than through ``factorcast run``: the test holds the kline and
waits for each condition (the late release, the late bar taken) on the objects
themselves.  The pipeline is the service's own (``run_pipeline``, ``CcxtSource``,
``Engine``); only Redis is left out, which plays no part in the numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from factorcast.adapters.exchange.client import Backoff, ExchangeClient, resolve_universe
from factorcast.adapters.exchange.source import CcxtSource, FeedTiming, pro_client
from factorcast.adapters.files.recorded import load_directory
from factorcast.adapters.files.replay import Panel
from factorcast.adapters.sim.binance import BinanceSim, retime
from factorcast.factors import FactorModel, FactorParams, Reason
from factorcast.strategy.app.settings import SignalSettings
from factorcast.strategy.engine import Engine, StepResult
from factorcast.strategy.events import LateBar
from factorcast.strategy.gate import TOO_LATE
from factorcast.strategy.service import run_pipeline
from factorcast.strategy.strategies import Trend

pytestmark = pytest.mark.integration

BEFORE = 3  # live bars before the late one
AFTER = 24  # live bars after it: past the 21-bar windows it used to spoil


def make_engine(symbols: tuple[str, ...], tf: int) -> Engine:
    """The engine of ``factorcast run`` and ``replay`` on default settings."""
    n = len(symbols)
    return Engine(
        symbols, tf, FactorModel(n, FactorParams()), Trend(symbols), SignalSettings().to_view()
    )


class Collect:
    def __init__(self) -> None:
        self.results: list[StepResult] = []

    async def handle(self, result: StepResult) -> None:
        self.results.append(result)

    async def close(self) -> None:
        pass


async def until(what: str, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def served(data: Path, history: int) -> AsyncIterator[tuple[BinanceSim, CcxtSource]]:
    candles = load_directory(data)
    feed = retime(
        candles.series,
        timeframe_ms=candles.timeframe_ms,
        history_bars=history,
        now_ms=int(time.time() * 1000),
    )
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(BinanceSim(feed, history_bars=history, decimals=None))
        config = {**sim.ccxt_config(), "timeout": 3000}
        client = ExchangeClient("binance", config, backoff=Backoff(0.01, 0.1, 0.02), seed=1)
        stack.push_async_callback(client.close)
        pro = pro_client("binance", config)
        stack.push_async_callback(pro.close)
        symbols = await resolve_universe(client, None, None, None)
        timing = FeedTiming(
            grace_s=2.0, stale_after_s=300.0, min_grace_wall_s=0.3, min_stale_wall_s=300.0
        )
        source = CcxtSource(
            client, symbols, candles.timeframe, history_bars=history, pro=pro, timing=timing
        )
        stack.push_async_callback(source.aclose)
        yield sim, source


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def assert_same(live: StepResult, replay: StepResult) -> None:
    for f in ("raw", "exposure", "reason", "members"):
        assert same_bits(getattr(live.factors, f), getattr(replay.factors, f)), (f, replay.ts)
    for f in ("action", "confidence", "insufficient"):
        assert same_bits(getattr(live.decision, f), getattr(replay.decision, f)), (f, replay.ts)
    for f in live.signals.__dataclass_fields__:
        assert same_bits(getattr(live.signals, f), getattr(replay.signals, f)), (f, replay.ts)


@pytest.mark.parametrize("kline", ["pushed", "lost"])
async def test_a_closing_kline_held_past_the_grace_deadline_is_taken_in(
    shared_data: Path, kline: str
) -> None:
    """``pushed``: the held kline comes after the deadline.  ``lost``: it never comes
    (the websocket will not bring that bar again), and the source asks REST for the
    late bar until the exchange serves it."""
    history = FactorParams().history_bars
    panel = Panel.from_recorded(load_directory(shared_data))
    tf = int(panel.ts[1] - panel.ts[0])
    warm = int((panel.ts < panel.ts[0] + history * tf).sum())
    row = warm + BEFORE  # the late bar's row in the panel (every row has bars here)
    assert panel.ts[row] == panel.ts[0] + row * tf
    late_symbol = next(
        j for j in range(len(panel.symbols)) if panel.present[row - 1 : row + AFTER + 1, j].all()
    )
    name = panel.symbols[late_symbol]

    out = Collect()
    async with served(shared_data, history) as (sim, source):
        assert source.symbols == panel.symbols
        engine = make_engine(source.symbols, tf)
        stop = asyncio.Event()
        pipeline = asyncio.create_task(run_pipeline(source, engine, [out], stop=stop))
        n = len(source.symbols)
        await until("the warm-up", lambda: len(out.results) == warm)
        await until("the subscriptions", lambda: len(set().union(*sim.subscriptions())) == n)

        async def bar(k: int) -> None:
            assert await sim.advance(1) == 1
            await until(f"live bar {k}", lambda: len(out.results) == warm + k + 1)

        for k in range(BEFORE):
            await bar(k)
        sim.faults.hold_closing_kline(name)
        await bar(BEFORE)  # released at the grace deadline, the symbol late
        assert out.results[-1].xs.late.tolist() == [j == late_symbol for j in range(n)]
        if kline == "pushed":
            assert await sim.release_held() == 1
        else:
            assert len(sim.faults.take_held()) == 1  # dropped: REST serves the bar again
        await until("the late bar", lambda: source.gate.stats.outcomes[TOO_LATE] == 1)
        for k in range(BEFORE + 1, BEFORE + 1 + AFTER):
            await bar(k)
        stop.set()
        await pipeline
    assert source.client.errors["ExchangeNotAvailable"] > 0  # REST had no word on it

    live = out.results
    shift = live[0].ts - int(panel.ts[0])
    assert shift % tf == 0 and shift > 0
    replay_engine = make_engine(panel.symbols, tf)
    replay = [replay_engine.step(panel.cross_section(t)) for t in range(row + AFTER + 1)]
    assert [r.ts + shift for r in replay] == [r.ts for r in live]

    for t in (*range(row), *range(row + 1, len(live))):
        assert_same(live[t], replay[t])
    late, carrier = live[row], live[row + 1]
    assert (late.factors.reason[late_symbol] == Reason.LATE).all()  # as it went out
    assert not same_bits(late.factors.exposure, replay[row].factors.exposure)
    values = [panel.fields[f][row, late_symbol] for f in ("open", "high", "low", "close")]
    assert [(b.ts - shift, b.symbol) for b in carrier.amended] == [
        (int(panel.ts[row]), late_symbol)
    ]
    (amended,) = carrier.amended
    assert isinstance(amended, LateBar)
    assert [amended.open, amended.high, amended.low, amended.close] == values
