"""The asyncio service: source -> bounded queue -> engine -> bounded queue -> outputs.

One ``asyncio.TaskGroup`` owns the named long-lived tasks.  Backpressure is
explicit: the queues are bounded, so a slow output slows the engine, and a slow
engine slows the source; nothing is dropped here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import structlog

from factorcast.strategy.engine import Engine, StepResult
from factorcast.strategy.events import CrossSection
from factorcast.strategy.ports import MarketSource

log = structlog.get_logger(__name__)


EventLoopChoice = Literal["auto", "uvloop", "asyncio"]


def loop_factory(choice: EventLoopChoice = "auto") -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop the service runs on: uvloop where it is installed (``auto``; a
    dependency of ccxt on Linux), or asyncio's own.  Same semantics; uvloop's loop
    and transports cost less per websocket message and per wake-up, about a tenth of
    the live path's CPU (bench/live_latency.py ``--event-loop``).  Raises
    ImportError if ``uvloop`` is asked for and missing."""
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return asyncio.new_event_loop
    return uvloop.new_event_loop


class Output(Protocol):
    """Anything that consumes step results: files, displays, the Redis sink."""

    async def handle(self, result: StepResult) -> None: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class RunStats:
    cross_sections: int = 0
    live_cross_sections: int = 0
    bars: int = 0
    stopped_early: bool = False


_END = object()

#: Called after every engine step: (result, step seconds, source queue depth,
#: output queue depth).
StepObserver = Callable[[StepResult, float, int, int], None]


async def run_pipeline(
    source: MarketSource,
    engine: Engine,
    outputs: Sequence[Output],
    *,
    max_bars: int | None = None,
    stop: asyncio.Event | None = None,
    queue_size: int = 64,
    on_step: StepObserver | None = None,
) -> RunStats:
    """Drive ``engine`` from ``source`` until the source ends, ``max_bars`` live
    cross-sections were processed, or ``stop`` is set; then drain the queues and
    close the outputs."""
    stats = RunStats()
    stop = stop or asyncio.Event()
    xs_queue: asyncio.Queue[CrossSection | object] = asyncio.Queue(queue_size)
    out_queue: asyncio.Queue[StepResult | object] = asyncio.Queue(queue_size)

    async def read_source() -> None:
        try:
            async for xs in source.cross_sections():
                await xs_queue.put(xs)
        finally:
            if stop.is_set():  # the engine may be gone: never block on a full queue
                with contextlib.suppress(asyncio.QueueFull):
                    xs_queue.put_nowait(_END)
            else:
                await xs_queue.put(_END)

    async def run_engine() -> None:
        while not stop.is_set():
            item = await xs_queue.get()
            if item is _END:
                break
            assert isinstance(item, CrossSection)
            started = time.perf_counter()
            result = engine.step(item)
            if on_step is not None:
                on_step(result, time.perf_counter() - started, xs_queue.qsize(), out_queue.qsize())
            stats.cross_sections += 1
            stats.live_cross_sections += item.live
            stats.bars += int(item.present.sum())
            await out_queue.put(result)
            if max_bars is not None and stats.live_cross_sections >= max_bars:
                stats.stopped_early = True
                stop.set()
        await out_queue.put(_END)

    async def feed_outputs() -> None:
        while (item := await out_queue.get()) is not _END:
            assert isinstance(item, StepResult)
            for output in outputs:
                await output.handle(item)

    async def watch_stop(source_task: asyncio.Task[None]) -> None:
        await stop.wait()
        source_task.cancel()

    try:
        async with asyncio.TaskGroup() as tg:
            source_task = tg.create_task(read_source(), name="source")
            tg.create_task(run_engine(), name="engine")
            outputs_task = tg.create_task(feed_outputs(), name="outputs")
            watcher = tg.create_task(watch_stop(source_task), name="stop-watch")
            await outputs_task
            watcher.cancel()
    finally:
        for output in outputs:
            await output.close()
    log.info("pipeline_finished", cross_sections=stats.cross_sections, bars=stats.bars)
    return stats
