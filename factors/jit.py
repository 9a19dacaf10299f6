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

:func:`sum_kernel` is the same, with sums the compiler may reorder (the
regression's moments, wls.py).

Where no cache directory is writable at all (a read-only file system), numba
refuses ``cache=True``; the kernels are then compiled in every process instead.

Numba keys a kernel's cached machine code on the source of the file that defines
it, while a kernel that calls kernels of other modules (health.py's, of ranks.py
and track.py) carries its own copy of them: after only those modules changed it
would be loaded stale, and such a mix of old and new code can fail as it loads.  So
the kernels' caches are keyed on the source of the whole ``factors`` package too
(:func:`package_stamp`): any change to it compiles every kernel again, once.

Compiling happens at a kernel's first call, for the types of its arguments: the
callers pass contiguous float64 arrays (one compiled version per kernel), and
:class:`~factorcast.factors.analytics.pipeline.FactorAnalytics` calls every kernel
once when it is built, so that no compile lands inside a live bar.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from numba import njit
from numba.core import caching

F = TypeVar("F", bound=Callable[..., Any])

#: the package whose source keys the kernels' caches
_PACKAGE = Path(__file__).resolve().parent


@functools.cache
def package_stamp() -> str:
    """A digest of every Python source file of the ``factors`` package (names and
    contents), read once per process."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(_PACKAGE).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _package_keyed(base: type[Any]) -> type[Any]:
    """Numba's cache locator ``base``, for the package's functions only, with
    :func:`package_stamp` in the stamp that decides whether a cached kernel is
    current."""

    class PackageKeyed(base):  # type: ignore[misc]
        def get_source_stamp(self) -> Any:
            return (super().get_source_stamp(), package_stamp())

        @classmethod
        def from_function(cls, py_func: Any, py_file: str) -> Any:
            if not Path(py_file).resolve().is_relative_to(_PACKAGE):
                return None
            return super().from_function(py_func, py_file)

    PackageKeyed.__name__ = PackageKeyed.__qualname__ = f"PackageKeyed{base.__name__}"
    return PackageKeyed


def _key_caches_on_the_package() -> None:
    """Put package-keyed versions of numba's locators (the user's cache directory,
    next to the module, the per-user cache) before numba's own."""
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")  # noqa: B009
    classes: list[type[Any]] = impl._locator_classes
    if any(c.__name__.startswith("PackageKeyed") for c in classes):
        return
    names = ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")
    bases = [getattr(caching, n, None) or getattr(caching, f"_{n}") for n in names]
    classes[:0] = [_package_keyed(base) for base in bases]


_key_caches_on_the_package()


def kernel(fn: F) -> F:
    """``fn`` compiled by numba (``njit``), cached on disk, without the GIL."""
    return _compiled(fn, {})


def sum_kernel(fn: F) -> F:
    """:func:`kernel` whose sums the compiler may reorder (LLVM's ``reassoc`` and
    ``contract``): a loop that adds up products is then vectorized, with several
    running sums.  Only the last bits of such a sum change.  NaN and infinities
    keep their meaning (the flags that would let the compiler assume there are none
    are not given)."""
    return _compiled(fn, {"fastmath": {"reassoc", "contract"}})


def _compiled(fn: F, options: dict[str, Any]) -> F:
    try:
        compiled = njit(cache=True, nogil=True, error_model="numpy", **options)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        compiled = njit(nogil=True, error_model="numpy", **options)(fn)
    return cast(F, compiled)
