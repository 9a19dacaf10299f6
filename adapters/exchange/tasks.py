"""The one owner of every task the live source starts.

Long-lived tasks (the connection watch, the REST poll, the deadlines, the markets'
refresh, a per-symbol watch) run under :meth:`FeedTasks.supervise`: named, started
again when they end or fail, and after ``MAX_RESTARTS`` failures in a row the feed
gives up loudly (``on_give_up``: the source's ``cross_sections`` raises).
Short-lived ones (a REST catch-up, a backfill, a reconnect) go through
:meth:`FeedTasks.spawn`: named, tracked, an unexpected failure logged and counted.
:meth:`FeedTasks.close` cancels and awaits them all, and nothing starts after it:
no task outlives the source.

Why an owner object rather than an ``asyncio.TaskGroup``: the source hands its
cross-sections out of an async generator, and a TaskGroup held open across its
``yield`` would deliver a child's failure as a cancellation of whichever task is
iterating the generator, wherever that task happens to be (PEP 789).  Tasks are
also started from ccxt's message handlers, which run outside any ``async with``.
A failure is therefore turned into a value the consumer receives, at its place in
the queue, and the owner's lifetime is the source's (``aclose``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

from factorcast.adapters.exchange.client import FeedUnavailable
from factorcast.adapters.exchange.feed import FeedStats

log = structlog.get_logger(__name__)

#: a supervised feed task is started again this many times in a row at most; a run
#: longer than ``STABLE_S`` seconds resets the count
MAX_RESTARTS = 5
STABLE_S = 60.0


class FeedTasks:
    """Named tasks of one source, cancelled together by :meth:`close`."""

    def __init__(self, stats: FeedStats, on_give_up: Callable[[BaseException], None]) -> None:
        self.stats = stats
        self._on_give_up = on_give_up
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def names(self) -> list[str]:
        """The names of the tasks running now."""
        return sorted(task.get_name() for task in self._tasks)

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
        """Run ``coro`` as task ``feed-{name}``; None (and ``coro`` is not run) once
        the source is closed."""
        if self._closed:
            coro.close()
            return None
        task = asyncio.get_running_loop().create_task(coro, name=f"feed-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.stats.task_failures += 1
            log.error("feed_task_failed", task=task.get_name(), error=repr(task.exception()))

    def supervise(self, name: str, run: Callable[[], Awaitable[object]]) -> None:
        """Run a long-lived feed task that must never end: one that returns or
        fails (also by a CancelledError that did not come from :meth:`close`, as
        ccxt raises when it closes a client under a pending watch) is logged and
        started again; past ``MAX_RESTARTS`` in a row the feed gives up loudly."""

        async def supervised() -> None:
            restarts = 0
            while True:
                started = time.monotonic()
                try:
                    await run()
                    error = "returned"
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise  # close: the feed is stopping
                    error = "CancelledError"
                except Exception as e:
                    error = repr(e)
                if time.monotonic() - started > STABLE_S:
                    restarts = 0
                restarts += 1
                self.stats.task_restarts += 1
                if restarts > MAX_RESTARTS:
                    log.error("feed_task_gave_up", task=name, error=error, restarts=restarts)
                    self._on_give_up(FeedUnavailable(f"feed task {name!r} keeps failing: {error}"))
                    return
                log.error("feed_task_restarted", task=name, error=error, restarts=restarts)
                await asyncio.sleep(min(0.05 * 2**restarts, 5.0))

        self.spawn(name, supervised())

    async def close(self) -> None:
        """Cancel every task and wait for them; nothing is started afterwards."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
