"""structlog set-up: JSON off a terminal, a console renderer on one, secrets redacted.

On a terminal the lines go through :class:`adapters.observe.terminal_log.TerminalLog`:
floods collapsed, and printed above the live table while one is drawn.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, TextIO

import structlog

from factorcast.adapters.observe.terminal_log import EventDict, TerminalLog, install

_SECRET_KEYS = re.compile(r"pass(word)?|secret|token|api_?key|signing_key|auth", re.I)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<cred>[^/@\s]+)@", re.I)
REDACTED = "***"


def redact_url(url: str) -> str:
    """``redis://user:pw@host`` -> ``redis://***@host``."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{REDACTED}@", url)


class Redactor:
    """Processor that keeps every secret out of every log line.

    Values under secret-looking keys are replaced, credentials in URLs are
    masked, and any registered secret value is masked wherever it appears.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = [s for s in secrets if s]

    def add(self, secret: str | None) -> None:
        if secret:
            self._secrets.append(secret)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            value = redact_url(value)
            for secret in self._secrets:
                value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, BaseException):
            return self._clean(f"{type(value).__name__}: {value}")
        return value

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            if _SECRET_KEYS.search(key) and value not in (None, ""):
                event_dict[key] = REDACTED
            else:
                event_dict[key] = self._clean(value)
        return event_dict


def _to_terminal(
    logger: Any, method: str, event_dict: EventDict
) -> tuple[tuple[EventDict], dict[str, Any]]:
    """Last processor of the console path: the event dict itself, for TerminalLog."""
    return (event_dict,), {}


def configure_logging(
    level: str = "info",
    fmt: str = "auto",
    stream: TextIO | None = None,
    redactor: Redactor | None = None,
    flood_window_s: float = 1.0,
) -> Redactor:
    """Configure structlog for the process; returns the redactor to register secrets with.

    On the console path, repeats of one event within ``flood_window_s`` become one
    line with a count (0: every event its own line).
    """
    stream = stream or sys.stderr
    redactor = redactor or Redactor()
    console = fmt == "console" or (fmt == "auto" and stream.isatty())
    last: Any
    factory: Callable[..., Any]
    if console:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
        terminal = TerminalLog(
            stream, lambda ed: renderer(None, str(ed.get("level", "info")), ed), flood_window_s
        )
        install(terminal)
        last, factory = _to_terminal, (lambda *args: terminal)
    else:
        install(None)
        last, factory = structlog.processors.JSONRenderer(), structlog.PrintLoggerFactory(stream)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redactor,
            last,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    return redactor
