"""The compiled kernels' disk cache is keyed on the whole ``factors`` package
(factors/jit.py): a kernel that carries copies of other modules' kernels (health.py's
``_ranked_pushes``, of ranks.py and track.py) is compiled again when only those
modules change, instead of being loaded stale (a stale mix of such caches failed as
it loaded: ``NRT_adapt_ndarray_to_python: 'descr' is NULL``).

The real numba cache, in a copy of the package in a temporary directory, run by
fresh interpreters: the first compiles and writes the cache, the second loads it,
then a change to track.py alone must make the third compile health.py's kernel
again, and the fourth load it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from factorcast.factors import jit
from factorcast.factors.analytics import health, ranks

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json
import numpy as np
from factorcast.factors.analytics import health
from factorcast.factors.analytics.health import HealthTracker

rng = np.random.default_rng(0)
tracker = HealthTracker(("a", "b"), np.array([1.0, -1.0]), (1,), window=4, min_obs=2)
close = 100.0 * np.ones(12)
for step in range(3):
    close = close * np.exp(0.01 * rng.normal(size=12))
    tracker.update(step, rng.normal(size=(12, 2)), close, rng.normal(size=2) * 0.01)
stats = health._ranked_pushes.stats
print(json.dumps({"hits": sum(stats.cache_hits.values()),
                  "misses": sum(stats.cache_misses.values())}))
"""


def _run(package_root: Path) -> dict[str, int]:
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    env.pop("NUMBA_CACHE_DIR", None)  # the cache next to the modules, in the copy
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
    )
    counts: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return counts


def test_a_change_to_a_called_module_compiles_the_caller_again(tmp_path: Path) -> None:
    package = tmp_path / "factorcast"
    shutil.copytree(
        ROOT / "factors", package / "factors", ignore=shutil.ignore_patterns("__pycache__")
    )

    assert _run(tmp_path) == {"hits": 0, "misses": 1}  # compiled, and written
    assert _run(tmp_path) == {"hits": 1, "misses": 0}  # loaded
    track = package / "factors" / "analytics" / "track.py"
    track.write_text(track.read_text() + "\n# a change to track.py alone\n")
    assert _run(tmp_path) == {"hits": 0, "misses": 1}  # health.py's kernel compiled again
    assert _run(tmp_path) == {"hits": 1, "misses": 0}


def test_the_kernels_are_cached_with_the_package_stamp() -> None:
    for kernel in (health._ranked_pushes, ranks._rank_ic_keys):
        locator = kernel._cache._impl.locator
        assert type(locator).__name__.startswith("PackageKeyed")
        assert locator.get_source_stamp()[1] == jit.package_stamp()
