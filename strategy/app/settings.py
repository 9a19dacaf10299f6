"""Configuration: one pydantic-settings model, built once in the composition root.

Sources, highest precedence first: command-line flags, environment variables
(``FACTORCAST_``, nesting with ``__``, e.g. ``FACTORCAST_FACTORS__BETA_WINDOW``),
a TOML file given with ``--config``, the defaults below (those of FACTORS.md and
SIGNALS.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from factorcast.factors import CANONICAL, FactorParams
from factorcast.factors.analytics.params import HealthParams, RiskParams
from factorcast.factors.expressions.spec import CustomFactorSpec
from factorcast.factors.registry import LIQUIDITY, MARKET, MOMENTUM, SIZE, VALUE, VOLATILITY
from factorcast.strategy.service import EventLoopChoice
from factorcast.strategy.signals import FactorView
from factorcast.strategy.timeframes import timeframe_ms


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _default_weights() -> dict[str, float]:
    return {
        MARKET: 0.20,
        SIZE: 0.15,
        VALUE: 0.15,
        MOMENTUM: 0.20,
        VOLATILITY: 0.15,
        LIQUIDITY: 0.15,
    }


def _default_directions() -> dict[str, Literal[-1, 0, 1]]:
    return {MARKET: 1, SIZE: -1, VALUE: 1, MOMENTUM: 1, VOLATILITY: -1, LIQUIDITY: 1}


class SignalSettings(_Section):
    """The factor view and the adjustment rules (SIGNALS.md sections 2 and 3)."""

    weights: dict[str, float] = Field(default_factory=_default_weights)
    directions: dict[str, Literal[-1, 0, 1]] = Field(default_factory=_default_directions)
    threshold: float = Field(0.1, ge=0, le=1)
    confidence_step: float = Field(0.1, ge=0)
    min_confidence: float = Field(0.0, ge=0, le=1)
    factors_can_initiate: bool = False

    @model_validator(mode="after")
    def _known_factors(self) -> SignalSettings:
        for field in ("weights", "directions"):
            unknown = set(getattr(self, field)) - set(CANONICAL)
            if unknown:
                raise ValueError(f"{field}: unknown factor(s) {', '.join(sorted(unknown))}")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("weights must be >= 0")
        return self

    def to_view(self, custom: Mapping[str, CustomFactorSpec] | None = None) -> FactorView:
        """The factor view: the six factors' weights and directions from here, then
        each custom factor's own (``factors.custom``, in their order)."""
        custom = custom or {}
        return FactorView.build(
            (*CANONICAL, *custom),
            {**self.weights, **{name: spec.weight for name, spec in custom.items()}},
            {**self.directions, **{name: spec.direction for name, spec in custom.items()}},
            threshold=self.threshold,
            confidence_step=self.confidence_step,
            min_confidence=self.min_confidence,
            factors_can_initiate=self.factors_can_initiate,
        )


class StrategySettings(_Section):
    name: str = Field("trend", description="built-in name or dotted path module:Class")
    params: dict[str, Any] = Field(default_factory=dict)


class ExchangeSettings(_Section):
    """Where market data comes from.  By default the embedded exchange (Binance's wire
    format, on loopback) serves the simulated market; ``embedded = false`` and any
    ccxt id goes to that exchange (``api_url``/``ws_url`` for testnets and proxies)."""

    id: str = Field("binance", description="ccxt exchange id")
    embedded: bool = True
    api_url: str | None = Field(None, description="REST base URL override")
    ws_url: str | None = Field(None, description="websocket base URL override")
    timeframe: str = "1m"
    symbols: list[str] | None = None
    top_by_volume: int | None = Field(None, ge=3)
    quote: str | None = Field("USDT", description="quote currency for top_by_volume")
    refresh_universe_s: float | None = Field(
        3600.0,
        gt=0,
        description="resolve top_by_volume again, and (REST mode, websockets other than"
        " Binance's) reload the markets, this often (exchange seconds; at least 5 s of wall"
        " time): symbols listed, delisted or halted join or leave the universe; None: never",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="ccxt client options")
    api_key: SecretStr | None = None
    secret: SecretStr | None = None

    @field_validator("timeframe")
    @classmethod
    def _a_timeframe(cls, value: str) -> str:
        timeframe_ms(value)  # ValueError names the problem
        return value

    @model_validator(mode="after")
    def _embedded_speaks_binance(self) -> ExchangeSettings:
        if self.embedded and self.id != "binance":
            raise ValueError(
                f"the embedded exchange speaks binance, not {self.id}: "
                "set exchange.embedded = false to use a real exchange"
            )
        return self


class SourceSettings(_Section):
    """How live candles are read.  Durations are in exchange seconds."""

    mode: Literal["ws", "rest"] = "ws"
    grace_s: float = Field(10.0, gt=0, description="wait for late symbols after a bar closes")
    stale_after_s: float | None = Field(
        None, gt=0, description="websocket silence before the REST fallback (default 2 bars)"
    )
    delist_after_s: float | None = Field(
        None,
        gt=0,
        description="a symbol without a bar this long leaves the universe (missing, not"
        " late) until a bar of it comes again (default 3 bars)",
    )


class SimSettings(_Section):
    """The embedded exchange's market: the simulated one, or recorded candles."""

    symbols: int = Field(50, ge=3, le=5000)
    seed: int = 7
    speed: float = Field(10.0, gt=0, description="bars per second of wall time")
    missing_prob: float = Field(0.002, ge=0, lt=0.5)
    data: Path | None = Field(None, description="recorded candles (freqtrade layout) to serve")
    epoch_ms: int | None = Field(
        None, ge=0, description="pin the bar forming at start to this time (default: now)"
    )


class RedisSettings(_Section):
    """Where signals go (SIGNALS.md section 5).  With no URL the service starts a
    Redis server of its own on a unix socket in the state directory."""

    url: str | None = Field(None, description="redis://, rediss:// (TLS) or unix://")
    password: SecretStr | None = None
    prefix: str = Field("factorcast", pattern=r"^[A-Za-z0-9_.:-]+$")
    maxlen: int = Field(100_000, ge=1000, description="stream MAXLEN ~")
    heartbeat_ttl_s: float | None = Field(None, gt=0, description="default: three bars")
    spool_max_bytes: int = Field(256 * 2**20, ge=2**20)
    spool_fsync: Literal["always", "batch"] = "always"
    backlog_max_bytes: int = Field(
        64 * 2**20, ge=0, description="publications held in memory while the spool refuses"
    )

    @field_validator("url")
    @classmethod
    def _url_can_work(cls, url: str | None) -> str | None:
        """What can be told without a network: the scheme, the host, the port's range.
        (A host that does not resolve, or a server that is down, shows at start.)"""
        if url is None:
            return url
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                f"the scheme must be redis://, rediss:// or unix://, not {scheme or 'none'}"
            )
        if scheme == "unix":
            if not parts.path:
                raise ValueError("unix:// needs the socket's path, e.g. unix:///run/redis.sock")
            return url
        try:
            port = parts.port
        except ValueError:  # out of 0-65535, or not a number
            port = -1
        if port is not None and not 1 <= port <= 65535:
            raise ValueError("the port must be a number from 1 to 65535")
        if not parts.hostname:
            raise ValueError(f"no host in the URL (e.g. {scheme}://127.0.0.1:6379)")
        return url


class MetricsSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535, description="0: any free port")
    per_symbol_exposures: bool | None = Field(
        None, description="factorcast_exposure{symbol,factor}; default: on up to 200 symbols"
    )


class RecordedSettings(_Section):
    """Recorded candle files (``replay --data``, ``sim.data``)."""

    max_file_share: float = Field(
        0.1,
        gt=0,
        le=1,
        description="refuse a candle file larger than this share of the memory available "
        "at start: a replay takes about 1.2x a csv file's size, 4.4x a feather or "
        "parquet file's, 4x a json file's (README, replay)",
    )


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


_ENV_PREFIX = "FACTORCAST_"
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("factorcast_config_file", default=None)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=_ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    #: Validated through the dataclass itself: its ``Annotated`` bounds are the fields'
    #: constraints, its ``__post_init__`` the rules between fields (factors/params.py).
    factors: FactorParams = Field(default_factory=FactorParams)
    signals: SignalSettings = Field(default_factory=SignalSettings)
    #: factor health and the risk model (ANALYTICS.md sections 2 and 3)
    health: HealthParams = Field(default_factory=HealthParams)
    risk: RiskParams = Field(default_factory=RiskParams)
    strategy: StrategySettings = Field(default_factory=StrategySettings)
    exchange: ExchangeSettings = Field(default_factory=ExchangeSettings)
    source: SourceSettings = Field(default_factory=SourceSettings)
    sim: SimSettings = Field(default_factory=SimSettings)
    recorded: RecordedSettings = Field(default_factory=RecordedSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    signing_key: SecretStr | None = Field(
        None, description="HMAC-SHA256 key: signals carry a 'sig' field"
    )
    state_dir: Path = Field(
        Path(".factorcast"), description="spool, and the embedded Redis server's socket"
    )
    event_loop: EventLoopChoice = Field(
        "auto", description="auto: uvloop where installed, else asyncio's own loop"
    )

    @model_validator(mode="after")
    def _known_analytics_factors(self) -> Settings:
        known = (*CANONICAL, *self.factors.custom)
        chosen = self.factors.analytics.factors or ()
        unknown = [f for f in chosen if f not in known]
        if unknown:
            raise ValueError(
                f"factors.analytics.factors: unknown factor(s) {', '.join(unknown)}"
                f" (known: {', '.join(known)})"
            )
        return self

    @model_validator(mode="after")
    def _score_within_one(self) -> Settings:
        """``factor_score`` is within [-1, 1] on the wire (SIGNALS.md section 4): the
        weights of the six and of the custom factors add up to at most 1."""
        total = sum(self.signals.weights.values())
        total += sum(spec.weight for spec in self.factors.custom.values())
        if total > 1 + 1e-9:
            raise ValueError(
                f"the factor weights (signals.weights and factors.custom.*.weight) add up"
                f" to {total:g}: at most 1, so that factor_score stays within [-1, 1]"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        path = _CONFIG_FILE.get()
        if path is not None:
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=path),)
        return sources


class ConfigError(Exception):
    """A bad configuration, or a start that cannot work (a port or a state directory
    taken), with a one-line message naming the field: exit code 2."""


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; raise :class:`ConfigError` with a one-line message."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file not found: {config_file}")
    for name in os.environ:
        if name.upper().startswith(_ENV_PREFIX):
            top = name[len(_ENV_PREFIX) :].split("__")[0].lower()
            if top not in Settings.model_fields:
                raise ConfigError(f"config error: {name}: unknown setting")
    token = _CONFIG_FILE.set(config_file)
    try:
        return Settings(**overrides)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e)) from None
    except ValueError as e:  # a TOML syntax error, or a source that failed to parse
        raise ConfigError(f"config: {e}".splitlines()[0]) from None
    finally:
        _CONFIG_FILE.reset(token)


#: fields whose value a configuration error never repeats
_SECRET_FIELDS = frozenset({"password", "secret", "api_key", "signing_key"})


#: a custom factor's rules name the key (``expr: column 9: ...``) or the factor
#: (``custom.market: ...``) they are about: it joins the field
_CUSTOM_KEY = re.compile(
    "^(?P<key>" + "|".join(f.name.rstrip("_") for f in fields(CustomFactorSpec)) + "): "
)
_CUSTOM_NAME = re.compile(r"^(?P<key>custom\.[^:]+): ")


def describe_validation_error(e: ValidationError) -> str:
    err = e.errors()[0]
    field = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    head = _CUSTOM_KEY if field.startswith("factors.custom.") else _CUSTOM_NAME
    found = head.match(msg) if field.startswith("factors") else None
    if found:
        field, msg = f"{field}.{found['key']}", msg[found.end() :]
    extra = f" (+{e.error_count() - 1} more)" if e.error_count() > 1 else ""
    if not field:  # a rule between sections: its message names the fields
        return f"config error: {msg}{extra}"
    value = err.get("input")
    if isinstance(value, str):
        value = _without_password(value)
    secret = any(str(p) in _SECRET_FIELDS for p in err["loc"])
    shown = (
        f" (got {value!r})" if isinstance(value, str | int | float | bool) and not secret else ""
    )
    return f"config error: {field}: {msg}{shown}{extra}"


def _without_password(value: str) -> str:
    """A URL's password (``scheme://user:pw@host``, ``?password=pw``) as ``***``: these
    messages are printed before logging, and its redaction, is set up."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if not parts.password and "password=" not in parts.query:
        return value
    if parts.password:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(k == "password" for k, _ in query):
        hidden = [(k, "***" if k == "password" else v) for k, v in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    return parts.geturl()
