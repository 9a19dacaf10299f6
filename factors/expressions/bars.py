"""One grid step's candles as the custom factors read them, and the expression inputs.

A bar is any object with the arrays ``open, high, low, close, volume,
quote_volume`` (NaN where none) and ``present`` (a real bar at this grid time),
one entry per symbol of a fixed universe: :class:`strategy.events.CrossSection`
is one (structurally, :class:`BarLike`), :class:`Bar` is the plain one.  A grid
time without any bar is a bar with ``present`` all False; it must still be fed,
so that windows count grid steps.

The inputs of ANALYTICS.md section 9, per symbol, NaN where the symbol has no
bar at this time:

* ``open, high, low, close, volume`` as delivered;
* ``quote_volume``: the exchange's quote volume where the source has it, else
  ``close * volume`` (FACTORS.md, Inputs);
* ``vwap = quote_volume / volume`` (NaN where the volume is 0);
* ``returns = close / delay(close, 1) - 1``: the simple return of ANALYTICS.md
  section 0, NaN where this bar or the one at the previous grid time is missing
  (compiled as that expression, so its state is a ``delay`` window).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

__all__ = [
    "BAR_FIELDS",
    "INPUTS",
    "Bar",
    "BarLike",
    "CleanBar",
    "bars_of_panel",
    "clean_bar",
    "raw_inputs",
]

#: The arrays a bar carries besides ``present``.
BAR_FIELDS: Final[tuple[str, ...]] = ("open", "high", "low", "close", "volume", "quote_volume")
#: The names an expression may read (ANALYTICS.md section 9).
INPUTS: Final[tuple[str, ...]] = (*BAR_FIELDS, "returns", "vwap")


class BarLike(Protocol):
    """What a custom factor reads of one grid step: arrays of one entry per symbol."""

    @property
    def open(self) -> FloatArray: ...
    @property
    def high(self) -> FloatArray: ...
    @property
    def low(self) -> FloatArray: ...
    @property
    def close(self) -> FloatArray: ...
    @property
    def volume(self) -> FloatArray: ...
    @property
    def quote_volume(self) -> FloatArray: ...
    @property
    def present(self) -> BoolArray: ...


@dataclass(frozen=True, slots=True)
class Bar:
    """A plain :class:`BarLike`."""

    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    quote_volume: FloatArray
    present: BoolArray

    @staticmethod
    def empty(n_symbols: int) -> Bar:
        """A grid time without any bar."""
        nan = np.full(n_symbols, np.nan)
        return Bar(nan, nan, nan, nan, nan, nan, np.zeros(n_symbols, dtype=bool))


@dataclass(frozen=True, slots=True)
class CleanBar(Bar):
    """A bar whose fields are the inputs already (:func:`clean_bar`): the custom
    factors of one model read it without cleaning it again each."""


def clean_bar(bar: BarLike) -> CleanBar:
    """``bar`` as the inputs: every field NaN where the symbol has no bar or the
    value is not finite, ``quote_volume`` filled with ``close * volume``."""
    fields = raw_inputs(bar, BAR_FIELDS)
    return CleanBar(**fields, present=np.asarray(bar.present, dtype=bool))


def raw_inputs(bar: BarLike, names: tuple[str, ...]) -> dict[str, FloatArray]:
    """The bar fields among ``names`` (``vwap`` and ``returns`` are built from them
    by the compiled program), NaN where the symbol has no bar or the value is not
    finite."""
    if isinstance(bar, CleanBar):
        return {name: getattr(bar, name) for name in names}
    present = np.asarray(bar.present, dtype=bool)
    out: dict[str, FloatArray] = {}
    for name in names:
        if name == "quote_volume":
            q = np.asarray(bar.quote_volume, dtype=np.float64)
            with np.errstate(all="ignore"):
                value = np.where(np.isfinite(q), q, np.asarray(bar.close) * np.asarray(bar.volume))
        else:
            value = np.asarray(getattr(bar, name), dtype=np.float64)
        out[name] = np.where(present & np.isfinite(value), value, np.nan)
    return out


def bars_of_panel(fields: Mapping[str, FloatArray], present: BoolArray) -> Iterator[Bar]:
    """The bars of a ``(T, n)`` panel, one per grid step (a row with ``present`` all
    False for a grid time without any bar).  ``fields`` maps each name of
    :data:`BAR_FIELDS` to a ``(T, n)`` array; a missing ``quote_volume`` is NaN."""
    present = np.asarray(present, dtype=bool)
    nan = np.full(present.shape, np.nan)
    cols = {f: np.asarray(fields.get(f, nan), dtype=np.float64) for f in BAR_FIELDS}
    for name, col in cols.items():
        if col.shape != present.shape:
            raise ValueError(f"panel field {name} has shape {col.shape}, present {present.shape}")
    for t in range(present.shape[0]):
        yield Bar(
            open=cols["open"][t],
            high=cols["high"][t],
            low=cols["low"][t],
            close=cols["close"][t],
            volume=cols["volume"][t],
            quote_volume=cols["quote_volume"][t],
            present=present[t],
        )
