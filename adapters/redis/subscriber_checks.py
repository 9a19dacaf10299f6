"""Which stream entries the subscriber hands out: schema and signature checks, then
dedupe by signal id.

Rejection
    An entry that is not a ``factorcast.signal/1`` JSON object with an ``id``, or whose
    ``sig`` does not verify when a signing key is configured, is rejected, with a
    short fixed reason (``invalid_json``, ``missing_signature``, ...).

Dedupe
    Signal ids are deterministic, so the same signal under a second stream id (a
    republish, a redelivery) is a duplicate: a bounded LRU of recent ids drops it.
    Ids enter the window only after the signature check, so a forged entry cannot
    shadow the real signal.

:class:`SignalChecks` only decides; the subscriber (:mod:`.subscriber`) counts, logs
and acknowledges what it drops, so nothing dropped is ever redelivered.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final, NamedTuple

import orjson
from pydantic import SecretStr

from factorcast.strategy.wire import SCHEMA_ID, verify

__all__ = ["DUPLICATE", "Dropped", "Received", "SignalChecks"]

#: the reason of a :class:`Dropped` entry whose signal id was seen recently
DUPLICATE: Final = "duplicate"


class Received(NamedTuple):
    """One signal: its stream entry id, the parsed object and the exact wire bytes."""

    entry_id: str
    signal: dict[str, Any]
    data: bytes


class Dropped(NamedTuple):
    """An entry not handed out: :data:`DUPLICATE`, or why it is rejected."""

    signal_id: str | None
    reason: str


class _RecentIds:
    """A bounded LRU set of signal ids."""

    def __init__(self, capacity: int) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def seen(self, sid: str) -> bool:
        """True if ``sid`` was seen recently; remembers it either way."""
        if sid in self._ids:
            self._ids.move_to_end(sid)
            return True
        self._ids[sid] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return False


class SignalChecks:
    """The checks of one subscriber; remembers the last ``dedupe_size`` signal ids."""

    def __init__(self, signing_key: bytes | SecretStr | None, dedupe_size: int) -> None:
        if isinstance(signing_key, SecretStr):
            signing_key = signing_key.get_secret_value().encode()
        if signing_key is not None and not signing_key:
            raise ValueError("signing_key is empty: give a key or None (no verification)")
        self._key = signing_key
        self._seen = _RecentIds(dedupe_size)

    def admit(self, entry_id: str, data: bytes | None) -> Received | Dropped:
        """The signal of the entry ``entry_id`` with the field ``data``, or why not."""
        obj, sid, reason = self._validate(data)
        if reason is not None or obj is None or sid is None or data is None:
            return Dropped(sid, reason or "invalid")
        if self._seen.seen(sid):
            return Dropped(sid, DUPLICATE)
        return Received(entry_id, obj, data)

    def _validate(self, data: bytes | None) -> tuple[dict[str, Any] | None, str | None, str | None]:
        """(the object, its signal id, why it is rejected or None)."""
        if data is None:  # a pending entry trimmed away by MAXLEN, or not a signal
            return None, None, "entry_without_data"
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None, None, "invalid_json"
        if not isinstance(obj, dict):
            return None, None, "not_an_object"
        sid = obj.get("id")
        sid = sid if isinstance(sid, str) and sid else None
        if obj.get("schema") != SCHEMA_ID:
            return obj, sid, "unsupported_schema"
        if sid is None:
            return obj, None, "missing_id"
        if self._key is not None:
            if not isinstance(obj.get("sig"), str):
                return obj, sid, "missing_signature"
            if not verify(obj, self._key):
                return obj, sid, "bad_signature"
        return obj, sid, None
