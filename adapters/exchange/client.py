"""The REST boundary to an exchange: a ccxt ``async_support`` client with its rate
limiter on, vendor exceptions translated into the project's own, and retries with
exponential backoff and full jitter living here and nowhere else.

Transient failures are ccxt's ``OperationFailed`` family (``NetworkError``:
``DDoSProtection``/``RateLimitExceeded`` for 429/418, ``ExchangeNotAvailable``,
``RequestTimeout``; ``BadResponse``) and the parse errors ccxt lets through when
an exchange answers 200 with an HTML page.  Rate limiting backs off from a longer
base delay.  Every failure is counted by type; a definite refusal (``BadSymbol``,
``AuthenticationError``, ...) is raised at once as :class:`FeedError`.

:func:`resolve_universe` picks the markets to follow from the exchange's own lists.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async
import structlog
from pydantic import SecretStr

from factorcast.adapters.observe.logsetup import redact_url

log = structlog.get_logger(__name__)
T = TypeVar("T")

#: Exceptions ccxt raises when an exchange answers with garbage (an HTML page with 200).
_GARBAGE = (AttributeError, TypeError, KeyError, ValueError, IndexError)


class FeedError(Exception):
    """The exchange refused a request for good (unknown symbol, bad credentials)."""


class FeedUnavailable(Exception):
    """The exchange did not answer usefully within the allowed attempts."""


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_s: float = 0.25
    max_s: float = 30.0
    rate_limited_initial_s: float = 2.0
    factor: float = 2.0

    def delay(self, attempt: int, rate_limited: bool, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max, base * factor**attempt)]."""
        base = self.rate_limited_initial_s if rate_limited else self.initial_s
        return rng.uniform(0.0, min(self.max_s, base * self.factor**attempt))


def rewrite_urls(tree: Any, api_url: str | None, ws_url: str | None) -> Any:
    """ccxt's ``urls['api']`` tree with every REST URL moved to ``api_url`` and every
    websocket URL to ``ws_url``, keeping each path (testnets, proxies, the embedded
    exchange).  ``None`` keeps that kind of URL as it is."""
    if isinstance(tree, dict):
        return {k: rewrite_urls(v, api_url, ws_url) for k, v in tree.items()}
    if isinstance(tree, str) and "://" in tree:
        base = ws_url if tree.startswith("ws") else api_url
        if base is None:
            return tree
        return base.rstrip("/") + urlsplit(tree).path
    return tree


@functools.cache
def _api_urls(exchange_id: str) -> Any:
    """ccxt's URL tree for ``exchange_id``: ccxt.pro's class where there is one, as it
    adds the websocket URLs to the REST ones."""
    import ccxt.pro

    cls = getattr(ccxt.pro, exchange_id, None) or getattr(ccxt_async, exchange_id)
    return cls().urls["api"]


def exchange_ids() -> list[str]:
    """Every exchange id this ccxt knows."""
    return list(ccxt.exchanges)


def ccxt_rate_limit_ms(exchange_id: str) -> float:
    """ccxt's own wall-time spacing of REST requests for ``exchange_id`` (ms)."""
    return float(getattr(ccxt, exchange_id)().rateLimit)


def client_config(
    exchange_id: str,
    *,
    api_url: str | None = None,
    ws_url: str | None = None,
    options: Mapping[str, Any] | None = None,
    api_key: SecretStr | None = None,
    secret: SecretStr | None = None,
    timeout_ms: int = 10_000,
) -> dict[str, Any]:
    """Constructor config for ``ccxt.async_support.<id>`` and ``ccxt.pro.<id>``."""
    if exchange_id not in ccxt.exchanges:
        raise FeedError(f"unknown ccxt exchange id {exchange_id!r}")
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": timeout_ms,
        "options": {"defaultType": "spot", **(options or {})},
    }
    if exchange_id.startswith("binance"):
        # spot only: no futures/margin endpoints at start-up; currencies need keys
        config["options"] = {
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
            **config["options"],
        }
    if api_url or ws_url:
        config["urls"] = {"api": rewrite_urls(_api_urls(exchange_id), api_url, ws_url)}
    if api_key is not None and secret is not None:
        config["apiKey"] = api_key.get_secret_value()
        config["secret"] = secret.get_secret_value()
    return config


class ExchangeClient:
    """One exchange's REST calls, with translation, counting and backoff."""

    def __init__(
        self,
        exchange_id: str,
        config: Mapping[str, Any],
        *,
        backoff: Backoff | None = None,
        seed: int | None = None,
    ) -> None:
        self.exchange_id = exchange_id
        self.rest = getattr(ccxt_async, exchange_id)(dict(config))
        self.backoff = backoff or Backoff()
        self.errors: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self.url = redact_url(self._base_url(self.rest.urls.get("api")) or exchange_id)

    @staticmethod
    def _base_url(tree: Any) -> str | None:
        """``scheme://host`` of the first REST URL in ccxt's URL tree."""
        if isinstance(tree, dict):
            for value in tree.values():
                url = ExchangeClient._base_url(value)
                if url:
                    return url
            return None
        if isinstance(tree, str) and tree.startswith("http"):
            parts = urlsplit(tree)
            return f"{parts.scheme}://{parts.netloc}"
        return None

    async def __aenter__(self) -> ExchangeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.rest.close()

    async def call(
        self,
        what: str,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        attempts: int | None = 5,
        **kwargs: Any,
    ) -> T:
        """``await fn(*args, **kwargs)`` with retries; ``attempts=None`` retries forever."""
        attempt = 0
        while True:
            try:
                return await fn(*args, **kwargs)
            except (ccxt.ExchangeError, ccxt.BadRequest) as e:
                self.count_error(e)
                raise FeedError(f"{self.exchange_id} refused {what}: {type(e).__name__}") from e
            except (ccxt.OperationFailed, *_GARBAGE) as e:
                self.count_error(e)
                rate_limited = isinstance(e, ccxt.DDoSProtection | ccxt.RateLimitExceeded)
                attempt += 1
                if attempts is not None and attempt >= attempts:
                    raise FeedUnavailable(
                        f"{self.exchange_id} {what} failed {attempt} times, "
                        f"last: {type(e).__name__}"
                    ) from e
                delay = self.retry_delay(attempt - 1, rate_limited)
                log.warning(
                    "exchange_call_failed",
                    call=what,
                    error=type(e).__name__,
                    attempt=attempt,
                    retry_in_s=round(delay, 3),
                )
                await asyncio.sleep(delay)

    def retry_delay(self, attempt: int, rate_limited: bool = False) -> float:
        return self.backoff.delay(attempt, rate_limited, self._rng)

    def count_error(self, e: BaseException) -> None:
        name = type(e).__name__ if isinstance(e, ccxt.BaseError) else "BadResponse"
        self.errors[name] += 1

    # -- the calls the service makes ------------------------------------------
    async def load_markets(self, attempts: int | None = 5) -> dict[str, Any]:
        async def load() -> dict[str, Any]:
            markets = await self.rest.load_markets(reload=True)
            if not markets:  # an HTML answer parses to no markets at all
                raise ccxt.BadResponse(f"{self.exchange_id} returned no markets")
            return dict(markets)

        return await self.call("load_markets", load, attempts=attempts)

    async def fetch_time(self, attempts: int | None = 3) -> int:
        async def fetch() -> int:
            now = await self.rest.fetch_time()
            if not isinstance(now, int):
                raise ccxt.BadResponse(f"{self.exchange_id} returned no server time")
            return now

        return await self.call("fetch_time", fetch, attempts=attempts)

    async def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str,
        since: int | None = None,
        limit: int | None = None,
        attempts: int | None = 3,
    ) -> list[list[Any]]:
        async def fetch() -> list[list[Any]]:
            rows = list(await self.rest.fetch_ohlcv(symbol, timeframe, since, limit) or [])
            if any(all(v is None for v in row[1:6]) for row in rows):
                # an HTML page answered with 200 parses to rows of None: not candles
                raise ccxt.BadResponse(f"{self.exchange_id} fetch_ohlcv returned no candles")
            return rows

        return await self.call("fetch_ohlcv", fetch, attempts=attempts)

    async def fetch_tickers(self, attempts: int | None = 5) -> dict[str, Any]:
        return dict(await self.call("fetch_tickers", self.rest.fetch_tickers, attempts=attempts))


async def resolve_universe(
    client: ExchangeClient,
    symbols: Sequence[str] | None,
    top_by_volume: int | None,
    quote: str | None,
    *,
    await_listing: bool = False,
) -> tuple[str, ...]:
    """The symbol list: given, or the top N active spot markets by quote volume.

    Given symbols must be markets of the exchange (trading or not: one that is not
    trading is followed as missing until it trades), unless ``await_listing``: then
    a symbol the exchange does not list yet is followed from its listing on."""
    markets = await client.load_markets(attempts=None)
    if symbols:
        unknown = [s for s in symbols if s not in markets]
        if unknown and not await_listing:
            raise FeedError(f"{client.exchange_id} has no market {', '.join(unknown)}")
        return tuple(symbols)
    candidates = [
        s
        for s, m in markets.items()
        if m.get("active", True) is not False
        and m.get("spot", True)
        and (quote is None or m.get("quote") == quote)
    ]
    if top_by_volume is None:
        return tuple(sorted(candidates))
    tickers = await client.fetch_tickers(attempts=None)
    volume = {s: float(tickers.get(s, {}).get("quoteVolume") or 0.0) for s in candidates}
    ranked = sorted(candidates, key=lambda s: (-volume[s], s))[:top_by_volume]
    return tuple(sorted(ranked))
