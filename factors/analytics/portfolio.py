"""Portfolios (ANALYTICS.md section 4): weights, exposures, position contributions
and groups.

Pure: the holdings arrive parsed (:class:`Holding` rows; reading the CSV or JSON
file is ``adapters/files``' job), the universe as its symbols, the closes and the
exposures at ``T`` as arrays.  The checks that need no file are here and raise
:class:`PortfolioInputError`, a ``ValueError`` whose message is one line naming
the problem (the command exits 2 on it).

- Weights: ``w_i`` as given, or from quantities ``value_i = q_i * C[i,T]``,
  ``NAV = sum value_i + cash``, ``w_i = value_i / NAV``.
- Exposure ``x[k] = sum_i w_i X[i,k,T]`` and ``x[universe] = sum_i w_i`` over the
  covered holdings (every exposure finite); the contribution ``c[i,k] = w_i
  X[i,k,T]`` (``c[i,universe] = w_i``) and ``x`` is *computed as* the column sums
  of ``c``: position and portfolio level are the same numbers.
- Groups: a mapping ``symbol -> group`` per dimension (``sector``, ``region``);
  a group's weight ``sum w_i`` and contributions ``sum c[i,k]`` over its members.

Choices the contract leaves open, made here:

- A holdings file is either all weights or all quantities; a row with both or
  neither, or a mix of weight rows and quantity rows, is an error.  ``CASH`` (the
  quote currency, :data:`CASH`) takes a quantity only, so it belongs to a
  portfolio of quantities; it is not a symbol of the universe.
- The quote currency of ``BASE/QUOTE`` (``BASE/QUOTE:SETTLE`` for ccxt's
  derivatives) is ``QUOTE``; two different ones among the holdings are an error.
  A symbol without ``/`` has no quote currency to compare (it is then unknown to
  a universe of ccxt symbols anyway).
- ``C[i,T]`` is whatever close the caller passes: the as-of close (the symbol's
  last close at or before ``T``) is the natural choice.  A quantity without a
  finite, positive close is an error naming the symbol.
- An uncovered holding is listed with the reason of its first missing exposure
  (model order).  Covered holdings keep the order of the holdings; ``rows`` says
  where each sits among them, so callers can slice other per-holding arrays.
- Groups hold covered holdings only (the uncovered are out of every portfolio
  number); an empty cell in a mapping row means ``unclassified`` (:data:`UNCLASSIFIED`).
  Groups are ordered by first appearance among the covered holdings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.reasons import Reason
from factorcast.factors.registry import UNIVERSE

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: the row of a holdings file that holds cash, in the quote currency
CASH: Final = "CASH"
#: the group of a symbol the mapping does not classify
UNCLASSIFIED: Final = "unclassified"
#: the key of a mapping row that names the symbol; its other keys are dimensions
SYMBOL_KEY: Final = "symbol"


class PortfolioInputError(ValueError):
    """Bad portfolio input (holdings, mapping, wanted tilt): one line naming it."""


@dataclass(frozen=True, slots=True)
class Holding:
    """One parsed row of a holdings file: a symbol (or :data:`CASH`) with exactly
    one of ``weight`` or ``quantity``."""

    symbol: str
    weight: float | None = None
    quantity: float | None = None


@dataclass(frozen=True, slots=True)
class Weights:
    """Holdings turned into weights.

    ``symbols`` in the holdings' order (``CASH`` not among them), ``index`` their
    positions in the universe, ``weights`` the ``w_i``.  ``nav`` and ``cash``
    (the cash quantity) are ``None`` for a portfolio given by weights.
    """

    symbols: tuple[str, ...]
    index: IntArray
    weights: FloatArray
    nav: float | None
    cash: float | None
    quote: str | None


def quote_currency(symbol: str) -> str | None:
    """``QUOTE`` of ``BASE/QUOTE`` (or ``BASE/QUOTE:SETTLE``); ``None`` without ``/``."""
    if "/" not in symbol:
        return None
    return symbol.split("/", 1)[1].split(":", 1)[0]


def _finite(value: float, what: str, symbol: str) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise PortfolioInputError(f"holdings: the {what} of {symbol} is not a finite number")
    return v


def holdings_weights(
    holdings: Sequence[Holding], universe: Sequence[str], close: FloatArray
) -> Weights:
    """Check the holdings against the universe and turn them into weights.

    ``close`` has one entry per universe symbol: ``C[i,T]``, used for quantities.
    """
    if not holdings:
        raise PortfolioInputError("holdings: no holdings")
    position = {s: i for i, s in enumerate(universe)}
    close = np.asarray(close, dtype=np.float64)
    if close.shape != (len(universe),):
        raise ValueError("close must have one entry per universe symbol")
    seen: set[str] = set()
    kinds: set[str] = set()
    for h in holdings:
        if not h.symbol:
            raise PortfolioInputError("holdings: a row has no symbol")
        if h.symbol in seen:
            raise PortfolioInputError(f"holdings: duplicate symbol {h.symbol}")
        seen.add(h.symbol)
        if (h.weight is None) == (h.quantity is None):
            which = (
                "both weight and quantity"
                if h.weight is not None
                else "neither weight nor quantity"
            )
            raise PortfolioInputError(f"holdings: {h.symbol} has {which}")
        if h.symbol == CASH:
            if h.quantity is None:
                raise PortfolioInputError(f"holdings: {CASH} takes a quantity, not a weight")
        else:
            kinds.add("weight" if h.weight is not None else "quantity")
    if CASH in seen:
        kinds.add("quantity")
    if len(kinds) > 1:
        raise PortfolioInputError("holdings: rows mix weights and quantities")
    rows = [h for h in holdings if h.symbol != CASH]
    if not rows:
        raise PortfolioInputError(f"holdings: no holdings besides {CASH}")
    quotes: dict[str, str] = {}
    for h in rows:
        q = quote_currency(h.symbol)
        if q is not None:
            quotes.setdefault(q, h.symbol)
    if len(quotes) > 1:
        listed = ", ".join(f"{q} ({s})" for q, s in quotes.items())
        raise PortfolioInputError(f"holdings: mixed quote currency: {listed}")
    unknown = [h.symbol for h in rows if h.symbol not in position]
    if unknown:
        raise PortfolioInputError(f"holdings: unknown symbol {', '.join(unknown)}")
    symbols = tuple(h.symbol for h in rows)
    index = np.array([position[s] for s in symbols], dtype=np.intp)
    quote = next(iter(quotes), None)
    if "weight" in kinds:
        w = np.array([_finite(h.weight, "weight", h.symbol) for h in rows if h.weight is not None])
        return Weights(symbols, index, w, None, None, quote)
    qty = np.array(
        [_finite(h.quantity, "quantity", h.symbol) for h in rows if h.quantity is not None]
    )
    price = close[index]
    bad = [s for s, p in zip(symbols, price, strict=True) if not (math.isfinite(p) and p > 0)]
    if bad:
        raise PortfolioInputError(f"holdings: no close for {', '.join(bad)} at the portfolio's bar")
    cash = math.fsum(
        _finite(h.quantity, "quantity", h.symbol)
        for h in holdings
        if h.symbol == CASH and h.quantity is not None
    )
    value = qty * price
    nav = math.fsum([*value.tolist(), cash])
    if not nav > 0:
        raise PortfolioInputError(f"holdings: NAV <= 0 ({nav!r})")
    return Weights(symbols, index, value / nav, nav, cash, quote)


@dataclass(frozen=True, slots=True)
class PortfolioExposure:
    """A portfolio's exposures at ``T``.

    ``names`` are ``universe`` then the model factors; ``symbols``, ``rows``
    (positions among the holdings passed in) and ``weights`` are the covered
    holdings; ``contributions[i, k] = w_i X[i,k]`` (``universe`` column ``w_i``)
    and ``exposure`` its column sums.  ``covered_weight = sum |w_i|`` over the
    covered; ``uncovered`` maps every other holding to its reason.
    """

    names: tuple[str, ...]
    symbols: tuple[str, ...]
    rows: IntArray
    weights: FloatArray
    contributions: FloatArray
    exposure: FloatArray
    covered_weight: float
    uncovered: dict[str, Reason]


def portfolio_exposure(
    symbols: Sequence[str],
    weights: FloatArray,
    names: Sequence[str],
    exposures: FloatArray,
    reasons: NDArray[np.integer],
) -> PortfolioExposure:
    """Exposures and position contributions of the holdings ``symbols`` with
    weights ``w`` (m,), exposures ``X`` (m, K) in ``names`` order and their reason
    codes (m, K) (``FactorSnapshot.reason`` rows of the holdings)."""
    w = np.asarray(weights, dtype=np.float64)
    x = np.asarray(exposures, dtype=np.float64)
    m, k = len(symbols), len(names)
    if w.shape != (m,) or x.shape != (m, k) or np.shape(reasons) != (m, k):
        raise ValueError("weights, exposures and reasons must have one row per holding")
    finite = np.isfinite(x)
    covered = finite.all(axis=1)
    uncovered: dict[str, Reason] = {}
    for i in np.flatnonzero(~covered).tolist():
        first = int(np.flatnonzero(~finite[i])[0])
        code = int(reasons[i, first])
        uncovered[symbols[i]] = Reason(code) if code != Reason.OK else Reason.MISSING_BAR
    rows = np.flatnonzero(covered).astype(np.intp)
    wc = w[rows]
    contributions = np.empty((rows.size, k + 1))
    contributions[:, 0] = wc
    contributions[:, 1:] = wc[:, None] * x[rows]
    return PortfolioExposure(
        names=(UNIVERSE, *names),
        symbols=tuple(symbols[i] for i in rows.tolist()),
        rows=rows,
        weights=wc,
        contributions=contributions,
        exposure=contributions.sum(axis=0),
        covered_weight=float(np.abs(wc).sum()),
        uncovered=uncovered,
    )


def group_map(rows: Iterable[Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """A mapping file's rows (``symbol`` plus one column per dimension, e.g.
    ``sector``, ``region``) as ``{dimension: {symbol: group}}``; a symbol twice
    is a :class:`PortfolioInputError`; an empty cell leaves the symbol unclassified."""
    out: dict[str, dict[str, str]] = {}
    seen: set[str] = set()
    for row in rows:
        symbol = (row.get(SYMBOL_KEY) or "").strip()
        if not symbol:
            raise PortfolioInputError(f"group mapping: a row has no {SYMBOL_KEY}")
        if symbol in seen:
            raise PortfolioInputError(f"group mapping: symbol {symbol} appears twice")
        seen.add(symbol)
        for dimension, group in row.items():
            if dimension == SYMBOL_KEY:
                continue
            members = out.setdefault(dimension, {})
            if group is not None and group.strip():
                members[symbol] = group.strip()
    return out


@dataclass(frozen=True, slots=True)
class GroupBreakdown:
    """One dimension's groups: ``weights[g] = sum w_i`` and ``contributions[g, k]
    = sum c[i,k]`` over the covered members ``members[g]`` (names as the
    portfolio's)."""

    groups: tuple[str, ...]
    members: tuple[tuple[str, ...], ...]
    weights: FloatArray
    contributions: FloatArray


def group_breakdown(portfolio: PortfolioExposure, mapping: Mapping[str, str]) -> GroupBreakdown:
    """Group weights and contributions of ``portfolio`` for one dimension's
    ``mapping`` (symbol -> group); unmapped symbols are :data:`UNCLASSIFIED`."""
    labels = [mapping.get(s, UNCLASSIFIED) for s in portfolio.symbols]
    groups = [g for g in dict.fromkeys(labels) if g != UNCLASSIFIED]
    if UNCLASSIFIED in labels:
        groups.append(UNCLASSIFIED)
    slot = {g: j for j, g in enumerate(groups)}
    at = np.array([slot[g] for g in labels], dtype=np.intp)
    weights = np.zeros(len(groups))
    contributions = np.zeros((len(groups), len(portfolio.names)))
    np.add.at(weights, at, portfolio.weights)
    np.add.at(contributions, at, portfolio.contributions)
    members = tuple(
        tuple(s for s, g in zip(portfolio.symbols, labels, strict=True) if g == name)
        for name in groups
    )
    return GroupBreakdown(tuple(groups), members, weights, contributions)
