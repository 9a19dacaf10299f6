"""The decorator of the compiled kernels (numba): the analytics', and ``ts_rank``'s
counts (:mod:`~factorcast.factors.expressions.order`).

The engine runs the analytics at every grid step for a few hundred symbols and a
handful of factors: in numpy that is a hundred-odd calls whose fixed cost (not the
arithmetic) is most of the time.  The hot paths are therefore each one compiled
function, a *kernel*, that loops over the symbols once: :func:`kernel` is
``numba.njit`` with

- ``cache=True``: the machine code is written next to the module (or, where that
  is not writable, to numba's per-user cache) and loaded by the next process, so
  only the first run on a machine pays the compile (a few seconds);
- ``nogil=True``: a kernel does not hold the GIL while it runs;
- ``error_model="numpy"``: a division by zero gives an infinity or NaN, as in
  numpy, rather than raise.

Where no cache directory is writable at all (a read-only file system), numba
refuses ``cache=True``; the kernels are then compiled in every process instead.

Compiling happens at a kernel's first call, for the types of its arguments: the
callers pass contiguous float64 arrays (one compiled version per kernel), and
:class:`~factorcast.factors.analytics.pipeline.FactorAnalytics` calls every kernel
once when it is built, so that no compile lands inside a live bar.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from numba import njit

F = TypeVar("F", bound=Callable[..., Any])


def kernel(fn: F) -> F:
    """``fn`` compiled by numba (``njit``), cached on disk, without the GIL."""
    try:
        compiled = njit(cache=True, nogil=True, error_model="numpy")(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        compiled = njit(nogil=True, error_model="numpy")(fn)
    return cast(F, compiled)
