"""The sink's transaction bytes, read back by hiredis and compared with the commands
packed by hiredis.pack_command (an independent RESP encoder)."""

from __future__ import annotations

import hiredis
import orjson
import pytest

from factorcast.adapters.redis.resp import command
from factorcast.adapters.redis.wire import (
    ANALYTICS_SCRIPT,
    Keys,
    decode_publication,
    encode_publication,
    transaction,
)
from factorcast.strategy.ports import Publication


def publication(n: int, bar_ts: int = 1_700_000_040_000) -> Publication:
    symbols = [f"S{j}/USDT" for j in range(n)]
    return Publication(
        bar_ts=bar_ts,
        signals=tuple(
            (f"trend:sim:{s}:1m:{bar_ts}", orjson.dumps({"symbol": s, "note": "a\r\nb $*"}))
            for s in symbols
        ),
        exposures={s: orjson.dumps({"bar_ts": bar_ts, "x": j}) for j, s in enumerate(symbols)},
        heartbeat="2023-11-14T22:14:00.000Z",
    )


def commands(data: bytes) -> list[list[bytes]]:
    reader = hiredis.Reader()
    reader.feed(data)
    out = []
    while (cmd := reader.gets()) is not False:
        out.append(cmd)
    return out


@pytest.mark.parametrize(("n", "first"), [(3, 0), (3, 2), (0, 0), (250, 17)])
def test_transaction_is_the_guarded_commands(n: int, first: int) -> None:
    pub = publication(n)
    keys = Keys.for_prefix("fc")
    data, replies = transaction(
        pub, keys, 1000, 90_000, first=first, token=b"ab:2", previous=b"ab:1"
    )
    sent = pub.signals[first:]
    expected = [
        (b"HSETNX", b"fc:sink", b"ab:1", 1),
        (b"MULTI",),
        *[
            (b"XADD", b"fc:signals", b"MAXLEN", b"~", 1000, f"{pub.bar_ts}-{i}", b"data", d)
            for i, (_sid, d) in enumerate(sent, start=first)
        ],
        *[(b"PUBLISH", b"fc:signals", d) for _sid, d in sent],
        *(
            [(b"HSET", b"fc:exposures", *[x for s, v in pub.exposures.items() for x in (s, v)])]
            if pub.exposures
            else []
        ),
        (b"SET", b"fc:heartbeat", pub.heartbeat, b"PX", 90_000),
        (b"HSET", b"fc:sink", b"ab:2", 1),
        (b"HDEL", b"fc:sink", b"ab:1"),
        (b"EXEC",),
        (b"WATCH", b"fc:signals", b"fc:exposures", b"fc:sink"),
    ]
    assert data == b"".join(hiredis.pack_command(c) for c in expected)
    # One reply per command (QUEUED for those inside MULTI; EXEC's array is one).
    assert replies == len(expected)
    assert len(commands(data)) == len(expected)


def test_command_packs_like_hiredis() -> None:
    args = ("SET", b"k\r\n", 42, "\u00e9")
    assert command(*args) == hiredis.pack_command(args)


def test_spool_codec_round_trip() -> None:
    pub = publication(5)
    assert decode_publication(encode_publication(pub)) == pub
    with pytest.raises(ValueError, match="version"):
        decode_publication(orjson.dumps({"v": 99}))


def test_transaction_with_analytics_queues_risk_health_and_the_script() -> None:
    base = publication(2)
    alerts = (("factor_decay:market:1700000040000", b'{"id":1}'),)
    pub = Publication(
        base.bar_ts,
        base.signals,
        base.exposures,
        base.heartbeat,
        factor_returns=b'{"fr":1}',
        risk=b'{"risk":1}',
        health={"market": b'{"h":1}', "size": b'{"h":2}'},
        alerts=alerts,
    )
    keys = Keys.for_prefix("fc")
    data, replies = transaction(pub, keys, 1000, 90_000, token=b"ab:2", previous=b"ab:1")
    sent = commands(data)
    exec_at = sent.index([b"EXEC"])
    queued = sent[2:exec_at]
    assert queued[-6:-3] == [
        [b"SET", b"fc:risk", b'{"risk":1}'],
        [b"HSET", b"fc:health", b"market", b'{"h":1}', b"size", b'{"h":2}'],
        [
            b"EVAL",
            ANALYTICS_SCRIPT,
            b"3",
            b"fc:factor_returns",
            b"fc:alerts",
            b"fc:alerts:ids",
            b"1000",
            str(pub.bar_ts).encode(),
            b'{"fr":1}',
            alerts[0][0].encode(),
            b"1700000040000",
            b'{"id":1}',
        ],
    ]
    # the script's reply is the fourth from the end of EXEC's (writer._script_outcome)
    assert queued[-4][0] == b"EVAL"
    assert replies == len(sent)
    assert decode_publication(encode_publication(pub)) == pub
