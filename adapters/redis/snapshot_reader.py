"""The live service's latest market state, read back from Redis (SIGNALS.md section
5, ANALYTICS.md section 12) for the portfolio commands' ``--redis``.

Read, with ``prefix`` the settings' ``redis.prefix``:

- ``{prefix}:risk`` (string): the latest risk model; its ``bar_ts`` is the bar
  ``T`` of the state, its ``specific`` keys the universe, in the service's order;
- ``{prefix}:exposures`` (hash): per symbol ``{bar_ts, close, exposures, missing,
  model}``, the latest of each symbol; read in the same ``MULTI`` as the risk
  model (the sink writes both in one transaction, so they are of the same bar);
- ``{prefix}:signals`` (stream, entry ids ``{bar_ts}-{i}``): the closes of the
  bars ``T - W .. T`` (``W`` = ``history_bars``), as far back as the stream
  reaches, for the simple returns of the historical VaR; its latest entry names
  the timeframe.

As the offline run has them at ``T``: a symbol whose latest exposures are of an
earlier bar (it has no bar at ``T``), or that has none, has no exposures at ``T``
(reason ``missing_bar``); its as-of close is the close of its latest state, else
its latest close on the stream.

What cannot be read (Redis unreachable, nothing published under the prefix, JSON
that does not parse) is a :class:`StateUnavailable`, one line, the URL without its
password (the command exits 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import orjson
from pydantic import SecretStr
from redis.asyncio import Redis

from factorcast.adapters.redis.common import UNAVAILABLE, redact_url, scrub, split_url
from factorcast.factors.reasons import Reason
from factorcast.strategy.market_state import (
    REDIS,
    MarketState,
    StateUnavailable,
    asof_close,
    grid_closes,
)
from factorcast.strategy.market_state import grid_returns as _grid_returns
from factorcast.strategy.timeframes import timeframe_ms

__all__ = ["read_market_state"]

#: stream entries per XRANGE reply
CHUNK: Final = 5_000
_REASONS: Final = {r.label: r for r in Reason}


def _loads(raw: bytes, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise StateUnavailable(f"{what}: not JSON") from None


def _float(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan


async def read_market_state(
    url: str,
    *,
    password: SecretStr | None = None,
    prefix: str = "factorcast",
    history_bars: int,
    timeframe: str | None = None,
    connect_timeout_s: float = 2.0,
    socket_timeout_s: float = 10.0,
) -> MarketState:
    """The state at the latest bar the service published; ``timeframe`` is used
    only when the signal stream is empty."""
    clean, url_password = split_url(url)
    secret = password.get_secret_value() if password is not None else url_password
    shown = redact_url(clean, has_password=bool(secret))
    client = Redis.from_url(
        clean,
        password=secret or None,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=socket_timeout_s,
        client_name="factorcast-portfolio",
    )
    try:
        return await _read(client, prefix, history_bars, timeframe)
    except UNAVAILABLE as e:
        raise StateUnavailable(f"redis {shown}: {scrub(str(e), secret)}") from None
    except StateUnavailable as e:
        raise StateUnavailable(f"redis {shown}: {e}") from None
    finally:
        await client.aclose()


async def _read(
    client: Redis, prefix: str, history_bars: int, timeframe: str | None
) -> MarketState:
    risk_key, exposures_key, stream = (f"{prefix}:{k}" for k in ("risk", "exposures", "signals"))
    async with client.pipeline(transaction=True) as pipe:
        pipe.get(risk_key)
        pipe.hgetall(exposures_key)
        pipe.xrevrange(stream, count=1)
        raw_risk, raw_states, last = await pipe.execute()
    if raw_risk is None:
        raise StateUnavailable(
            f"no risk model at {risk_key} (is `factorcast run` publishing "
            "analytics under this prefix?)"
        )
    try:
        return await _parse(client, raw_risk, raw_states, last, prefix, history_bars, timeframe)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise StateUnavailable(
            f"{risk_key}, {exposures_key} or {stream} is not what "
            f"`factorcast run` writes ({type(e).__name__}: {e})"
        ) from None


async def _parse(
    client: Redis,
    raw_risk: bytes,
    raw_states: dict[bytes, bytes],
    last: list[tuple[bytes, dict[bytes, bytes]]],
    prefix: str,
    history_bars: int,
    timeframe: str | None,
) -> MarketState:
    risk_key, exposures_key, stream = (f"{prefix}:{k}" for k in ("risk", "exposures", "signals"))
    risk = _loads(raw_risk, risk_key)
    bar_ts = int(risk["bar_ts"])
    if last:
        signal = _loads(last[0][1][b"data"], stream)
        tf_name = str(signal["timeframe"])
    elif timeframe is not None:
        tf_name = timeframe
    else:
        raise StateUnavailable(f"{stream} is empty: no timeframe to annualize by")
    tf = timeframe_ms(tf_name)
    symbols = tuple(risk["specific"])
    states = {k.decode(): _loads(v, f"{exposures_key} {k.decode()}") for k, v in raw_states.items()}
    at_t = [s for s in states.values() if s.get("bar_ts") == bar_ts]
    if not at_t:
        raise StateUnavailable(f"{exposures_key} has no symbol at the risk model's bar {bar_ts}")
    names = tuple(at_t[0]["exposures"])
    first = bar_ts - history_bars * tf
    closes = await _stream_closes(client, stream, symbols, tf_name, first, bar_ts)
    return _state(risk, states, names, symbols, tf, closes, first)


async def _stream_closes(
    client: Redis, stream: str, symbols: tuple[str, ...], tf_name: str, first: int, last: int
) -> dict[int, dict[str, float]]:
    """bar_ts -> symbol -> close, for the signals of ``first .. last`` on the stream."""
    out: dict[int, dict[str, float]] = {}
    known = set(symbols)
    start = f"{first}-0"
    while True:
        reply: Any = await client.xrange(stream, min=start, max=f"{last}", count=CHUNK)
        entries: list[tuple[bytes, dict[bytes, bytes]]] = reply or []
        for _, fields in entries:
            s = _loads(fields[b"data"], stream)
            close = _float(s.get("close"))
            if s.get("timeframe") == tf_name and s.get("symbol") in known and math.isfinite(close):
                out.setdefault(int(s["bar_ts"]), {})[s["symbol"]] = close
        if len(entries) < CHUNK:
            return out
        ms, seq = entries[-1][0].decode().split("-")
        start = f"{ms}-{int(seq) + 1}"


def _state(
    risk: Mapping[str, Any],
    states: Mapping[str, Mapping[str, Any]],
    names: tuple[str, ...],
    symbols: tuple[str, ...],
    tf: int,
    closes: Mapping[int, Mapping[str, float]],
    first: int,
) -> MarketState:
    bar_ts = int(risk["bar_ts"])
    n, k = len(symbols), len(names)
    exposure = np.full((n, k), np.nan)
    reason = np.full((n, k), int(Reason.MISSING_BAR), dtype=np.int8)
    state_close = np.full(n, np.nan)
    for i, symbol in enumerate(symbols):
        st = states.get(symbol)
        if st is None:
            continue
        state_close[i] = _float(st.get("close"))
        if st.get("bar_ts") != bar_ts:
            continue
        values, missing = st["exposures"], st.get("missing", {})
        for j, name in enumerate(names):
            x = _float(values.get(name))
            exposure[i, j] = x
            if math.isfinite(x):
                reason[i, j] = Reason.OK
            else:
                label = missing.get(name, Reason.MISSING_BAR.label)
                reason[i, j] = _REASONS.get(label, Reason.MISSING_BAR)
    times = sorted(closes)
    start = max(first, times[0]) if times else bar_ts
    ts = np.array(times, dtype=np.int64)
    position = {s: i for i, s in enumerate(symbols)}
    panel = np.full((ts.size, n), np.nan)
    for row, t in enumerate(times):
        for s, c in closes[t].items():
            panel[row, position[s]] = c
    grid, dense = grid_closes(ts, panel, tf, start, bar_ts)
    close = np.where(np.isfinite(state_close), state_close, asof_close(dense))
    risk_names = tuple(risk["factors"])
    cov = risk.get("covariance")
    covariance = (
        np.full((len(risk_names), len(risk_names)), np.nan)
        if cov is None
        else np.array([[_float(v) for v in row] for row in cov], dtype=np.float64)
    )
    reason_label = risk.get("reason", Reason.OK.label if cov is not None else "")
    return MarketState(
        source=REDIS,
        bar_ts=bar_ts,
        timeframe_ms=tf,
        symbols=symbols,
        names=names,
        exposure=exposure,
        reason=reason,
        close=close,
        risk_names=risk_names,
        covariance=covariance,
        risk_reason=_REASONS.get(reason_label, Reason.INSUFFICIENT_HISTORY),
        specific=np.array([_float(risk["specific"][s]) for s in symbols], dtype=np.float64),
        returns_ts=grid,
        returns=_grid_returns(dense),
        model=str(risk.get("model", "")),
    )
