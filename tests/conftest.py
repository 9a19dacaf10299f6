from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "bittrex-5m"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real Bittrex candles beside the repository (CI has them too)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared candle data missing: {SHARED_DATA}")
    return SHARED_DATA


FACTORCAST = [sys.executable, "-m", "factorcast.strategy.app"]


def factorcast(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FACTORCAST_")}
    # each run its own state directory (spool, embedded Redis) and any free metrics port
    full_env["FACTORCAST_STATE_DIR"] = tempfile.mkdtemp(prefix="fc-state-")
    full_env["FACTORCAST_METRICS__PORT"] = "0"
    full_env.update(env or {})
    return subprocess.run(
        [*FACTORCAST, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def replay_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("replay")
    proc = factorcast(
        "replay",
        "--data",
        str(shared_data),
        "--exposures-out",
        str(out / "exposures.csv"),
        "--signals-out",
        str(out / "signals.jsonl"),
    )
    assert proc.returncode == 0, proc.stderr
    signals = [json.loads(line) for line in (out / "signals.jsonl").read_text().splitlines()]
    return {
        "proc": proc,
        "exposures": pd.read_csv(
            out / "exposures.csv", keep_default_na=False, na_values={"raw": [""], "exposure": [""]}
        ),
        "signals": signals,
        "dir": out,
    }
