"""The Binance kline reader: which messages it takes from ccxt, and what it hands on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import ccxt.pro
import pytest

from adapters.binance_klines import BinanceKlines
from adapters.candles import NAN
from adapters.gate import ACCEPTED, CandleGate

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


async def test_deflate_is_off_unless_the_config_turns_it_on() -> None:
    default, configured = BinanceKlines(), BinanceKlines({"options": {"ws": {"compress": 15}}})
    try:
        assert default.options["ws"]["compress"] == 0
        assert configured.options["ws"]["compress"] == 15
    finally:
        await default.close()
        await configured.close()
