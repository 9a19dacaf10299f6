"""The live data path: the real ccxt clients against the embedded exchange on loopback.

Bars advance by hand (``BinanceSim.advance``), so every test knows exactly which
candles the exchange has; a second market with the same seed is the truth the
released cross-sections are compared with, value for value.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from factorcast.adapters.exchange.client import Backoff, ExchangeClient, resolve_universe
from factorcast.adapters.exchange.source import CcxtSource, FeedTiming, pro_client
from factorcast.adapters.sim.binance import BinanceSim, Market, aligned_start_ms
from factorcast.adapters.sim.market import SimulatedMarket
from factorcast.strategy.events import CrossSection

pytestmark = pytest.mark.integration

TF = 60_000
HISTORY = 40
N = 6


def market(missing: float = 0.0) -> SimulatedMarket:
    start = aligned_start_ms(int(time.time() * 1000), TF, HISTORY)
    return SimulatedMarket(N, seed=11, timeframe_ms=TF, start_ms=start, missing_prob=missing)


def timing_for(stale_after_s: float = 30.0, grace_s: float = 2.0) -> FeedTiming:
    """Exchange time is frozen between manual advances: stale_after is wall time here."""
    return FeedTiming(
        grace_s=grace_s,
        stale_after_s=stale_after_s,
        min_grace_wall_s=0.3,
        min_stale_wall_s=stale_after_s,
        poll_interval_s=0.05,
    )


@dataclass
class Live:
    sim: BinanceSim
    source: CcxtSource
    client: ExchangeClient
    truth: dict[str, Any]
    got: list[CrossSection]

    def live(self) -> list[CrossSection]:
        return [x for x in self.got if x.live]

    async def wait_for(self, n_live: int, timeout: float = 15.0) -> list[CrossSection]:
        deadline = time.monotonic() + timeout
        while len(self.live()) < n_live:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.live())} of {n_live} live cross-sections")
            await asyncio.sleep(0.01)
        return self.live()

    def check_against_truth(self, sections: list[CrossSection]) -> None:
        ts = self.truth["ts"]
        for xs in sections:
            row = int(np.searchsorted(ts, xs.ts))
            assert ts[row] == xs.ts
            want_present = np.isfinite(self.truth["close"][row])
            np.testing.assert_array_equal(xs.present, want_present, err_msg=f"bar {xs.ts}")
            assert not xs.late.any()
            for field in ("open", "high", "low", "close", "volume"):
                np.testing.assert_array_equal(
                    getattr(xs, field)[want_present], self.truth[field][row][want_present]
                )


@contextlib.asynccontextmanager
async def live_source(
    mode: str = "ws",
    missing: float = 0.0,
    timing: FeedTiming | None = None,
    before_start: Any = None,
    queue_bars: int = 8,
    reading: asyncio.Event | None = None,
) -> AsyncIterator[Live]:
    """``reading``: when given, the consumer takes a cross-section only while it is set."""
    feed = market(missing)
    truth = market(missing).history_arrays(HISTORY + 60)
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(BinanceSim(feed, history_bars=HISTORY, decimals=None))
        config = sim.ccxt_config()
        config["timeout"] = 1500
        client = ExchangeClient("binance", config, backoff=Backoff(0.01, 0.1, 0.02), seed=1)
        stack.push_async_callback(client.close)
        pro = None
        if mode == "ws":
            pro = pro_client("binance", config)
            stack.push_async_callback(pro.close)
        symbols = await resolve_universe(client, None, None, None)
        assert symbols == tuple(feed.symbols)
        if before_start is not None:
            before_start(sim)
        source = CcxtSource(
            client,
            symbols,
            "1m",
            history_bars=HISTORY,
            mode=mode,
            pro=pro,
            timing=timing or timing_for(),
            queue_bars=queue_bars,
        )
        stack.push_async_callback(source.aclose)
        live = Live(sim, source, client, truth, [])

        async def consume() -> None:
            async for xs in source.cross_sections():
                live.got.append(xs)
                if reading is not None:
                    await reading.wait()

        task = asyncio.create_task(consume())

        async def stop_consuming() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        stack.push_async_callback(stop_consuming)
        deadline = time.monotonic() + 10
        while not live.got and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            task.result()  # the source failed: show why
        if mode == "ws":
            # The bars a test pushes from here on must reach the websocket: wait until
            # the exchange holds the subscription to every symbol (or refused it).
            streams = {f"{Market.of(s).stream_prefix}kline_{sim.interval}" for s in symbols}
            await wait_until(
                lambda: (
                    streams <= set().union(*sim.subscriptions())
                    or source.stats.subscriptions_refused > 0
                )
            )
        yield live


async def advance(sim: BinanceSim, bars: int, pause: float = 0.05) -> None:
    for _ in range(bars):
        await sim.advance(1)
        await asyncio.sleep(pause)


async def test_warm_up_backfills_the_history_the_windows_need() -> None:
    async with live_source() as live:
        warm = [x for x in live.got if not x.live]
        assert len(warm) == HISTORY
        assert warm[0].ts == live.truth["ts"][0]
        live.check_against_truth(warm)


@pytest.mark.parametrize("mode", ["ws", "rest"])
async def test_live_bars_arrive_complete_and_exact(mode: str) -> None:
    async with live_source(mode, missing=0.05) as live:
        await advance(live.sim, 12)
        sections = await live.wait_for(11)
        assert [x.ts for x in sections] == sorted({x.ts for x in sections})
        live.check_against_truth(sections)
        assert live.source.gate.stats.late == 0
        if mode == "ws":
            assert live.source.stats.ws_updates > 0


async def test_5xx_burst_during_warm_up_is_retried_and_counted() -> None:
    async with live_source(before_start=lambda sim: sim.faults.server_errors(4)) as live:
        assert live.client.errors["ExchangeNotAvailable"] == 4
        live.check_against_truth([x for x in live.got if not x.live])


async def test_429_and_418_back_off_and_count() -> None:
    def faults(sim: BinanceSim) -> None:
        sim.faults.rate_limited(2, retry_after_s=1).banned(1, retry_after_s=1)

    async with live_source(before_start=faults) as live:
        assert live.client.errors["DDoSProtection"] == 3
        assert len([x for x in live.got if not x.live]) == HISTORY


async def test_html_answer_with_200_is_not_taken_for_candles() -> None:
    async with live_source(before_start=lambda sim: sim.faults.html_pages(3)) as live:
        assert sum(live.client.errors.values()) >= 3
        warm = [x for x in live.got if not x.live]
        assert len(warm) == HISTORY
        live.check_against_truth(warm)


async def test_slow_answers_time_out_and_are_retried() -> None:
    async with live_source(before_start=lambda sim: sim.faults.slow(2.0, n=1)) as live:
        assert live.client.errors["RequestTimeout"] == 1
        assert len([x for x in live.got if not x.live]) == HISTORY


async def test_websocket_drop_reconnects_resubscribes_and_backfills() -> None:
    async with live_source() as live:
        await advance(live.sim, 3)
        await live.wait_for(2)
        dropped = await live.sim.faults.drop_websockets()
        assert dropped >= 1
        await advance(live.sim, 6)
        sections = await live.wait_for(8)
        live.check_against_truth(sections)
        assert live.source.stats.reconnects >= 1
        assert live.client.errors["NetworkError"] >= 1
        want = [int(t) for t in live.truth["ts"][HISTORY : HISTORY + len(sections)]]
        assert [x.ts for x in sections] == want  # no bar lost across the drop


async def test_frames_that_do_not_parse_are_passed_over_and_lose_no_bar() -> None:
    """Kline events cut short cannot be decoded: the reader counts and passes over
    each (ccxt's own receive loop would stop reading without a word, until the
    staleness watchdog noticed), keeps the connection, and the bars whose closing
    events they were come from REST."""
    async with live_source(timing=timing_for(grace_s=60.0)) as live:
        await advance(live.sim, 2)
        await live.wait_for(2)
        live.sim.faults.garble_klines(ticks=3)
        await advance(live.sim, 4)
        sections = await live.wait_for(6)  # staleness (30 s) and grace (60 s) far away
        live.check_against_truth(sections)
        assert live.source.pro.garbled_frames == 3
        assert live.source.stats.reconnects == 0
        assert live.client.errors["NetworkError"] == 0
        assert live.source.gate.stats.late == 0
        want = [int(t) for t in live.truth["ts"][HISTORY : HISTORY + len(sections)]]
        assert [x.ts for x in sections] == want


async def test_silent_websocket_falls_back_to_rest() -> None:
    async with live_source(timing=timing_for(stale_after_s=0.8)) as live:
        await advance(live.sim, 2)
        await live.wait_for(1)
        live.sim.faults.stall_websockets()
        await advance(live.sim, 4, pause=0.4)  # silent far longer than stale_after
        sections = await live.wait_for(5, timeout=20)
        live.check_against_truth(sections)
        assert live.source.stats.rest_fallbacks > 0
        live.sim.faults.resume_websockets()
        await advance(live.sim, 3)
        live.check_against_truth(await live.wait_for(8, timeout=20))


async def test_a_symbol_without_bars_is_missing_never_invented() -> None:
    async with live_source(missing=0.25) as live:
        await advance(live.sim, 10)
        sections = await live.wait_for(9)
        live.check_against_truth(sections)
        assert any(not x.present.all() for x in sections)
        assert live.source.gate.stats.late == 0


async def test_the_closing_kline_releases_its_bar_without_the_next_bar() -> None:
    """Binance flags the kline that closes a bar: the bar goes out on it, not when the
    next bar's first kline comes (on Binance, with its next update)."""
    async with live_source(timing=timing_for(grace_s=60.0)) as live:
        live.sim.faults.omit_klines(opening=True, ticks=3)
        await advance(live.sim, 3)
        sections = await live.wait_for(3)  # the grace deadline is a minute away
        live.check_against_truth(sections)
        assert live.source.stats.rest_checks == 0


async def test_a_bar_whose_closing_kline_was_lost_comes_from_rest() -> None:
    """When the next bar starts before a bar's closing kline came, the bar is over but
    its last update may lack its final trades: it is taken from REST, exactly."""
    async with live_source(timing=timing_for(grace_s=60.0)) as live:
        await advance(live.sim, 1)
        await live.wait_for(1)
        live.sim.faults.omit_klines(closing=True)
        await advance(live.sim, 3)
        sections = await live.wait_for(4)  # the grace deadline is a minute away
        live.check_against_truth(sections)
        assert live.source.stats.rest_checks == 0
        assert live.source.gate.stats.late == 0


async def test_the_kline_stream_is_not_deflated() -> None:
    """Inflating every kline event costs more CPU than its bandwidth is worth: the
    Binance reader does not offer permessage-deflate (the exchange would accept it)."""
    async with live_source() as live:
        await advance(live.sim, 1)
        await live.wait_for(1)
        (client,) = live.source.pro.clients.values()
        assert client.connection.compress == 0


async def test_forming_updates_take_the_text_shortcut_and_closing_ones_do_not() -> None:
    """The embedded exchange writes its events as Binance does, so every update of a
    bar still forming is read from its text, and every closing one is decoded."""
    async with live_source() as live:
        (client,) = live.source.pro.clients.values()
        read = client.on_text
        outcomes: list[tuple[bool, bool]] = []

        def counting(text: str) -> bool:
            taken = read(text)
            outcomes.append(('"x":true' in text, taken))
            return bool(taken)

        client.on_text = counting
        await advance(live.sim, 2)
        sections = await live.wait_for(2)
        live.check_against_truth(sections)
        n = len(live.source.symbols)
        # a bar goes out on its last closing kline: the forming ones after it may
        # still be on their way
        await wait_until(lambda: len(outcomes) >= 4 * n)
        assert outcomes.count((False, True)) == outcomes.count((True, False)) == 2 * n
        assert len(outcomes) == 4 * n


async def test_a_warm_up_slower_than_the_stale_limit_goes_live_on_the_websocket() -> None:
    """Silence is measured from when a symbol went live: a warm-up that outlasts the
    stale limit (rate-limited REST on a real exchange) must not make the watchdog
    take the fresh websocket for a silent one."""
    stale = 0.6

    def slow_warm_up(sim: BinanceSim) -> None:
        sim.faults.slow(1.0, n=N, path="/api/v3/klines")  # one page per symbol, > stale

    async with live_source(
        timing=timing_for(stale_after_s=stale), before_start=slow_warm_up
    ) as live:
        for _ in range(6):  # bars more than a stale period apart on the wall clock
            await live.sim.advance(1)
            await asyncio.sleep(stale / 3)
        sections = await live.wait_for(5)
        live.check_against_truth(sections)
        assert live.source.stats.rest_fallbacks == 0
        assert live.source.stats.reconnects == 0
        assert not live.source.stats.stale_symbols
        assert live.source.degraded() is None


async def test_a_stalled_websocket_reconnects_and_the_feed_recovers() -> None:
    """The watchdog drops a connection silent for every symbol; the reconnect must
    survive it (closing ccxt's client used to cancel the task that reconnects) and
    the feed must end up on the websocket again, not on REST polling for good."""
    async with live_source(timing=timing_for(stale_after_s=0.6)) as live:
        await advance(live.sim, 2)
        await live.wait_for(1)
        live.sim.faults.stall_websockets()
        await advance(live.sim, 3, pause=0.5)
        await wait_until(lambda: live.source.stats.reconnects >= 1)
        assert live.source.degraded() is not None
        live.sim.faults.resume_websockets()
        updates = live.source.stats.ws_updates
        await advance_until(live.sim, lambda: live.source.stats.ws_updates > updates)
        await wait_until(lambda: live.source.degraded() is None)
        live.check_against_truth(await live.wait_for(6, timeout=20))
        assert live.source.stats.task_restarts == 0
        assert live.source.gate.stats.late == 0


async def test_a_refused_subscription_is_logged_counted_and_retried() -> None:
    async with live_source(
        timing=timing_for(stale_after_s=0.6),
        before_start=lambda sim: sim.faults.refuse_subscriptions(1),
    ) as live:
        await wait_until(lambda: live.source.stats.subscriptions_refused == 1)
        refused = live.source.degraded()
        assert refused is not None and "subscription refused" in refused
        await advance(live.sim, 4)
        live.check_against_truth(await live.wait_for(3, timeout=20))
        # the next subscription is accepted: the feed runs on the websocket again
        updates = live.source.stats.ws_updates
        await advance_until(live.sim, lambda: live.source.stats.ws_updates > updates)
        await wait_until(lambda: live.source.degraded() is None)
        assert live.source.stats.subscriptions_refused == 1


async def wait_until(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def advance_until(sim: BinanceSim, condition: Any, bars: int = 40) -> None:
    """Push bars (a third of a second apart) until ``condition`` holds."""
    for _ in range(bars):
        await sim.advance(1)
        await asyncio.sleep(0.3)
        if condition():
            return
    raise AssertionError(f"condition not met within {bars} bars")


async def test_a_feed_task_that_dies_is_restarted() -> None:
    """ccxt cancels the watches pending on a client it closes; a feed task that ends
    that way (or any other way) is started again instead of leaving the feed
    without it.  The failing task is a stand-in: the real tasks no longer die that
    way, which is the point of the supervision."""
    failures = 2
    runs = 0

    async def dies_twice() -> None:
        nonlocal runs
        runs += 1
        if runs <= failures:
            raise asyncio.CancelledError  # as from a future ccxt cancelled
        await asyncio.Event().wait()

    async with live_source() as live:
        live.source.tasks.supervise("probe", dies_twice)
        await wait_until(lambda: runs == failures + 1)
        assert live.source.stats.task_restarts == failures
        await advance(live.sim, 3)
        live.check_against_truth(await live.wait_for(2))


async def test_the_services_own_stall_is_not_taken_for_a_silent_websocket() -> None:
    """The process stands still (here a blocking call on its event loop, as a host
    pause or a long collection would): what the exchange sent meanwhile waits unread
    in the socket.  Silence and the grace deadline count only while the service was
    listening, so the healthy connection is kept and no bar goes late."""
    async with live_source(timing=timing_for(stale_after_s=0.6, grace_s=0.5)) as live:
        await advance(live.sim, 2)
        await live.wait_for(1)
        for _ in range(3):
            await live.sim.advance(1)  # the klines are written to the socket ...
            time.sleep(1.2)  # ... and the service stands still past stale and grace
        sections = await live.wait_for(4)
        live.check_against_truth(sections)
        assert live.source.stats.reconnects == 0
        assert live.source.stats.rest_fallbacks == 0
        assert live.source.gate.stats.late == 0


async def test_a_consumer_that_does_not_read_holds_the_gate_back_and_loses_nothing() -> None:
    """The queue of released cross-sections is bounded.  While the consumer does not
    read, the queue fills to its bound and the gate keeps the bars that are ready
    after it: none is dropped, none goes late, and the full queue is counted once.
    When the consumer reads again, every bar comes out in order, value for value."""
    reading = asyncio.Event()
    reading.set()
    async with live_source(queue_bars=2, reading=reading) as live:
        source = live.source
        await advance(live.sim, 1)
        await live.wait_for(1)
        released = source.gate.stats.released
        reading.clear()  # the consumer takes one more cross-section, then stops
        most = 0
        for _ in range(6):
            await live.sim.advance(1)
            for _ in range(5):
                await asyncio.sleep(0.02)
                most = max(most, source.intake.queued())
        assert most == 2  # the bound held
        assert len(live.live()) == 2
        assert source.gate.stats.released - released == 3  # one taken, two queued
        assert source.stats.queue_full == 1
        reading.set()
        sections = await live.wait_for(7)
        assert [x.ts for x in sections] == [sections[0].ts + k * TF for k in range(7)]
        live.check_against_truth(sections)
        assert source.gate.stats.late == 0
        assert source.stats.queue_full == 1  # one episode
        assert source.intake.queued() == 0


async def test_every_task_of_the_source_is_named_owned_and_ends_with_it() -> None:
    """The source's tasks are named ``feed-...`` and belong to its task owner; an
    unexpected failure of a short-lived one is logged and counted; after ``aclose``
    none is left, and nothing starts any more."""

    def running() -> set[str]:
        return {t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("feed-")}

    async def bug() -> None:
        raise RuntimeError("a bug in a REST fetch")

    async with live_source() as live:
        await advance(live.sim, 2)
        await live.wait_for(1)
        names = live.source.tasks.names()
        assert {"feed-websocket", "feed-deadlines"} <= set(names)
        assert running() <= set(names)
        live.source.tasks.spawn("probe", bug())
        await wait_until(lambda: live.source.stats.task_failures == 1)
        await live.source.aclose()
        assert running() == set()
        assert live.source.tasks.names() == []
        assert live.source.tasks.spawn("after", asyncio.sleep(0)) is None
