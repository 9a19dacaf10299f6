"""Turning a step result into wire objects (SIGNALS.md sections 4 and 5)."""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from factorcast.factors import REASON_LABELS, FactorSnapshot
from factorcast.strategy.actions import ACTION_LABELS
from factorcast.strategy.analytics_wire import with_analytics
from factorcast.strategy.engine import StepResult
from factorcast.strategy.ports import Publication, SignalSink
from factorcast.strategy.signals import reason_labels
from factorcast.strategy.wire import SCHEMA_ID, iso_ms, sign


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


def _close_or_none(value: float) -> float | None:
    """The bar's close on the wire: ``null`` where the symbol has no bar."""
    return value if math.isfinite(value) else None


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
    close = np.where(result.xs.present, result.xs.close, np.nan)[at].tolist()
    out: list[dict[str, Any]] = []
    for j, i in enumerate(rows):
        exp, missing = maps[i]
        obj = signal_object(
            ctx,
            ctx.symbols[i],
            bar_ts,
            bar_time,
            produced_at,
            ACTION_LABELS[action[j] + 1],
            ACTION_LABELS[base_action[j] + 1],
            ACTION_LABELS[factor_action[j] + 1],
            confidence[j],
            base_confidence[j],
            score[j],
            exp,
            missing,
            list(_SIGNAL_REASONS[reasons[j]]),
            _close_or_none(close[j]),
        )
        if ctx.signing_key is not None:
            obj["sig"] = sign(obj, ctx.signing_key)
        out.append(obj)
    return out


def signal_object(
    ctx: WireContext,
    symbol: str,
    bar_ts: Any,
    bar_time: Any,
    produced_at: Any,
    action: Any,
    base_action: Any,
    factor_action: Any,
    confidence: Any,
    base_confidence: Any,
    factor_score: Any,
    exposures: Any,
    missing: Any,
    reasons: Any,
    close: Any,
) -> dict[str, Any]:
    """One wire object (SIGNALS.md section 4) from its values, fields in wire order:
    the one layout the signal dicts, the byte templates (:class:`_Templates`) and
    the benchmarks' synthetic signals are made from.  Without ``sig``."""
    return {
        "schema": SCHEMA_ID,
        "id": f"{ctx.strategy}:{ctx.exchange}:{symbol}:{ctx.timeframe}:{bar_ts}",
        "strategy": ctx.strategy,
        "exchange": ctx.exchange,
        "symbol": symbol,
        "timeframe": ctx.timeframe,
        "bar_ts": bar_ts,
        "bar_time": bar_time,
        "produced_at": produced_at,
        "action": action,
        "base_action": base_action,
        "factor_action": factor_action,
        "confidence": confidence,
        "base_confidence": base_confidence,
        "factor_score": factor_score,
        "exposures": exposures,
        "missing": missing,
        "reasons": reasons,
        "model": ctx.model,
        "close": close,
    }


def _exposure_state(
    bar_ts: Any, close: Any, exposures: Any, missing: Any, model: str
) -> dict[str, Any]:
    """The latest-exposures state of one symbol, fields in wire order (SIGNALS.md
    section 5): ``close`` is the bar's close, ``null`` for a symbol without one (late)."""
    return {
        "bar_ts": bar_ts,
        "close": close,
        "exposures": exposures,
        "missing": missing,
        "model": model,
    }


def exposure_members(result: StepResult) -> list[int]:
    """Rows published as exposures: the cross-section plus symbols that were late."""
    xs = result.xs
    members = xs.present | xs.late if xs.late.size else xs.present
    return np.flatnonzero(members).tolist()


def publication(result: StepResult, ctx: WireContext) -> Publication:
    """The signals and latest-exposure states of one step, serialized once.

    The bytes are exactly ``orjson.dumps`` of the wire objects :func:`signal_dicts`
    builds (the tests hold them to that), but made without them: each symbol's
    object is a byte template (:class:`_Templates`) filled with the bar's values,
    and the numbers of the whole bar are formatted by one ``orjson.dumps`` call.
    Signed signals take the dict path (the signature covers the canonical JSON), as
    do contexts whose names contain the template marker."""
    members = exposure_members(result)
    t = None if ctx.signing_key is not None else _templates(ctx)
    if t is None:
        return _publication_of_dicts(result, ctx, members)
    ts = result.ts
    bar_ts = b"%d" % ts
    exposures, missing = _exposure_fragments(result.factors, members)
    xs = result.xs
    at = np.asarray(members, dtype=np.intp)
    closes = [row[0] for row in _formatted(np.where(xs.present[at], xs.close[at], np.nan)[:, None])]
    state = t.state
    states = {
        ctx.symbols[i]: state % (bar_ts, close, exp, miss)
        for i, close, exp, miss in zip(members, closes, exposures, missing, strict=True)
    }

    sig, present = result.signals, result.xs.present
    rows = np.flatnonzero(present)
    numbers = _formatted(
        np.column_stack((sig.confidence[rows], sig.base_confidence[rows], sig.factor_score[rows]))
    )
    per_row = zip(
        rows.tolist(),
        np.flatnonzero(present[members]).tolist(),  # the row's place among the members
        numbers,
        (sig.action[rows] + 1).tolist(),
        (sig.base_action[rows] + 1).tolist(),
        (sig.factor_action[rows] + 1).tolist(),
        sig.reasons[rows].tolist(),
        strict=True,
    )
    times = (bar_ts, bar_ts, orjson.dumps(iso_ms(ts)), orjson.dumps(iso_ms(result.produced_at_ms)))
    label, reason_json, id_suffix = _ACTION_JSON, _REASON_JSON, str(ts)
    signals = tuple(
        (
            t.ids[i] + id_suffix,
            t.signals[i]
            % (
                *times,
                label[action],
                label[base_action],
                label[factor_action],
                *values,  # confidence, base_confidence, factor_score
                exposures[k],
                missing[k],
                reason_json[reasons],
                closes[k],
            ),
        )
        for i, k, values, action, base_action, factor_action, reasons in per_row
    )
    pub = Publication(bar_ts=ts, signals=signals, exposures=states, heartbeat=iso_ms(ts))
    return with_analytics(pub, result, ctx.symbols, ctx.model)


def _publication_of_dicts(result: StepResult, ctx: WireContext, members: list[int]) -> Publication:
    maps = _exposure_maps(result.factors, members)
    rows = np.flatnonzero(result.xs.present).tolist()
    signals = _signal_dicts(result, ctx, rows, maps)
    dumps = orjson.dumps
    xs = result.xs
    states = {
        ctx.symbols[i]: dumps(
            _exposure_state(
                result.ts,
                _close_or_none(float(xs.close[i])) if xs.present[i] else None,
                exp,
                missing,
                ctx.model,
            )
        )
        for i, (exp, missing) in maps.items()
    }
    pub = Publication(
        bar_ts=result.ts,
        signals=tuple((s["id"], dumps(s)) for s in signals),
        exposures=states,
        heartbeat=iso_ms(result.ts),
    )
    return with_analytics(pub, result, ctx.symbols, ctx.model)


# -- byte templates -------------------------------------------------------------------

_ACTION_JSON: tuple[bytes, ...] = tuple(orjson.dumps(label) for label in ACTION_LABELS)
_REASON_JSON: tuple[bytes, ...] = tuple(orjson.dumps(list(r)) for r in _SIGNAL_REASONS)


@dataclass(frozen=True, slots=True)
class _Templates:
    """``%``-templates of one context's wire objects, made by serializing the wire
    objects themselves with a marker in place of each value (so field order and
    string escaping are orjson's own), then turning the markers into ``%b``."""

    signals: tuple[bytes, ...]  # per symbol
    ids: tuple[str, ...]  # per symbol: the signal id without its bar time
    state: bytes


#: the values of a signal template, in the order they appear in it
_SIGNAL_SLOTS = (
    "bar_ts",  # inside the id
    "bar_ts",
    "bar_time",
    "produced_at",
    "action",
    "base_action",
    "factor_action",
    "confidence",
    "base_confidence",
    "factor_score",
    "exposures",
    "missing",
    "reasons",
    "close",
)


def _template(obj: dict[str, Any], slots: Sequence[str]) -> bytes:
    """``obj`` (with :func:`_slot` markers for values) as JSON bytes with ``%b`` in
    place of each marker: a quoted marker stands for a whole JSON value, a marker
    inside a string for text within it.  Fails if the markers are not ``slots``."""
    raw = orjson.dumps(obj)
    found = [m.decode() for m in _MARKER.findall(raw)]
    if found != list(slots):  # the layout changed, or a string contains a marker
        raise ValueError(f"wire template has slots {found}, expected {list(slots)}")
    raw = raw.replace(b"%", b"%%")
    return _MARKER.sub(b"%b", _QUOTED_MARKER.sub(b"%b", raw))


_MARK = "\u2063"  # an invisible separator


def _slot(name: str) -> str:
    return f"{_MARK}{name}{_MARK}"


_MARKER = re.compile(_slot(r"(\w+)").encode())
_QUOTED_MARKER = re.compile(b'"' + _slot(r"\w+").encode() + b'"')


@functools.lru_cache(maxsize=16)
def _templates(ctx: WireContext) -> _Templates | None:
    texts = (ctx.strategy, ctx.exchange, ctx.timeframe, ctx.model, *ctx.symbols)
    if any(_MARK in text for text in texts):
        return None
    marker = {name: _slot(name) for name in _SIGNAL_SLOTS}
    signals = [
        _template(signal_object(ctx, symbol, **marker), _SIGNAL_SLOTS) for symbol in ctx.symbols
    ]
    state_slots = ("bar_ts", "close", "exposures", "missing")
    bar_ts, close, exposures, missing = (_slot(name) for name in state_slots)
    state = _exposure_state(bar_ts, close, exposures, missing, ctx.model)
    return _Templates(
        signals=tuple(signals),
        ids=tuple(f"{ctx.strategy}:{ctx.exchange}:{s}:{ctx.timeframe}:" for s in ctx.symbols),
        state=_template(state, state_slots),
    )


@functools.lru_cache(maxsize=16)
def _exposures_template(names: tuple[str, ...]) -> bytes:
    slots = [f"e{k}" for k in range(len(names))]
    return _template(dict(zip(names, map(_slot, slots), strict=True)), slots)


def _formatted(values: NDArray[np.float64]) -> list[list[bytes]]:
    """Each number of an ``(n, k)`` array as orjson writes it (NaN as null), by
    one ``dumps`` of the whole array."""
    if values.shape[0] == 0:
        return []
    text = orjson.dumps(
        np.ascontiguousarray(values, dtype=np.float64), option=orjson.OPT_SERIALIZE_NUMPY
    )
    return [row.split(b",") for row in text[2:-2].split(b"],[")]


def _exposure_fragments(
    snapshot: FactorSnapshot, members: list[int]
) -> tuple[list[bytes], list[bytes]]:
    """Per member row: the JSON of its ``exposures`` (null where a reason says why)
    and of its ``missing`` map, as :func:`_exposure_maps` makes them."""
    at = np.asarray(members, dtype=np.intp)
    reason = snapshot.reason[at]
    template = _exposures_template(snapshot.names)
    values = np.where(reason == 0, snapshot.exposure[at], np.nan)
    exposures = [template % tuple(row) for row in _formatted(values)]
    missing = [b"{}"] * len(members)
    for j in np.flatnonzero(reason.any(axis=1)).tolist():
        whys = zip(snapshot.names, reason[j].tolist(), strict=True)
        missing[j] = orjson.dumps({name: REASON_LABELS[why] for name, why in whys if why})
    return exposures, missing


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
