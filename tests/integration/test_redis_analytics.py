"""The analytics keys of ANALYTICS.md section 12 through RedisSink, against a real
redis-server: each factor-returns entry and each alert is written once, whatever
retries, reruns, restarts or spool replays bring; risk and health hold the latest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from factorcast.adapters.redis.server import EmbeddedRedis
from factorcast.adapters.redis.sink import RedisSink
from factorcast.adapters.redis.spool import Spool
from factorcast.adapters.redis.wire import decode_publication, encode_publication
from factorcast.factors.registry import MARKET, SIZE, UNIVERSE
from factorcast.strategy.ports import Publication

pytestmark = pytest.mark.integration

BAR_MS = 60_000
T0 = 1_700_000_040_000
FR, RISK, HEALTH = "factorcast:factor_returns", "factorcast:risk", "factorcast:health"
ALERTS, ALERT_IDS = "factorcast:alerts", "factorcast:alerts:ids"


def alert(kind: str, factor: str, bar_ts: int) -> tuple[str, bytes]:
    aid = f"{kind}:{factor}:{bar_ts}"
    return aid, orjson.dumps({"schema": "factorcast.alert/1", "id": aid, "kind": kind})


def publication(
    k: int, alerts: tuple[tuple[str, bytes], ...] = (), signals: int = 2
) -> Publication:
    bar_ts = T0 + k * BAR_MS
    return Publication(
        bar_ts=bar_ts,
        signals=tuple((f"s{j}:{bar_ts}", orjson.dumps({"j": j, "k": k})) for j in range(signals)),
        exposures={"A/B": orjson.dumps({"bar_ts": bar_ts})},
        heartbeat=str(bar_ts),
        factor_returns=orjson.dumps({"bar_ts": bar_ts, "returns": {UNIVERSE: 0.001 * k}}),
        risk=orjson.dumps({"bar_ts": bar_ts, "factors": [UNIVERSE, MARKET]}),
        health={
            MARKET: orjson.dumps({"bar_ts": bar_ts, "state": "working"}),
            SIZE: orjson.dumps({"bar_ts": bar_ts, "state": "flat"}),
        },
        alerts=alerts,
    )


@pytest.fixture
async def server() -> AsyncIterator[EmbeddedRedis]:
    async with EmbeddedRedis() as srv:
        yield srv


def sink_for(url: str, spool: Path, **kw: Any) -> RedisSink:
    return RedisSink(
        url,
        spool_dir=spool,
        **{
            "connect_timeout_s": 0.5,
            "socket_timeout_s": 1.0,
            "backoff_initial_s": 0.02,
            "backoff_max_s": 0.2,
            "flush_timeout_s": 15.0,
            **kw,
        },
    )


async def entries(r: Redis, key: str) -> list[dict[str, Any]]:
    raw: list[tuple[bytes, dict[bytes, bytes]]] = await r.xrange(key)  # type: ignore[assignment]
    return [orjson.loads(fields[b"data"]) for _, fields in raw]


async def test_each_alert_and_factor_return_once_across_reruns_and_restarts(
    server: EmbeddedRedis, tmp_path: Path
) -> None:
    decay = alert("factor_decay", MARKET, T0 + BAR_MS)
    inverted = alert("factor_inverted", SIZE, T0 + BAR_MS)
    late = alert("factor_recovered", SIZE, T0 + 2 * BAR_MS)  # raised by a rerun, later
    async with sink_for(server.url, tmp_path / "spool") as sink:
        await sink.publish(publication(1, (decay, inverted)))
        # bar 2 carries the alerts of the steps run again for a late bar at bar 1:
        # one already published, one new
        await sink.publish(publication(3, (decay, late)))
        await sink.flush()
        assert sink.stats.alerts == {"factor_decay": 1, "factor_inverted": 1, "factor_recovered": 1}
        assert sink.stats.factor_returns == 2
    # a new service (fresh writer) sends again a bar whose transaction ran but was not
    # answered, and an older bar's factor returns: nothing is written twice
    async with sink_for(server.url, tmp_path / "spool2") as again:
        await again.publish(publication(3, (late, decay), signals=0))
        await again.flush()
        assert again.stats.alerts == {} and again.stats.factor_returns == 0
        await again.publish(publication(4, (alert("factor_decay", MARKET, T0 + 4 * BAR_MS),)))
        await again.flush()
        assert again.stats.alerts == {"factor_decay": 1} and again.stats.factor_returns == 1

    r = Redis.from_url(server.url)
    try:
        ids = [a["id"] for a in await entries(r, ALERTS)]
        assert ids == [decay[0], inverted[0], late[0], f"factor_decay:{MARKET}:{T0 + 4 * BAR_MS}"]
        assert await r.zcard(ALERT_IDS) == 4
        returns = await entries(r, FR)
        assert [e["bar_ts"] for e in returns] == [T0 + k * BAR_MS for k in (1, 3, 4)]
        raw_fr: list[Any] = await r.xrange(FR)  # type: ignore[assignment]
        assert [x[0].decode() for x in raw_fr] == [f"{T0 + k * BAR_MS}-0" for k in (1, 3, 4)]
        assert orjson.loads(await r.get(RISK))["bar_ts"] == T0 + 4 * BAR_MS
        health = {k.decode(): orjson.loads(v) for k, v in (await r.hgetall(HEALTH)).items()}
        assert health == {
            MARKET: {"bar_ts": T0 + 4 * BAR_MS, "state": "working"},
            SIZE: {"bar_ts": T0 + 4 * BAR_MS, "state": "flat"},
        }
    finally:
        await r.aclose()


async def test_alert_ids_kept_to_the_streams_maxlen(server: EmbeddedRedis, tmp_path: Path) -> None:
    async with sink_for(server.url, tmp_path / "spool", maxlen=3) as sink:
        for k in range(1, 7):
            await sink.publish(publication(k, (alert("factor_decay", MARKET, T0 + k * BAR_MS),)))
        await sink.flush()
    r = Redis.from_url(server.url)
    try:  # the newest three by bar time
        kept = [x.decode() for x in await r.zrange(ALERT_IDS, 0, -1)]
        assert kept == [f"factor_decay:{MARKET}:{T0 + k * BAR_MS}" for k in (4, 5, 6)]
    finally:
        await r.aclose()


async def test_analytics_spooled_while_down_are_replayed_once(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    pubs = [publication(k, (alert("factor_inverted", SIZE, T0 + k * BAR_MS),)) for k in (1, 2)]
    async with sink_for("redis://127.0.0.1:1", spool, flush_timeout_s=0.2) as down:  # down
        for pub in pubs:
            await down.publish(pub)
        assert down.stats.spooled == 2
    with Spool(spool) as s:  # version 2 records, read back whole
        assert [decode_publication(rec.payload) for rec in s.pending()] == pubs
    async with EmbeddedRedis() as srv:
        async with sink_for(srv.url, spool) as up:
            await up.flush()
            assert up.stats.replayed == 2 and up.stats.alerts == {"factor_inverted": 2}
        r = Redis.from_url(srv.url)
        try:
            sent = [a for p in pubs for a, _ in p.alerts]
            assert [a["id"] for a in await entries(r, ALERTS)] == sent
            assert [e["bar_ts"] for e in await entries(r, FR)] == [p.bar_ts for p in pubs]
        finally:
            await r.aclose()


def test_spool_records_without_analytics_stay_version_1() -> None:
    pub = publication(1)
    bare = Publication(pub.bar_ts, pub.signals, pub.exposures, pub.heartbeat)
    assert orjson.loads(encode_publication(bare))["v"] == 1
    assert orjson.loads(encode_publication(pub))["v"] == 2
    assert decode_publication(encode_publication(bare)) == bare
    assert decode_publication(encode_publication(pub)) == pub
