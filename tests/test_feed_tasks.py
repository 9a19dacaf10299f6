"""The live source's task owner and the queue it hands cross-sections out through,
without an exchange: a supervised task that keeps failing stops the feed loudly,
after the cross-sections released before it."""

from __future__ import annotations

import asyncio

import pytest

from factorcast.adapters.exchange.client import FeedError
from factorcast.adapters.exchange.feed import FeedStats
from factorcast.adapters.exchange.intake import Intake
from factorcast.adapters.exchange.tasks import MAX_RESTARTS, FeedTasks
from factorcast.strategy.gate import CandleGate

TF = 60_000


def intake_of(gate: CandleGate, stats: FeedStats, bound: int = 2) -> Intake:
    return Intake(
        gate,
        stats,
        bound=bound,
        on_stranger=lambda i: None,
        on_gap=lambda gap: None,
        on_late=lambda i, ts: None,
        on_released=lambda ts: False,
    )


def bar(price: float = 10.0) -> list[float]:
    return [price, price * 1.01, price * 0.99, price, 1.0]


async def test_a_task_that_keeps_failing_stops_the_feed_after_what_was_released() -> None:
    stats = FeedStats()
    gate = CandleGate(["A"], TF)
    gate.start(0)
    intake = intake_of(gate, stats)
    tasks = FeedTasks(stats, on_give_up=intake.fail)
    for t in range(4):
        intake.offer(0, t * TF, bar(1 + t))
    intake.release()
    assert intake.queued() == 2  # the bound; the gate keeps 2 TF
    runs = 0

    async def dies() -> None:
        nonlocal runs
        runs += 1
        raise ConnectionError("gone")

    tasks.supervise("probe", dies)
    assert tasks.names() == ["feed-probe"]
    while tasks.names():
        await asyncio.sleep(0.05)
    assert runs == MAX_RESTARTS + 1
    assert stats.task_restarts == MAX_RESTARTS + 1
    # what was queued before the failure comes out first, then the failure
    assert [(await intake.get()).ts for _ in range(2)] == [0, TF]
    with pytest.raises(FeedError, match="keeps failing"):
        await intake.get()
    await tasks.close()


async def test_close_cancels_every_task_and_nothing_starts_after_it() -> None:
    stats = FeedStats()
    tasks = FeedTasks(stats, on_give_up=lambda e: None)
    forever = asyncio.Event()
    tasks.supervise("loop", forever.wait)
    tasks.spawn("fetch", forever.wait())
    await asyncio.sleep(0)
    assert tasks.names() == ["feed-fetch", "feed-loop"]
    await tasks.close()
    assert tasks.names() == []
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("feed-")]
    assert tasks.spawn("late", forever.wait()) is None
    assert stats.task_restarts == 0  # cancelled by close: not restarted
