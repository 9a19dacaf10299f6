"""A live run's universe over time: the symbols it follows can change.

With ``exchange.top_by_volume`` the universe is the exchange's top N markets by
volume, and it is resolved again every ``exchange.refresh_universe_s``.  When it
differs, the run follows the new one from the bar after the last one it published
(``strategy.app.run``): a new source, warmed up from REST history like a
service started then, a new engine, new wire context; the sink and the file
outputs go on.  These are the pieces that carry over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from factorcast.strategy.engine import StepResult
from factorcast.strategy.ports import LiveSource, Readiness
from factorcast.strategy.publish import WireContext

log = structlog.get_logger(__name__)

#: the universe now, or None when the exchange could not tell (the resolver logs why)
Resolve = Callable[[], Awaitable[tuple[str, ...] | None]]


@dataclass(slots=True)
class Following:
    """What the run follows now; a new universe replaces both.  The metrics' clock
    and the health endpoint's readiness ask whichever is current."""

    source: LiveSource
    telemetry: Readiness | None = None  # the metrics' telemetry, once it is built

    def clock(self) -> float:
        """The exchange's time, in seconds."""
        return float(self.source.exchange_now_ms()) / 1000

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        if self.telemetry is None:
            return False, {"data": "starting"}
        ready: tuple[bool, dict[str, Any]] = self.telemetry.readiness()
        return ready


class FileOutput(Protocol):
    async def handle(self, result: StepResult) -> None: ...

    async def close(self) -> None: ...

    def set_context(self, ctx: WireContext) -> None: ...


class KeepOpen:
    """An output that outlives one universe: a pipeline's end does not close it (the
    run closes it once, at its end), and it takes each bar time once: a new
    universe's warm-up history, bars it already has, is not written again."""

    def __init__(self, inner: FileOutput, after: int | None = None) -> None:
        self.inner = inner
        self.after = after  # the newest bar time it has

    async def handle(self, result: StepResult) -> None:
        if self.after is not None and result.ts <= self.after:
            return
        self.after = result.ts
        await self.inner.handle(result)

    async def close(self) -> None:
        return None


async def watch_universe(
    resolve: Resolve, symbols: Sequence[str], period_s: float | None
) -> tuple[str, ...]:
    """Resolve the universe every ``period_s`` (wall seconds; None: never) and return
    it when it differs from ``symbols`` (as a set: the order is the resolver's)."""
    if period_s is None:
        await asyncio.Event().wait()
    assert period_s is not None
    current = set(symbols)
    while True:
        await asyncio.sleep(period_s)
        new = await resolve()
        if new is not None and set(new) != current:
            log.info(
                "universe_changed",
                joined=sorted(set(new) - current),
                left=sorted(current - set(new)),
                symbols=len(new),
            )
            return new
