"""Turning a step result into wire objects (SIGNALS.md sections 4 and 5)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from factors import REASON_LABELS, FactorSnapshot
from strategy.actions import ACTION_LABELS
from strategy.engine import StepResult
from strategy.ports import Publication, SignalSink
from strategy.signals import reason_labels
from strategy.wire import SCHEMA_ID, iso_ms, sign


@dataclass(frozen=True, slots=True)
class WireContext:
    """What every signal of one service carries besides the numbers."""

    strategy: str
    exchange: str
    timeframe: str
    symbols: tuple[str, ...]
    model: str
    signing_key: bytes | None = None


ExposureMaps = tuple[dict[str, float | None], dict[str, str]]

#: ``reason_labels`` of every value of the uint8 reason bits, computed once.
_SIGNAL_REASONS: tuple[tuple[str, ...], ...] = tuple(tuple(reason_labels(b)) for b in range(256))


def _exposure_maps(snapshot: FactorSnapshot, rows: Sequence[int]) -> dict[int, ExposureMaps]:
    """Row -> (factor -> exposure or None, factor -> reason of each None).  Rows are
    zipped whole, then the few with missing exposures are patched."""
    names = snapshot.names
    at = np.asarray(rows, dtype=np.intp)
    reason = snapshot.reason[at]
    exposures = snapshot.exposure[at].tolist()
    # rows of an (n, k) array: the lengths match, and strict zips cost a third more
    out: dict[int, ExposureMaps] = {
        i: (dict(zip(names, exp_row, strict=False)), {})
        for i, exp_row in zip(rows, exposures, strict=False)
    }
    for j in np.flatnonzero(reason.any(axis=1)).tolist():
        exp, missing = out[rows[j]]
        for name, why in zip(names, reason[j].tolist(), strict=True):
            if why:
                exp[name] = None
                missing[name] = REASON_LABELS[why]
    return out


def signal_dicts(result: StepResult, ctx: WireContext) -> list[dict[str, Any]]:
    """One wire object per symbol in the cross-section, in universe order."""
    rows = np.flatnonzero(result.xs.present).tolist()
    return _signal_dicts(result, ctx, rows, _exposure_maps(result.factors, rows))


def _signal_dicts(
    result: StepResult, ctx: WireContext, rows: list[int], maps: dict[int, ExposureMaps]
) -> list[dict[str, Any]]:
    sig = result.signals
    bar_ts = result.ts
    bar_time = iso_ms(bar_ts)
    produced_at = iso_ms(result.produced_at_ms)
    at = np.asarray(rows, dtype=np.intp)
    action = sig.action[at].tolist()
    base_action = sig.base_action[at].tolist()
    factor_action = sig.factor_action[at].tolist()
    confidence = sig.confidence[at].tolist()
    base_confidence = sig.base_confidence[at].tolist()
    score = sig.factor_score[at].tolist()
    reasons = sig.reasons[at].tolist()
    out: list[dict[str, Any]] = []
    for j, i in enumerate(rows):
        symbol = ctx.symbols[i]
        exp, missing = maps[i]
        obj: dict[str, Any] = {
            "schema": SCHEMA_ID,
            "id": f"{ctx.strategy}:{ctx.exchange}:{symbol}:{ctx.timeframe}:{bar_ts}",
            "strategy": ctx.strategy,
            "exchange": ctx.exchange,
            "symbol": symbol,
            "timeframe": ctx.timeframe,
            "bar_ts": bar_ts,
            "bar_time": bar_time,
            "produced_at": produced_at,
            "action": ACTION_LABELS[action[j] + 1],
            "base_action": ACTION_LABELS[base_action[j] + 1],
            "factor_action": ACTION_LABELS[factor_action[j] + 1],
            "confidence": confidence[j],
            "base_confidence": base_confidence[j],
            "factor_score": score[j],
            "exposures": exp,
            "missing": missing,
            "reasons": list(_SIGNAL_REASONS[reasons[j]]),
            "model": ctx.model,
        }
        if ctx.signing_key is not None:
            obj["sig"] = sign(obj, ctx.signing_key)
        out.append(obj)
    return out


def exposure_members(result: StepResult) -> list[int]:
    """Rows published as exposures: the cross-section plus symbols that were late."""
    xs = result.xs
    members = xs.present | xs.late if xs.late.size else xs.present
    return np.flatnonzero(members).tolist()


def publication(result: StepResult, ctx: WireContext) -> Publication:
    """The signals and latest-exposure states of one step, serialized once.  The
    signals' rows are a subset of the exposures' (late symbols have no signal), so
    one set of exposure maps serves both."""
    members = exposure_members(result)
    maps = _exposure_maps(result.factors, members)
    rows = np.flatnonzero(result.xs.present).tolist()
    signals = _signal_dicts(result, ctx, rows, maps)
    dumps = orjson.dumps
    states = {
        ctx.symbols[i]: dumps(
            {"bar_ts": result.ts, "exposures": exp, "missing": missing, "model": ctx.model}
        )
        for i, (exp, missing) in maps.items()
    }
    return Publication(
        bar_ts=result.ts,
        signals=tuple((s["id"], dumps(s)) for s in signals),
        exposures=states,
        heartbeat=iso_ms(result.ts),
    )


class PublishingOutput:
    """Hands every live cross-section to a :class:`SignalSink`.  Warm-up history is
    not published: its signals would be stale the moment they appear."""

    def __init__(
        self,
        sink: SignalSink,
        ctx: WireContext,
        on_published: Callable[[float], None] | None = None,
    ) -> None:
        self.sink = sink
        self.ctx = ctx
        self._on_published = on_published
        self.published = 0

    async def handle(self, result: StepResult) -> None:
        if not result.xs.live:
            return
        started = time.perf_counter()
        await self.sink.publish(publication(result, self.ctx))
        self.published += 1
        if self._on_published is not None:
            self._on_published(time.perf_counter() - started)

    async def close(self) -> None:
        await self.sink.flush()
