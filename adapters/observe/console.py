"""Terminal output with rich: replay progress, closing summary, the live table."""

from __future__ import annotations

import math
import time
from collections import Counter
from contextlib import ExitStack
from types import TracebackType

import numpy as np
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from factorcast.adapters.observe.analytics_tables import live_health_table
from factorcast.adapters.observe.terminal_log import flush_logs, logs_through
from factorcast.factors import CANONICAL, REASON_LABELS, REGISTRY, FactorRegistry
from factorcast.strategy.actions import ACTION_LABELS
from factorcast.strategy.engine import StepResult
from factorcast.strategy.wire import iso_ms

_ACTION_STYLE = {"buy": "green", "sell": "red", "hold": "dim"}


def wide_console(stderr: bool = False, factors: int = 6) -> Console:
    """A console; off a terminal, wide enough for the exposure table of ``factors``
    factors (the six, and the custom ones of a configuration)."""
    console = Console(stderr=stderr)
    width = max(120, 36 + 7 * factors)
    return console if console.is_terminal else Console(stderr=stderr, width=width)


def _fmt(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{x:+.2f}"


class SignalCounter:
    """Counts signals by action and keeps the latest step: the closing summary's data."""

    def __init__(self) -> None:
        self.by_action: Counter[str] = Counter()
        self.last: StepResult | None = None
        self.signals = 0

    async def handle(self, result: StepResult) -> None:
        acts = result.signals.action[result.xs.present]
        for code, n in zip(*np.unique(acts, return_counts=True), strict=True):
            self.by_action[ACTION_LABELS[int(code) + 1]] += int(n)
        self.signals += int(acts.size)
        self.last = result

    async def close(self) -> None:
        return None


def headers(names: tuple[str, ...]) -> tuple[str, ...]:
    """Short column headers, one per factor, all different: the six's first four
    letters (``mark``, ``size``, ...); a custom factor's too where no other factor's
    are the same, else its first letter and last three (``alpha001``, ``alpha006``:
    ``a001``, ``a006``), else its first six letters, else its whole name."""

    def candidates(name: str) -> tuple[str, ...]:
        return (name[:4], name[:1] + name[-3:], name[:6], name)

    out = [name[:4] for name in names if name in CANONICAL]
    for name in names:
        if name in CANONICAL:
            continue
        firsts = {other[:4] for other in names if other != name}
        taken = set(out) | firsts
        out.append(next((c for c in candidates(name) if c not in taken), name))
    order = [n for n in names if n in CANONICAL] + [n for n in names if n not in CANONICAL]
    by_name = dict(zip(order, out, strict=True))
    return tuple(by_name[name] for name in names)


def exposure_table(
    result: StepResult,
    symbols: tuple[str, ...],
    limit: int | None = None,
    title: str = "",
    registry: FactorRegistry = REGISTRY,
) -> Table:
    """Latest exposures and signals, strongest factor scores first; the factors'
    labels from ``registry`` (the model's: the six and the custom factors)."""
    snap, sig = result.factors, result.signals
    short = headers(snap.names)
    rows = np.flatnonzero(result.xs.present | (result.xs.late if result.xs.late.size else False))
    rows = rows[np.argsort(-np.abs(sig.factor_score[rows]), kind="stable")]
    if limit is not None:
        rows = rows[:limit]
    table = Table(
        title=title or f"exposures at {iso_ms(result.ts)}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        caption=" · ".join(
            f"{head} {registry[name].display_label()}"
            for head, name in zip(short, snap.names, strict=True)
        ),
        caption_justify="left",
    )
    table.add_column("symbol", no_wrap=True)
    for head in short:
        table.add_column(head, justify="right", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("act", no_wrap=True)
    table.add_column("conf", justify="right", no_wrap=True)
    for i in rows:
        cells = []
        for k in range(len(snap.names)):
            e = float(snap.exposure[i, k])
            cells.append(_fmt(e) if math.isfinite(e) else REASON_LABELS[snap.reason[i, k]][:5])
        present = bool(result.xs.present[i])
        action = ACTION_LABELS[int(sig.action[i]) + 1] if present else "—"
        table.add_row(
            symbols[i],
            *cells,
            _fmt(float(sig.factor_score[i])),
            Text(action, style=_ACTION_STYLE.get(action, "")),
            f"{sig.confidence[i]:.2f}" if present else "—",
        )
    return table


def counts_table(by_action: Counter[str], title: str = "signals by action") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("act", no_wrap=True)
    table.add_column("signals", justify="right")
    for action in ("buy", "sell", "hold"):
        table.add_row(Text(action, style=_ACTION_STYLE[action]), str(by_action.get(action, 0)))
    table.add_row("total", str(sum(by_action.values())))
    return table


class ReplayProgress:
    """A progress bar on stderr while a replay runs."""

    def __init__(self, total: int, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("replay"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task("replay", total=total)
        self._logs = ExitStack()

    def update(self, done: int) -> None:
        if done % 256 == 0 or done == self._progress.tasks[0].total:
            self._progress.update(self._task, completed=done)

    def __enter__(self) -> ReplayProgress:
        self._progress.start()
        self._logs.enter_context(logs_through(self._progress.console))  # lines above the bar
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._logs.close()
        self._progress.stop()


class LiveDisplay:
    """The live-updating table of ``factorcast run``.

    While it is drawn, the terminal log prints through its console, so log lines
    land above the table instead of inside it (and stray writes to stdout and
    stderr go the same way: ``Live`` redirects them).
    """

    def __init__(
        self,
        symbols: tuple[str, ...],
        source_label: str,
        rows: int = 20,
        console: Console | None = None,
        registry: FactorRegistry = REGISTRY,
    ) -> None:
        self.symbols = symbols
        self.registry = registry
        self.source_label = source_label
        self.rows = rows
        self.counter = SignalCounter()
        self.console = console or wide_console(factors=len(registry))
        self._live = Live(
            console=self.console,
            refresh_per_second=4,
            transient=False,
            redirect_stdout=True,
            redirect_stderr=True,
        )
        self._logs = ExitStack()
        self._started = False
        self._rendered_at = 0.0

    def _render(self) -> Group:
        last = self.counter.last
        assert last is not None
        head = Text(
            f"{self.source_label} · bar {iso_ms(last.ts)} · {self.counter.signals} signals "
            f"(buy {self.counter.by_action['buy']}, sell {self.counter.by_action['sell']}, "
            f"hold {self.counter.by_action['hold']})"
        )
        exposures = exposure_table(last, self.symbols, self.rows, "latest", self.registry)
        health = live_health_table(last)
        return Group(head, exposures) if health is None else Group(head, exposures, health)

    async def handle(self, result: StepResult) -> None:
        if not result.xs.live:
            return  # warm-up history: the table shows live bars only
        await self.counter.handle(result)
        now = time.monotonic()
        if now - self._rendered_at < 0.1:
            return
        self._rendered_at = now
        self._start()
        self._live.update(self._render())

    def _start(self) -> None:
        if not self._started:
            self._live.start()
            self._logs.enter_context(logs_through(self.console))
            self._started = True

    async def close(self) -> None:
        if self.counter.last is not None:
            self._start()
            try:
                flush_logs()  # what the log still holds goes above the last table
                self._live.update(self._render(), refresh=True)
            finally:
                self._live.stop()
                if not self.console.is_terminal:
                    self.console.line()  # Live ends its last render off a terminal mid-line
                self._logs.close()
                self._started = False
