"""The portfolio commands' input files (ANALYTICS.md sections 4 and 6): holdings,
a group mapping, and a returns series.

Holdings, CSV (or JSON: a list of objects with the same keys)::

    symbol,weight              symbol,quantity
    BTC/USDT,0.5               BTC/USDT,0.25
    ETH/USDT,0.3               ETH/USDT,4
    SOL/USDT,0.2               CASH,1500

- a header row naming ``symbol`` and at least one of ``weight`` and ``quantity``
  (both columns may be there: each row then fills exactly one of them);
- one row per symbol (ccxt's spelling, ``BASE/QUOTE``), plus an optional row
  ``CASH`` with a ``quantity`` in the quote currency (portfolios of quantities);
- weights are fractions of NAV, used as given (negative: short); quantities are
  marked at the close of the portfolio's bar (the as-of close).

Group mapping, CSV: ``symbol`` and one column per dimension (``sector,region``);
an empty cell leaves the symbol unclassified for that dimension.

Returns, CSV: ``timestamp,return``, ``timestamp`` the bar's open time in ms UTC,
``return`` the simple return of that bar as a fraction; one row per bar.

What these readers refuse is a :class:`PortfolioInputError` (the command exits
2) whose one line names the file and the problem: a file that cannot be read, a
missing or unknown column, a cell that is not a number, a returns timestamp twice.
The rules between rows (a duplicate or unknown symbol, both weight and quantity or
neither, a mixed quote currency, ``NAV <= 0``, a mapping's symbol twice) are
checked where the holdings meet the universe
(:func:`factorcast.factors.analytics.holdings_weights`, ``group_map``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.analytics.portfolio import (
    SYMBOL_KEY,
    Holding,
    PortfolioInputError,
    group_map,
)

__all__ = [
    "HOLDING_COLUMNS",
    "RETURN_COLUMNS",
    "ReturnsSeries",
    "read_groups",
    "read_holdings",
    "read_returns",
]

WEIGHT: Final = "weight"
QUANTITY: Final = "quantity"
HOLDING_COLUMNS: Final = (SYMBOL_KEY, WEIGHT, QUANTITY)
TIMESTAMP: Final = "timestamp"
RETURN: Final = "return"
RETURN_COLUMNS: Final = (TIMESTAMP, RETURN)


def _text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PortfolioInputError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise PortfolioInputError(f"{what} {path}: is a directory") from None
    except UnicodeDecodeError:
        raise PortfolioInputError(f"{what} {path}: not UTF-8 text") from None
    except OSError as e:
        raise PortfolioInputError(f"{what} {path}: cannot read it ({e.strerror or e})") from None


def _csv_rows(path: Path, what: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header (stripped) and the non-blank rows with their line numbers."""
    reader = csv.reader(io.StringIO(_text(path, what)))
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, str]]] = []
    for line, cells in enumerate(reader, start=1):
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip() for c in cells]
            if len(set(header)) != len(header):
                raise PortfolioInputError(f"{what} {path}: a column is named twice")
            continue
        if len(cells) > len(header):
            raise PortfolioInputError(
                f"{what} {path} line {line}: {len(cells)} cells, the header has {len(header)}"
            )
        padded = cells + [""] * (len(header) - len(cells))
        rows.append((line, {h: c.strip() for h, c in zip(header, padded, strict=True)}))
    if header is None:
        raise PortfolioInputError(f"{what} {path}: empty file")
    return header, rows


def _number(text: str, where: str, field: str) -> float | None:
    """A cell as a finite float; ``None`` when empty."""
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise PortfolioInputError(f"{where}: {field} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise PortfolioInputError(f"{where}: {field} {text!r} is not a finite number")
    return value


def read_holdings(path: Path) -> list[Holding]:
    """The holdings of a CSV file, or of a JSON file (``.json``: a list of objects
    ``{"symbol": ..., "weight": ...}`` or ``{"symbol": ..., "quantity": ...}``)."""
    what = "holdings"
    if path.suffix.lower() == ".json":
        return _json_holdings(path)
    header, rows = _csv_rows(path, what)
    unknown = [h for h in header if h not in HOLDING_COLUMNS]
    if unknown:
        raise PortfolioInputError(
            f"{what} {path}: unknown column {unknown[0]!r} (columns: symbol, and weight "
            "or quantity)"
        )
    if SYMBOL_KEY not in header or not ({WEIGHT, QUANTITY} & set(header)):
        raise PortfolioInputError(
            f"{what} {path}: the header must name symbol and weight or quantity"
        )
    out: list[Holding] = []
    for line, row in rows:
        where = f"{what} {path} line {line}"
        symbol = row[SYMBOL_KEY]
        if not symbol:
            raise PortfolioInputError(f"{where}: no symbol")
        out.append(
            Holding(
                symbol,
                weight=_number(row.get(WEIGHT, ""), where, WEIGHT),
                quantity=_number(row.get(QUANTITY, ""), where, QUANTITY),
            )
        )
    if not out:
        raise PortfolioInputError(f"{what} {path}: no holdings")
    return out


def _json_holdings(path: Path) -> list[Holding]:
    what = "holdings"
    try:
        data: Any = json.loads(_text(path, what))
    except json.JSONDecodeError as e:
        raise PortfolioInputError(f"{what} {path}: not JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(data, list) or not data:
        raise PortfolioInputError(f"{what} {path}: expected a non-empty list of holdings")
    out: list[Holding] = []
    for i, item in enumerate(data):
        where = f"{what} {path} item {i}"
        if not isinstance(item, dict):
            raise PortfolioInputError(f"{where}: not an object")
        unknown = [k for k in item if k not in HOLDING_COLUMNS]
        if unknown:
            raise PortfolioInputError(f"{where}: unknown key {unknown[0]!r}")
        symbol = item.get(SYMBOL_KEY)
        if not isinstance(symbol, str) or not symbol.strip():
            raise PortfolioInputError(f"{where}: no symbol")
        values: dict[str, float | None] = {}
        for key in (WEIGHT, QUANTITY):
            v = item.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise PortfolioInputError(f"{where}: {key} {v!r} is not a number")
            if v is not None and not math.isfinite(v):
                raise PortfolioInputError(f"{where}: {key} is not a finite number")
            values[key] = None if v is None else float(v)
        out.append(Holding(symbol.strip(), weight=values[WEIGHT], quantity=values[QUANTITY]))
    return out


def read_groups(path: Path) -> dict[str, dict[str, str]]:
    """A mapping file as ``{dimension: {symbol: group}}`` (a symbol twice is an error)."""
    what = "group mapping"
    header, rows = _csv_rows(path, what)
    if SYMBOL_KEY not in header or len(header) < 2:
        raise PortfolioInputError(
            f"{what} {path}: the header must name symbol and at least one dimension "
            "(e.g. symbol,sector,region)"
        )
    try:
        return group_map(row for _, row in rows)
    except PortfolioInputError as e:
        raise PortfolioInputError(f"{what} {path}: {str(e).removeprefix(what + ': ')}") from None


@dataclass(frozen=True, slots=True)
class ReturnsSeries:
    """A returns file: bar open times (ms, increasing) and the simple returns."""

    path: Path
    ts: NDArray[np.int64]
    returns: NDArray[np.float64]


def read_returns(path: Path) -> ReturnsSeries:
    """``timestamp,return`` rows, sorted by time; a timestamp twice is an error."""
    what = "returns"
    header, rows = _csv_rows(path, what)
    if set(RETURN_COLUMNS) - set(header):
        raise PortfolioInputError(f"{what} {path}: the header must name timestamp and return")
    ts: list[int] = []
    values: list[float] = []
    seen: dict[int, int] = {}
    for line, row in rows:
        where = f"{what} {path} line {line}"
        text = row[TIMESTAMP]
        try:
            t = int(text)
        except ValueError:
            raise PortfolioInputError(
                f"{where}: timestamp {text!r} is not a whole number of ms"
            ) from None
        if t in seen:
            raise PortfolioInputError(f"{where}: timestamp {t} already on line {seen[t]}")
        seen[t] = line
        r = _number(row[RETURN], where, RETURN)
        if r is None:
            raise PortfolioInputError(f"{where}: no return")
        ts.append(t)
        values.append(r)
    if not ts:
        raise PortfolioInputError(f"{what} {path}: no returns")
    order = np.argsort(np.array(ts, dtype=np.int64), kind="stable")
    return ReturnsSeries(
        path, np.array(ts, dtype=np.int64)[order], np.array(values, dtype=np.float64)[order]
    )
