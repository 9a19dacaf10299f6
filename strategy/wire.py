"""The ``factorcast.signal/1`` wire format (SIGNALS.md section 4).

:class:`Signal` is the pydantic model of one wire object and the source of the
shipped JSON Schema.  The hot path builds the same objects as plain dicts (one
pydantic model per symbol per bar would dominate the step cost); the tests
validate every object a replay produces against this model and its schema.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_ID: Final = "factorcast.signal/1"
Action = Literal["buy", "sell", "hold"]
ReasonCode = Literal[
    "factor_confirm", "factor_veto", "low_confidence", "factor_initiated", "insufficient_history"
]


class Signal(BaseModel):
    """One signal: a symbol at one closed bar, after the factor adjustment."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, frozen=True, title="factorcast.signal/1"
    )

    schema_: Literal["factorcast.signal/1"] = Field(
        SCHEMA_ID, alias="schema", description="Wire format name and version."
    )
    id: str = Field(
        description="{strategy}:{exchange}:{symbol}:{timeframe}:{bar_ts}; deterministic, "
        "so a consumer can drop duplicates."
    )
    strategy: str
    exchange: str
    symbol: str
    timeframe: str
    bar_ts: int = Field(description="Bar open time, ms since epoch UTC.")
    bar_time: AwareDatetime = Field(description="Bar open time, ISO-8601 UTC.")
    produced_at: AwareDatetime = Field(description="When the signal was made, ISO-8601 UTC.")
    action: Action
    base_action: Action
    factor_action: Action
    confidence: float = Field(ge=0.0, le=1.0)
    base_confidence: float = Field(ge=0.0, le=1.0)
    factor_score: float = Field(ge=-1.0, le=1.0)
    exposures: dict[str, float | None] = Field(description="Factor name -> exposure or null.")
    missing: dict[str, str] = Field(description="Factor name -> reason, for every null exposure.")
    reasons: list[ReasonCode]
    model: str = Field(description="Factor model version and configuration hash.")
    close: float | None = Field(
        None,
        description="The bar's close price, null if none (added field: paper traders and "
        "portfolio tools mark positions with it).",
    )
    sig: str | None = Field(
        None, description="Optional HMAC-SHA256 (hex) over the canonical JSON without 'sig'."
    )


def json_schema() -> dict[str, Any]:
    schema = Signal.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def iso_ms(ts_ms: int) -> str:
    """``2018-01-10T04:55:00.000Z`` for a millisecond UTC timestamp."""
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def signal_id(strategy: str, exchange: str, symbol: str, timeframe: str, bar_ts: int) -> str:
    return f"{strategy}:{exchange}:{symbol}:{timeframe}:{bar_ts}"


def canonical_json(obj: dict[str, Any]) -> bytes:
    """Sorted keys, no whitespace, without ``sig``: the bytes a signature covers."""
    return orjson.dumps({k: v for k, v in obj.items() if k != "sig"}, option=orjson.OPT_SORT_KEYS)


def sign(obj: dict[str, Any], key: bytes) -> str:
    return hmac.new(key, canonical_json(obj), hashlib.sha256).hexdigest()


def verify(obj: dict[str, Any], key: bytes) -> bool:
    sig = obj.get("sig")
    return isinstance(sig, str) and hmac.compare_digest(sig, sign(obj, key))
