"""What the Redis adapters (the sink and the subscriber) share: keeping passwords out.

A Redis URL may carry a password (``redis://:pw@host/0`` or ``?password=pw``). The
adapters take it out with :func:`split_url` and give it to the client separately,
show URLs only through :func:`redact_url`, and pass every log and exception text
through :func:`scrub`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from redis.exceptions import RedisError

__all__ = ["UNAVAILABLE", "redact_url", "scrub", "split_url"]

#: what "Redis did not answer" looks like: ConnectionError, TimeoutError, WatchError...
UNAVAILABLE = (RedisError, OSError)

_URL_CREDENTIALS = re.compile(r"([a-z][a-z0-9+.-]*://[^\s/@:]*:)[^\s@]*@", re.IGNORECASE)


def split_url(url: str) -> tuple[str, str | None]:
    """(URL without any password, the password if the URL carried one)."""
    parts = urlsplit(url)
    password = unquote(parts.password) if parts.password else None
    query = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "password":
            password = password or value
        else:
            query.append((key, value))
    netloc = parts.netloc.rpartition("@")[2]
    if parts.username:
        netloc = f"{quote(unquote(parts.username), safe='')}@{netloc}"
    clean = f"{parts.scheme}://{netloc}{parts.path}"
    if query:
        clean += "?" + urlencode(query)
    return clean, password


def redact_url(url: str, *, has_password: bool = False) -> str:
    """The URL with any password replaced by ``***`` (safe to log)."""
    clean, password = split_url(url)
    if password is None and not has_password:
        return clean
    parts = urlsplit(clean)
    host = parts.netloc.rpartition("@")[2]
    user = unquote(parts.username) if parts.username else ""
    shown = f"{parts.scheme}://{user}:***@{host}{parts.path}"
    return shown + (f"?{parts.query}" if parts.query else "")


def scrub(text: str, password: str | None) -> str:
    """``text`` without ``password`` (plain or URL-quoted) or any URL's credentials."""
    if password:
        for form in {password, quote(password, safe="")}:
            text = text.replace(form, "***")
    return _URL_CREDENTIALS.sub(r"\1***@", text)
