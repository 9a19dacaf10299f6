"""No compile lands inside a live bar: the analytics compile (or load from numba's
cache) every kernel they run when they are built, so the engine's steps after it,
with late bars and empty grid steps among them, compile nothing.

numba compiles a kernel again for every new kind of argument, a read-only array
for one (the factor model's exposures are read-only), and that takes seconds
without the cache.  The check runs in a fresh interpreter: in this one, other
tests may have compiled those versions already."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO

SCRIPT = textwrap.dedent(
    """
    import numba

    from factorcast.factors.analytics import (
        factor_returns, health, pipeline, ranks, risk, risk_kernels, track, wls,
    )
    from tests.test_late_bars import engine, make_panel, run, sections

    def versions():
        out = {}
        for mod in (factor_returns, health, pipeline, ranks, risk, risk_kernels, track, wls):
            for name, f in vars(mod).items():
                if isinstance(f, numba.core.registry.CPUDispatcher):
                    out[f"{mod.__name__}.{name}"] = len(f.signatures)
        return out

    e = engine(12)  # the factor model with the analytics, horizons 1 and 3
    built = versions()
    assert built.get("factorcast.factors.analytics.wls.wls_bar") == 1, built  # compiled
    panel = make_panel(12, 80, 3, empty_rows=(20, 21, 22))
    results = run(e, sections(panel, {(40, 2): 42, (41, 5): 44}))
    assert e.stats.amended == 2, e.stats
    after = versions()
    grown = {k: (built[k], v) for k, v in after.items() if v != built[k]}
    print("compiled while stepping:", grown)
    assert not grown
    """
)


def test_no_kernel_compiles_after_the_analytics_are_built() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO,  # where "tests" is a package
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "compiled while stepping: {}" in done.stdout
