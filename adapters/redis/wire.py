"""What the Redis sink writes: its keys, one publication's transaction on the wire,
and a publication as a spool record. See :mod:`adapters.redis.sink` for why the
transaction looks the way it does.

The analytics of a bar (ANALYTICS.md section 12) ride in the same transaction, so a
bar's signals, exposures and analytics are all written or none:

- ``{prefix}:risk`` (``SET``) and ``{prefix}:health`` (``HSET``) hold the latest
  values: writing them again is harmless.
- ``{prefix}:factor_returns`` (stream, entry id ``{bar_ts}-0``) and
  ``{prefix}:alerts`` (stream) must get each entry at most once, whatever retries,
  spool replays, restarts or late-bar reruns bring.  Both are written by one Lua
  script (:data:`ANALYTICS_SCRIPT`, queued inside the ``MULTI``), which decides
  inside Redis, atomically with the rest of the transaction:

  * a factor-returns entry is added only above the stream's top (a bar is never
    written twice, and an older bar's entry after a newer one is skipped instead of
    failing the transaction);
  * an alert is added only if ``ZADD NX`` of its deterministic id
    ``{kind}:{factor}:{bar_ts}`` into ``{prefix}:alerts:ids`` (a sorted set scored
    by ``bar_ts``) created it.  Alerts cannot use ids derived from their bar as
    the signals do: a late bar's rerun raises alerts for bars older than the
    stream's top, so their entry ids are Redis's own (``*``) and the set of ids is
    the record of what went out.  It is checked in Redis, not in the writer's
    memory, because Redis is the only place that survives the service (a SIGKILL
    between the write and its reply), and inside the transaction, because a check
    before it could race the write.  Retention: the set keeps the ids of the newest
    ``maxlen`` alerts by bar time (the stream's own ``MAXLEN``), trimmed by rank
    after each write.  An alert is raised again only for bars of the last
    ``amend_bars`` grid steps or at a restart's first live bars, never anywhere
    near ``maxlen`` alerts back.

  The script returns ``[factor-returns entries written, [ids of the alerts
  written]]``: the sink counts what was published, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from factorcast.adapters.redis.resp import bulk, command
from factorcast.strategy.ports import Publication

__all__ = [
    "ANALYTICS_SCRIPT",
    "Keys",
    "alert_bar_ts",
    "decode_publication",
    "encode_publication",
    "parse_id",
    "transaction",
]

#: KEYS: factor-returns stream, alerts stream, alert ids (sorted set).
#: ARGV: maxlen, bar_ts, factor-returns JSON ('' for none), then per alert its id,
#: bar_ts and JSON.  See the module docstring.
ANALYTICS_SCRIPT: Final = b"""\
local maxlen = ARGV[1]
local returned = 0
if ARGV[3] ~= '' then
  local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  local bar = tonumber(ARGV[2])
  if #top == 0 or tonumber(string.match(top[1][1], '^%d+')) < bar then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, ARGV[2] .. '-0', 'data', ARGV[3])
    returned = 1
  end
end
local fresh = {}
for i = 4, #ARGV, 3 do
  if redis.call('ZADD', KEYS[3], 'NX', ARGV[i + 1], ARGV[i]) == 1 then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'data', ARGV[i + 2])
    fresh[#fresh + 1] = ARGV[i]
  end
end
if #fresh > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(maxlen) + 1))
end
return {returned, fresh}
"""

_MULTI = b"*1\r\n$5\r\nMULTI\r\n"
_EXEC = b"*1\r\n$4\r\nEXEC\r\n"


@dataclass(frozen=True, slots=True)
class Keys:
    """The sink's keys (see the module docstring); the channel is named as the stream."""

    stream: bytes
    exposures: bytes
    heartbeat: bytes
    guard: bytes
    factor_returns: bytes
    risk: bytes
    health: bytes
    alerts: bytes
    alert_ids: bytes

    @classmethod
    def for_prefix(cls, prefix: str) -> Keys:
        p = prefix.encode()
        return cls(
            p + b":signals",
            p + b":exposures",
            p + b":heartbeat",
            p + b":sink",
            p + b":factor_returns",
            p + b":risk",
            p + b":health",
            p + b":alerts",
            p + b":alerts:ids",
        )

    def types(self) -> tuple[tuple[bytes, bytes], ...]:
        """Each key and the Redis type it holds (the writer checks them on connect)."""
        return (
            (self.stream, b"stream"),
            (self.exposures, b"hash"),
            (self.factor_returns, b"stream"),
            (self.risk, b"string"),
            (self.health, b"hash"),
            (self.alerts, b"stream"),
            (self.alert_ids, b"zset"),
        )


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
    Replies: HSETNX, MULTI, a ``QUEUED`` per queued command, EXEC, WATCH.  Queued
    after the exposures: the risk ``SET``, the health ``HSET`` and the analytics
    script (:data:`ANALYTICS_SCRIPT`), each where the publication has it; the
    script's reply is then the fourth from the end of EXEC's.
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
    if pub.risk is not None:
        parts.append(command("SET", keys.risk, pub.risk))
        queued += 1
    if pub.health:
        parts.append(b"*%d\r\n$4\r\nHSET\r\n" % (2 + 2 * len(pub.health)))
        parts.append(bulk(keys.health))
        for factor, data in pub.health.items():
            parts += (bulk(factor.encode()), bulk(data))
        queued += 1
    if pub.scripted:
        parts.append(_analytics_script(pub, keys, maxlen))
        queued += 1
    parts += (
        command("SET", keys.heartbeat, pub.heartbeat, "PX", ttl_ms),
        command("HSET", keys.guard, token, 1),
        command("HDEL", keys.guard, previous),
        _EXEC,
        command("WATCH", keys.stream, keys.exposures, keys.guard),
    )
    return b"".join(parts), queued + 4


def _analytics_script(pub: Publication, keys: Keys, maxlen: int) -> bytes:
    args: list[bytes | str | int] = [
        "EVAL",
        ANALYTICS_SCRIPT,
        3,
        keys.factor_returns,
        keys.alerts,
        keys.alert_ids,
        maxlen,
        pub.bar_ts,
        pub.factor_returns or b"",
    ]
    for alert_id, data in pub.alerts:
        args += (alert_id, alert_bar_ts(alert_id), data)
    return command(*args)


def alert_bar_ts(alert_id: str) -> int:
    """The bar time of an alert id ``{kind}:{factor}:{bar_ts}``."""
    return int(alert_id.rsplit(":", 1)[1])


def encode_publication(publication: Publication) -> bytes:
    """A publication as one spool record (JSON; the payloads are UTF-8 JSON text).

    Version 1 is a publication without analytics, as earlier releases wrote it (and
    still read it); version 2 adds ``factor_returns``, ``risk``, ``health`` and
    ``alerts``.  A publication without analytics is still written as version 1."""
    doc: dict[str, Any] = {
        "v": 1,
        "bar_ts": publication.bar_ts,
        "signals": [[sid, data.decode()] for sid, data in publication.signals],
        "exposures": {sym: data.decode() for sym, data in publication.exposures.items()},
        "heartbeat": publication.heartbeat,
    }
    p = publication
    if p.factor_returns is not None or p.risk is not None or p.health or p.alerts:
        doc["v"] = 2
        doc["factor_returns"] = None if p.factor_returns is None else p.factor_returns.decode()
        doc["risk"] = None if p.risk is None else p.risk.decode()
        doc["health"] = {name: data.decode() for name, data in p.health.items()}
        doc["alerts"] = [[aid, data.decode()] for aid, data in p.alerts]
    return orjson.dumps(doc)


def decode_publication(raw: bytes) -> Publication:
    doc = orjson.loads(raw)
    version = doc.get("v")
    if version not in (1, 2):
        raise ValueError(f"unknown spool record version {version!r}")
    returns, risk = doc.get("factor_returns"), doc.get("risk")
    return Publication(
        bar_ts=int(doc["bar_ts"]),
        signals=tuple((str(sid), data.encode()) for sid, data in doc["signals"]),
        exposures={str(sym): data.encode() for sym, data in doc["exposures"].items()},
        heartbeat=str(doc["heartbeat"]),
        factor_returns=None if returns is None else str(returns).encode(),
        risk=None if risk is None else str(risk).encode(),
        health={str(name): data.encode() for name, data in doc.get("health", {}).items()},
        alerts=tuple((str(aid), data.encode()) for aid, data in doc.get("alerts", ())),
    )


def parse_id(raw: object) -> tuple[int, int]:
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)
