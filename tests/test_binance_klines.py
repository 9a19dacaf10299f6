"""The Binance kline reader: which messages it takes from ccxt, and what it hands on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import ccxt.pro
import pytest

from factorcast.adapters.exchange.binance_klines import BinanceKlines
from factorcast.strategy.candles import NAN
from factorcast.strategy.gate import ACCEPTED, CandleGate

T = 1_700_000_040_000
#: the reader, what it handed on, and what it left to ccxt's own handler
Reader = tuple[Any, list[Any], list[Any]]


def kline(symbol: str = "BTCUSDT", closed: bool = True, **fields: Any) -> dict[str, Any]:
    k = {"t": T, "T": T + 59_999, "s": symbol, "i": "1m", "o": "10.5", "h": "11.0"}
    k |= {"l": "10.0", "c": "10.75", "v": "3.25", "x": closed} | fields
    return {"e": "kline", "E": T + 60_000, "s": symbol, "k": k}


@pytest.fixture
async def reader(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Reader]:
    got: list[Any] = []
    to_ccxt: list[Any] = []
    monkeypatch.setattr(ccxt.pro.binance, "handle_message", lambda self, c, m: to_ccxt.append(m))
    pro = BinanceKlines()
    pro.markets = {"BTC/USDT": {"id": "BTCUSDT"}, "ETH/USDT": {"id": "ETHUSDT"}}
    try:
        yield pro, got, to_ccxt
    finally:
        await pro.close()


async def test_closing_klines_carry_their_values_and_updates_only_their_time(
    reader: Reader,
) -> None:
    pro, got, to_ccxt = reader
    pro.route_klines(["BTC/USDT", "ETH/USDT"], "1m", lambda *a: got.append(a))
    pro.handle_message(None, kline("ETHUSDT"))
    pro.handle_message(None, kline("BTCUSDT", closed=False))
    assert got == [(1, T, ["10.5", "11.0", "10.0", "10.75", "3.25"]), (0, T, None)]
    assert to_ccxt == []


async def test_anything_else_is_left_to_ccxt(reader: Reader) -> None:
    pro, got, to_ccxt = reader
    before = kline()
    pro.handle_message(None, before)  # nothing routed yet
    pro.route_klines(["BTC/USDT"], "1m", lambda *a: got.append(a))
    others = [
        kline("ETHUSDT"),  # not in the universe
        kline(i="5m"),
        kline(t="1700000040000"),  # a bar time that is no integer: ccxt makes of it what it can
        {"result": None, "id": 1},
        [kline()],
        "pong",
    ]
    for message in others:
        pro.handle_message(None, message)
    assert got == []
    assert to_ccxt == [before, *others]


async def test_prices_reach_the_gate_as_they_came_and_it_refuses_unreadable_ones(
    reader: Reader,
) -> None:
    pro, _, _ = reader
    gate = CandleGate(["BTC/USDT"], 60_000)
    outcomes: list[str] = []
    pro.route_klines(["BTC/USDT"], "1m", lambda i, t, v: outcomes.append(gate.offer(i, t, v)[0]))
    pro.handle_message(None, kline(c="n/a"))
    pro.handle_message(None, kline(v=None))
    pro.handle_message(None, kline(t=T + 60_000, o=""))
    pro.handle_message(None, kline(t=T + 120_000))
    assert outcomes == [NAN, NAN, NAN, ACCEPTED]
    assert gate.last_ts(0) == T + 120_000


def compact(message: Any) -> str:
    """A message as Binance's streams write it."""
    return json.dumps(message, separators=(",", ":"))


async def test_forming_updates_are_read_from_their_text(reader: Reader) -> None:
    pro, got, to_ccxt = reader
    pro.route_klines(["BTC/USDT", "ETH/USDT"], "1m", lambda *a: got.append(a))
    assert pro.forming_update(compact(kline("ETHUSDT", closed=False, t=T + 60_000)))
    assert got == [(1, T + 60_000, None)]
    assert to_ccxt == []


async def test_text_the_shortcut_does_not_know_is_decoded_in_full(reader: Reader) -> None:
    pro, got, to_ccxt = reader
    pro.route_klines(["BTC/USDT", "ETH/USDT"], "1m", lambda *a: got.append(a))
    forming = kline(closed=False)
    declined = [
        compact(kline()),  # closes its bar: the values are needed
        json.dumps(forming),  # laid out with spaces
        compact({"stream": "btcusdt@kline_1m", "data": forming}),  # a combined stream's
        compact(kline("XRPUSDT", closed=False)),  # not in the universe
        compact(kline(closed=False, i="5m")),
        compact(kline(closed=False, t="1700000040000")),  # a bar time that is no integer
        compact(kline(closed=False, t=-5)),
        compact({"result": None, "id": 1}),
        "pong",
    ]
    assert [pro.forming_update(text) for text in declined] == [False] * len(declined)
    assert got == [] and to_ccxt == []


async def test_the_shortcut_hands_on_what_decoding_would(reader: Reader) -> None:
    pro, _, to_ccxt = reader
    events = [
        kline(s, closed=closed, t=t)
        for s in ("BTCUSDT", "ETHUSDT", "XRPUSDT")
        for closed in (True, False)
        for t in (T, T + 60_000)
    ]
    symbols = ["BTC/USDT", "ETH/USDT"]
    by_text: list[Any] = []
    pro.route_klines(symbols, "1m", lambda *a: by_text.append(a))
    for event in events:
        text = compact(event)
        if not pro.forming_update(text):
            pro.handle_message(None, json.loads(text))
    decoded: list[Any] = []
    pro.route_klines(symbols, "1m", lambda *a: decoded.append(a))
    for event in events:
        pro.handle_message(None, event)
    assert len(decoded) == 8  # every routed event, closing or not
    assert by_text == decoded
    assert to_ccxt == [e for e in events if e["s"] == "XRPUSDT"] * 2


async def test_deflate_is_off_unless_the_config_turns_it_on() -> None:
    default, configured = BinanceKlines(), BinanceKlines({"options": {"ws": {"compress": 15}}})
    try:
        assert default.options["ws"]["compress"] == 0
        assert configured.options["ws"]["compress"] == 15
    finally:
        await default.close()
        await configured.close()
