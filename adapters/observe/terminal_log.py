"""The log's terminal path: a flood of one event as one line with a count, and every
line written whole, through the live display's rich Console while one is drawn.

Only console-rendered logs (a terminal) come this way; the JSON log keeps every event.
A line written straight to a terminal under a rich ``Live`` lands inside the live
region and the next refresh tears the table; ``Console.print`` on the Live's own
console puts it above the region instead (what ``Live`` does with its redirected
stdout and stderr).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console
from rich.text import Text

EventDict = dict[str, Any]

# per-symbol fields: gathered across a flood's events, not compared
_SYMBOL_KEYS = ("symbol", "symbols")
_SHOWN_SYMBOLS = 5


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. arrays: no single truth value
        return False


@dataclass(slots=True)
class _Flood:
    first: EventDict
    count: int = 1
    symbols: dict[str, None] = field(default_factory=dict)  # an ordered set
    common: EventDict = field(default_factory=dict)

    def add_symbols(self, event_dict: EventDict) -> None:
        one = event_dict.get("symbol")
        if isinstance(one, str):
            self.symbols[one] = None
        many = event_dict.get("symbols")
        if isinstance(many, list | tuple):
            self.symbols.update((str(s), None) for s in many)

    def summary(self) -> EventDict:
        if self.count == 1:
            return self.first
        text = f"{self.first['event']} ×{self.count}"
        if self.symbols:
            names = list(self.symbols)
            shown = ", ".join(names[:_SHOWN_SYMBOLS])
            more = f", … {len(names)} in all" if len(names) > _SHOWN_SYMBOLS else ""
            text += f" (symbols: {shown}{more})"
        out = {**self.common, "event": text}
        if "timestamp" in self.first:
            out["timestamp"] = self.first["timestamp"]  # the flood's first
        return out


class FloodCollapser:
    """Collapses the repeats of one event within a time window into one event.

    Events are the same when level and event name are.  The window opens at the
    first event held and closes ``window_s`` later; then each event seen comes out
    once, in order of first appearance: unchanged if it came once, else as
    ``name ×count`` with the symbols of all its repeats (``symbol`` and ``symbols``
    fields) and only the fields every repeat agreed on.  An event carrying an
    exception is never held.  No clock and no I/O: the caller passes the time and
    writes what comes out.
    """

    def __init__(self, window_s: float = 1.0) -> None:
        self.window_s = window_s
        self._floods: dict[tuple[str, str], _Flood] = {}
        self._opened = 0.0

    @property
    def deadline(self) -> float | None:
        """When the open window closes (None: nothing is held)."""
        return self._opened + self.window_s if self._floods else None

    def add(self, event_dict: EventDict, now: float) -> list[EventDict]:
        """Hold one event; returns what is due to be written now."""
        out = self.due(now)
        if self.window_s <= 0 or "exception" in event_dict:
            return [*out, *self.flush(), event_dict]
        key = (str(event_dict.get("level", "")), str(event_dict.get("event", "")))
        flood = self._floods.get(key)
        if flood is None:
            if not self._floods:
                self._opened = now
            flood = self._floods[key] = _Flood(event_dict)
            flood.common = {
                k: v
                for k, v in event_dict.items()
                if k not in _SYMBOL_KEYS and k not in {"event", "timestamp"}
            }
        else:
            flood.count += 1
            flood.common = {
                k: v for k, v in flood.common.items() if k in event_dict and _same(v, event_dict[k])
            }
        flood.add_symbols(event_dict)
        return out

    def due(self, now: float) -> list[EventDict]:
        """Everything held, if the window has closed by ``now``."""
        deadline = self.deadline
        return self.flush() if deadline is not None and now >= deadline else []

    def flush(self) -> list[EventDict]:
        """Everything held, now: one event per kind."""
        out = [flood.summary() for flood in self._floods.values()]
        self._floods.clear()
        return out


def _same_terminal(stream: TextIO, console: Console) -> bool:
    """Whether lines for ``stream`` would land on the screen ``console`` draws on."""
    if not console.is_terminal:
        return False
    file = console.file
    if stream is file:
        return True
    try:
        return (
            stream.isatty()
            and file.isatty()
            and os.path.samestat(os.fstat(stream.fileno()), os.fstat(file.fileno()))
        )
    except (AttributeError, OSError, ValueError):  # no file descriptor behind one of them
        return False


class TerminalLog:
    """The logger at the end of the console path (structlog's ``logger_factory``).

    It takes each event dict from the last processor, collapses floods, renders
    with ``render`` and writes whole lines to ``stream``, or, while routed
    (:meth:`through`), prints them on a rich Console.  A daemon timer closes each
    window; :meth:`flush` (also run at exit) writes whatever is still held.
    """

    def __init__(
        self,
        stream: TextIO,
        render: Callable[[EventDict], str],
        window_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self._render = render
        self._clock = clock
        self._collapser = FloodCollapser(window_s)
        self._console: Console | None = None
        self._timer: threading.Timer | None = None
        self._lock = threading.RLock()

    def msg(self, event_dict: EventDict) -> None:
        with self._lock:
            self._write(self._collapser.add(event_dict, self._clock()))
            self._arm()

    debug = info = warning = warn = error = critical = exception = fatal = failure = err = msg

    def flush(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._write(self._collapser.flush())

    @contextmanager
    def through(self, console: Console) -> Iterator[None]:
        """Print on ``console`` while inside, if it draws on this log's terminal."""
        if not _same_terminal(self.stream, console):
            yield
            return
        with self._lock:
            self._console = console
        try:
            yield
        finally:
            with self._lock:
                self.flush()
                self._console = None

    def _arm(self) -> None:
        deadline = self._collapser.deadline
        if deadline is None or self._timer is not None:
            return
        self._timer = threading.Timer(max(0.0, deadline - self._clock()), self._close_window)
        self._timer.daemon = True
        self._timer.start()

    def _close_window(self) -> None:
        with self._lock:
            if threading.current_thread() is self._timer:  # not a timer flush() cancelled
                self.flush()

    def _write(self, events: list[EventDict]) -> None:
        for event_dict in events:
            line = self._render(dict(event_dict))
            if self._console is not None:
                self._console.print(Text.from_ansi(line))
            else:
                self.stream.write(line + "\n")
                self.stream.flush()


_installed: TerminalLog | None = None


def install(terminal: TerminalLog | None) -> None:
    """Make ``terminal`` the process's terminal log (None: logs are not on a terminal)."""
    global _installed  # noqa: PLW0603 - the logging configuration is process-wide too
    if _installed is not None and _installed is not terminal:
        _installed.flush()
    _installed = terminal


def flush_logs() -> None:
    """Write every line held back, now."""
    if _installed is not None:
        _installed.flush()


@contextmanager
def logs_through(console: Console) -> Iterator[None]:
    """While inside, terminal log lines are printed on ``console`` (above its ``Live``)."""
    if _installed is None:
        yield
        return
    with _installed.through(console):
        yield


atexit.register(flush_logs)
