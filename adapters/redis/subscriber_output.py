"""What ``factorcast subscribe`` prints: exact wire JSON lines, or a live table.

:func:`run_subscriber` reads through a :class:`~adapters.redis.subscriber.SignalSubscriber`
(consumer group, at-least-once delivery, dedupe, signature checks: see that module)
and shows each signal once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, BinaryIO, Literal

import structlog
from pydantic import SecretStr
from rich.console import Console, JustifyMethod
from rich.live import Live
from rich.table import Table
from rich.text import Text

from factorcast.adapters.observe.terminal_log import logs_through
from factorcast.adapters.redis.subscriber import DEFAULT_GROUP, SignalSubscriber, SubscriberStats

__all__ = ["run_subscriber", "signal_table"]

_log = structlog.get_logger("factorcast.adapters.redis.subscriber")  # one logger for both

_ACTION_STYLE = {"buy": "green", "sell": "red", "hold": "dim"}


def _num(value: object, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, int | float) else "—"


def signal_table(latest: dict[str, dict[str, Any]], stats: SubscriberStats) -> Table:
    """The latest signal per symbol."""
    table = Table(
        caption=(
            f"received {stats.received}  yielded {stats.yielded}  "
            f"duplicates {stats.duplicates}  rejected {stats.rejected}"
        ),
        caption_justify="left",
    )
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("symbol", "left"),
        ("action", "left"),
        ("confidence", "right"),
        ("factor score", "right"),
        ("bar time", "left"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=True)
    for symbol in sorted(latest):
        s = latest[symbol]
        action = str(s.get("action", "—"))
        table.add_row(
            symbol,
            Text(action, style=_ACTION_STYLE.get(action, "")),
            _num(s.get("confidence"), ".2f"),
            _num(s.get("factor_score"), "+.2f"),
            str(s.get("bar_time", "—")),
        )
    return table


async def run_subscriber(
    url: str,
    *,
    password: SecretStr | None = None,
    prefix: str = "factorcast",
    group: str = DEFAULT_GROUP,
    consumer: str | None = None,
    from_start: bool = False,
    signing_key: bytes | SecretStr | None = None,
    output: Literal["table", "json"] = "json",
    max_messages: int | None = None,
    stop: asyncio.Event | None = None,
    block_ms: int = 5_000,
    out: BinaryIO | None = None,
    console: Console | None = None,
) -> SubscriberStats:
    """Print signals until ``max_messages`` were shown or ``stop`` is set.

    ``json``: one signal per line, exactly the wire JSON, to ``out`` (stdout).
    ``table``: a live table of the latest signal per symbol on ``console``.
    """
    sub = SignalSubscriber(
        url,
        password=password,
        prefix=prefix,
        group=group,
        consumer=consumer,
        from_start=from_start,
        signing_key=signing_key,
        block_ms=block_ms,
        stop=stop,
    )
    shown = 0
    async with sub:
        if output == "json":
            stream = out if out is not None else sys.stdout.buffer
            while max_messages is None or shown < max_messages:
                received = await sub.get()
                if received is None:
                    break
                stream.write(received.data + b"\n")
                shown += 1
                if not sub.buffered:
                    stream.flush()  # once per batch: prompt, without a syscall per line
            stream.flush()
        else:
            latest: dict[str, dict[str, Any]] = {}
            with (
                Live(signal_table(latest, sub.stats), console=console, auto_refresh=False) as live,
                logs_through(live.console),  # log lines above the table, not inside it
            ):
                last_render = 0.0
                while max_messages is None or shown < max_messages:
                    received = await sub.get()
                    if received is None:
                        break
                    latest[str(received.signal.get("symbol", "?"))] = received.signal
                    shown += 1
                    now = time.monotonic()
                    if not sub.buffered or now - last_render >= 0.25:
                        live.update(signal_table(latest, sub.stats), refresh=True)
                        last_render = now
                live.update(signal_table(latest, sub.stats), refresh=True)
    _log.info(
        "subscriber_stopped",
        stream=sub.stream,
        group=sub.group,
        consumer=sub.consumer,
        received=sub.stats.received,
        yielded=sub.stats.yielded,
        duplicates=sub.stats.duplicates,
        rejected=sub.stats.rejected,
    )
    return sub.stats
