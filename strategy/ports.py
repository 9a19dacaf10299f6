"""The small ports through which the engine talks to the outside.

Concrete adapters (ccxt sources, Redis, files, the exchange simulator) live in
``adapters/`` and are wired in by the composition root (``strategy.app.cli``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from factorcast.strategy.events import CrossSection


@dataclass(frozen=True, slots=True)
class Publication:
    """Everything one closed cross-section publishes, already serialized.

    ``signals`` holds ``(signal id, JSON bytes)`` in symbol order; the id is the
    wire id ``{strategy}:{exchange}:{symbol}:{timeframe}:{bar_ts}``.
    ``exposures`` maps symbol to the JSON of ``{bar_ts, exposures, missing, model}``.
    ``heartbeat`` is the ISO-8601 UTC time of the bar.
    """

    bar_ts: int
    signals: tuple[tuple[str, bytes], ...]
    exposures: dict[str, bytes]
    heartbeat: str


class MarketSource(Protocol):
    """Closed cross-sections, in bar-time order."""

    def cross_sections(self) -> AsyncIterator[CrossSection]: ...


class SignalSink(Protocol):
    """Takes each cross-section's publication; may buffer, must not lose.  An
    outage is not an error: ``publish`` keeps what it cannot deliver, and counts
    whatever it cannot keep."""

    async def publish(self, publication: Publication) -> None: ...

    async def flush(self) -> None: ...
