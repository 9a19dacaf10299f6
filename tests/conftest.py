from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "bittrex-5m"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real Bittrex candles beside the repository (CI has them too)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared candle data missing: {SHARED_DATA}")
    return SHARED_DATA
