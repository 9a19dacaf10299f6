"""What the Redis sink writes: its keys, one publication's transaction on the wire,
and a publication as a spool record. See :mod:`adapters.redis.sink` for why the
transaction looks the way it does.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from factorcast.adapters.redis.resp import bulk, command
from factorcast.strategy.ports import Publication

__all__ = ["Keys", "decode_publication", "encode_publication", "parse_id", "transaction"]

_MULTI = b"*1\r\n$5\r\nMULTI\r\n"
_EXEC = b"*1\r\n$4\r\nEXEC\r\n"


@dataclass(frozen=True, slots=True)
class Keys:
    """The sink's keys (see the module docstring); the channel is named as the stream."""

    stream: bytes
    exposures: bytes
    heartbeat: bytes
    guard: bytes

    @classmethod
    def for_prefix(cls, prefix: str) -> Keys:
        p = prefix.encode()
        return cls(p + b":signals", p + b":exposures", p + b":heartbeat", p + b":sink")


def transaction(
    pub: Publication,
    keys: Keys,
    maxlen: int,
    ttl_ms: int,
    *,
    first: int = 0,
    token: bytes,
    previous: bytes,
) -> tuple[bytes, int]:
    """One publication's guarded transaction as RESP bytes, and the count of its replies.

    Signals from index ``first`` on are written (those before are on the stream).
    Replies: HSETNX, MULTI, a ``QUEUED`` per queued command, EXEC, WATCH.
    """
    xadd = b"*8\r\n$4\r\nXADD\r\n%s$6\r\nMAXLEN\r\n$1\r\n~\r\n%s" % (
        bulk(keys.stream),
        bulk(b"%d" % maxlen),
    )
    publish = b"*3\r\n$7\r\nPUBLISH\r\n" + bulk(keys.stream)
    data_field = bulk(b"data")
    id_prefix = b"%d-" % pub.bar_ts
    payloads = [bulk(data) for _sid, data in pub.signals[first:]]
    parts = [command("HSETNX", keys.guard, previous, 1), _MULTI]
    for i, payload in enumerate(payloads, start=first):
        parts += (xadd, bulk(id_prefix + b"%d" % i), data_field, payload)
    for payload in payloads:
        parts += (publish, payload)
    queued = 2 * len(payloads) + 3  # + SET heartbeat, HSET and HDEL of the guard
    if pub.exposures:
        parts.append(b"*%d\r\n$4\r\nHSET\r\n" % (2 + 2 * len(pub.exposures)))
        parts.append(bulk(keys.exposures))
        for symbol, data in pub.exposures.items():
            parts += (bulk(symbol.encode()), bulk(data))
        queued += 1
    parts += (
        command("SET", keys.heartbeat, pub.heartbeat, "PX", ttl_ms),
        command("HSET", keys.guard, token, 1),
        command("HDEL", keys.guard, previous),
        _EXEC,
        command("WATCH", keys.stream, keys.exposures, keys.guard),
    )
    return b"".join(parts), queued + 4


def encode_publication(publication: Publication) -> bytes:
    """A publication as one spool record (JSON; the payloads are UTF-8 JSON text)."""
    return orjson.dumps(
        {
            "v": 1,
            "bar_ts": publication.bar_ts,
            "signals": [[sid, data.decode()] for sid, data in publication.signals],
            "exposures": {sym: data.decode() for sym, data in publication.exposures.items()},
            "heartbeat": publication.heartbeat,
        }
    )


def decode_publication(raw: bytes) -> Publication:
    doc = orjson.loads(raw)
    if doc.get("v") != 1:
        raise ValueError(f"unknown spool record version {doc.get('v')!r}")
    return Publication(
        bar_ts=int(doc["bar_ts"]),
        signals=tuple((str(sid), data.encode()) for sid, data in doc["signals"]),
        exposures={str(sym): data.encode() for sym, data in doc["exposures"].items()},
        heartbeat=str(doc["heartbeat"]),
    )


def parse_id(raw: object) -> tuple[int, int]:
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)
