"""Wire bytes of a step (strategy.publish.publication) against the wire objects
written out field by field from SIGNALS.md and serialized by orjson: byte for byte,
over bars with missing bars, too little history, late symbols and awkward names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest

from factorcast.adapters.sim.market import SimulatedMarket
from factorcast.factors import REASON_LABELS, FactorModel, FactorParams
from factorcast.strategy.app.settings import SignalSettings
from factorcast.strategy.engine import Engine, StepResult
from factorcast.strategy.events import CrossSection
from factorcast.strategy.publish import WireContext, _templates, publication
from factorcast.strategy.signals import reason_labels
from factorcast.strategy.strategies import Trend
from factorcast.strategy.wire import Signal, iso_ms, verify

N = 12
LABELS = {-1: "sell", 0: "hold", 1: "buy"}
PARAMS = FactorParams(
    beta_window=20,
    beta_min_obs=10,
    size_window=20,
    size_min_obs=10,
    momentum_lag=5,
    value_lag=15,
    volatility_window=8,
    volatility_min_obs=6,
    liquidity_window=8,
    liquidity_min_obs=6,
)


def steps(symbols: list[str], bars: int = 60) -> Iterator[StepResult]:
    """Engine steps over a market with missing bars; every fifth bar marks the
    symbols without a bar late."""
    feed = SimulatedMarket(len(symbols), seed=3, timeframe_ms=60_000, missing_prob=0.15)
    model = FactorModel(len(symbols), PARAMS)
    engine = Engine(symbols, 60_000, model, Trend(symbols), SignalSettings().to_view())
    h = feed.history_arrays(bars)
    for k, ts in enumerate(h["ts"].tolist()):
        present = np.isfinite(h["close"][k])
        late = ~present if k % 5 == 0 else np.zeros(len(symbols), dtype=bool)
        fields = (h[f][k] for f in ("open", "high", "low", "close", "volume"))
        qv = np.full(len(symbols), np.nan)
        yield engine.step(CrossSection(ts, *fields, qv, present, late))


def expected(result: StepResult, ctx: WireContext) -> tuple[list[Any], dict[str, bytes]]:
    """The publication written out by hand: ``(id, object)`` per signal, and the
    exposure state bytes per symbol."""
    f, s, ts = result.factors, result.signals, result.ts

    def exposures(i: int) -> tuple[dict[str, Any], dict[str, str]]:
        exp: dict[str, Any] = {}
        missing: dict[str, str] = {}
        for k, name in enumerate(f.names):
            why = int(f.reason[i, k])
            exp[name] = float(f.exposure[i, k]) if why == 0 else None
            if why:
                missing[name] = REASON_LABELS[why]
        return exp, missing

    signals = []
    for i in np.flatnonzero(result.xs.present):
        symbol = ctx.symbols[i]
        exp, missing = exposures(i)
        obj = {
            "schema": "factorcast.signal/1",
            "id": f"{ctx.strategy}:{ctx.exchange}:{symbol}:{ctx.timeframe}:{ts}",
            "strategy": ctx.strategy,
            "exchange": ctx.exchange,
            "symbol": symbol,
            "timeframe": ctx.timeframe,
            "bar_ts": ts,
            "bar_time": iso_ms(ts),
            "produced_at": iso_ms(result.produced_at_ms),
            "action": LABELS[int(s.action[i])],
            "base_action": LABELS[int(s.base_action[i])],
            "factor_action": LABELS[int(s.factor_action[i])],
            "confidence": float(s.confidence[i]),
            "base_confidence": float(s.base_confidence[i]),
            "factor_score": float(s.factor_score[i]),
            "exposures": exp,
            "missing": missing,
            "reasons": reason_labels(int(s.reasons[i])),
            "model": ctx.model,
            "close": float(result.xs.close[i]),
        }
        signals.append((obj["id"], obj))
    states = {}
    for i in np.flatnonzero(result.xs.present | result.xs.late):
        exp, missing = exposures(i)
        close = float(result.xs.close[i]) if result.xs.present[i] else None
        state = {
            "bar_ts": ts,
            "close": close,
            "exposures": exp,
            "missing": missing,
            "model": ctx.model,
        }
        states[ctx.symbols[i]] = orjson.dumps(state)
    return signals, states


PLAIN = ["BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "AVAX", "DOT", "LINK", "LTC", "TRX", "BCH"]
NAMES = [
    [f"{base}/USDT" for base in PLAIN],
    # strings the templates must escape, or take for text and not for their own slots
    [
        'A"B/USDT',
        "C\\D/USDT",
        "100%/USDT",
        "%b/USDT",
        "%%/USDT",
        "É/€",
        "%d/%s",
        "a\nb/USDT",
        "{}/USDT",
        "[x]/USDT",
        "日本/USDT",
        "Z/USDT",
    ],
    # a name with the templates' own marker in it: served without templates
    [*(f"{base}/USDT" for base in PLAIN[:-1]), "\u2063x\u2063/USDT"],
]


@pytest.mark.parametrize("symbols", NAMES, ids=["plain", "awkward", "marker"])
def test_publication_bytes_are_the_wire_objects_serialized(symbols: list[str]) -> None:
    ctx = WireContext("trend%s", "sim%b", "1m", tuple(symbols), "six-factor/1+%d")
    assert (_templates(ctx) is None) == (symbols is NAMES[2])  # which path is under test
    seen_missing = seen_late = 0
    for result in steps(symbols):
        pub = publication(result, ctx)
        want_signals, want_states = expected(result, ctx)
        assert [(sid, orjson.loads(raw)) for sid, raw in pub.signals] == want_signals
        assert [raw for _, raw in pub.signals] == [orjson.dumps(o) for _, o in want_signals]
        assert pub.exposures == want_states
        assert pub.bar_ts == result.ts and pub.heartbeat == iso_ms(result.ts)
        for _, raw in pub.signals:
            Signal.model_validate_json(raw)
        seen_missing += sum(bool(o["missing"]) for _, o in want_signals)
        seen_late += int(result.xs.late.sum())
    assert seen_missing > 0 and seen_late > 0  # the awkward cases did occur


def test_signed_publications_carry_a_valid_signature() -> None:
    key = b"k3y"
    ctx = WireContext("trend", "sim", "1m", tuple(NAMES[0]), "six-factor/1", signing_key=key)
    for result in steps(NAMES[0], bars=25):
        pub = publication(result, ctx)
        want_signals, _ = expected(result, ctx)
        for (sid, raw), (want_id, want) in zip(pub.signals, want_signals, strict=True):
            obj = orjson.loads(raw)
            assert sid == want_id and verify(obj, key)
            assert {k: v for k, v in obj.items() if k != "sig"} == want
