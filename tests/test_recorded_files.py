"""The recorded-file rules of the reader: time order, the timeframe a file's name
gives, files without rows, the size limit, and reading large csv files in blocks."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from structlog.testing import capture_logs

from factorcast.adapters.files.candle_files import available_memory, check_size
from factorcast.adapters.files.recorded import (
    MIN_GAPS_JUDGED,
    CandleDataError,
    CandleFileTooLarge,
    SizeLimit,
    load_directory,
)
from factorcast.strategy.candles import Rejection, Spacing, time_spacing, validate_candles
from factorcast.strategy.timeframes import timeframe_ms
from tests.test_recorded import FORMATS, NAN, OHLCV, T0, S, _assert_bars, _write


def _steady(n: int, step: int = S, start: int = T0) -> list[Any]:
    """``n`` good bars ``step`` apart, volumes 0..n-1."""
    return [(start + k * step, 1.0, 2.0, 0.5, 1.5, float(k), None) for k in range(n)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_rows_out_of_time_order_are_sorted_not_rejected(tmp_path: Path, fmt: str) -> None:
    rows = _steady(400)
    _write(tmp_path, "ETH_BTC-5m", rows[::-1], fmt)
    with capture_logs() as logs:
        data = load_directory(tmp_path)
    _assert_bars(data.series["ETH/BTC"], rows)
    assert data.rejected == Counter()
    assert [e["symbol"] for e in logs if e["event"] == "rows_sorted"] == ["ETH/BTC"]


def test_after_sorting_the_first_of_equal_times_in_the_file_is_kept() -> None:
    ts = [T0 + S, T0, T0 + S, T0 + S]
    volume = [1.0, 2.0, 3.0, 4.0]
    close = [NAN, 1.0, 1.0, 1.0]  # the first row at T0 + S is not a bar: the next one is
    one = [1.0] * 4
    series, rejections = validate_candles("X", ts, one, one, one, close, volume, sort=True)
    assert series.ts.tolist() == [T0, T0 + S]
    assert series.volume.tolist() == [2.0, 3.0]
    assert rejections == [  # in file order
        Rejection("X", T0 + S, "nan"),
        Rejection("X", T0 + S, "duplicate_timestamp"),
    ]


@pytest.mark.parametrize("fmt", ["csv", "feather"])
@pytest.mark.parametrize(
    ("tf", "step", "apart"), [("5m", 3_600_000, "1h"), ("1h", S, "5m"), ("1d", 3_600_000, "1h")]
)
def test_a_file_whose_bars_contradict_its_timeframe_is_an_error(
    tmp_path: Path, fmt: str, tf: str, step: int, apart: str
) -> None:
    start = T0 // 86_400_000 * 86_400_000  # on every grid
    _write(tmp_path, f"AAA_BTC-{tf}", _steady(30, timeframe_ms(tf), start), fmt)  # fine
    path = _write(tmp_path, f"ETH_BTC-{tf}", _steady(MIN_GAPS_JUDGED + 1, step, start), fmt)
    with pytest.raises(CandleDataError) as info:
        load_directory(tmp_path)
    assert str(info.value) == f"{path}: its bars are {apart} apart, not {tf} as its name says"


def test_a_few_bars_far_apart_are_not_judged(tmp_path: Path) -> None:
    rows = _steady(MIN_GAPS_JUDGED, 3_600_000)  # one gap short of being judged
    _write(tmp_path, "ETH_BTC-5m", rows, "feather")
    _assert_bars(load_directory(tmp_path).series["ETH/BTC"], rows)


def test_a_file_mostly_one_timeframe_with_gaps_is_that_timeframe(tmp_path: Path) -> None:
    rows = _steady(40)
    sparse = rows[:10] + rows[12:20] + rows[25:30] + rows[31:]  # gaps of 3, 6 and 2 bars
    _write(tmp_path, "ETH_BTC-5m", sparse, "csv")
    _assert_bars(load_directory(tmp_path).series["ETH/BTC"], sparse)


def test_time_spacing() -> None:
    assert time_spacing([], S) == Spacing(True, None, 0)
    assert time_spacing([T0, T0], S) == Spacing(True, None, 0)
    assert time_spacing([T0, T0 + S, T0 + 3 * S], S) == Spacing(True, S, 2)  # a tie: expected
    assert time_spacing([T0 + 2 * S, None, T0, T0 + 4 * S], S) == Spacing(False, 2 * S, 2)
    hours = np.array([T0 + 3_600_000 * k for k in range(5)], dtype="M8[ms]")
    assert time_spacing(hours, S) == Spacing(True, 3_600_000, 4)


def test_a_file_over_the_size_limit_is_refused_before_any_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "AAA_BTC-5m.csv").write_bytes(b"\xff\xfe garbage")  # unreadable, but small
    big = _write(tmp_path, "ETH_BTC-5m", _steady(400), "csv")
    size = big.stat().st_size
    limit = SizeLimit(size - 1, "a share of the memory")
    with pytest.raises(CandleFileTooLarge) as info:
        load_directory(tmp_path, size_limit=limit)
    message = str(info.value)
    assert message.startswith(f"{big} is {size / 1024:.1f} KiB, over the ")
    assert message.endswith(
        f"{(size - 1) / 1024:.1f} KiB limit for a candle file (a share of the memory)"
    )
    check_size(big, SizeLimit(size))  # at the limit is fine
    with pytest.raises(CandleDataError, match="cannot read"):
        load_directory(tmp_path, size_limit=SizeLimit(size))


def test_available_memory_is_positive_and_below_the_machines() -> None:
    available = available_memory()
    assert available is not None
    total = int(Path("/proc/meminfo").read_text().split()[1]) * 1024  # MemTotal, kB
    assert 0 < available <= total


def test_a_csv_over_many_blocks_with_text_in_a_late_one(tmp_path: Path) -> None:
    """pyarrow reads 1 MiB blocks and fixes each column's type from the first: a late
    block with text among the numbers, or a missing time, must still come out right;
    so must a file with more rows than the first block suggests."""
    n = 60_000
    ts = [T0 + k * S for k in range(n)]
    frame = pd.DataFrame({"timestamp": pd.Series(ts, dtype="Int64")})
    for c, price in zip(OHLCV, (1.0, 2.0, 0.5, 1.5), strict=False):
        frame[c] = [price] * n
    frame["volume"] = np.arange(n, dtype=float)
    # long notes in the first rows only: the first block holds few rows
    frame["note"] = ["x" * 400 if k < 3000 else "" for k in range(n)]
    frame.loc[n - 10, "timestamp"] = pd.NA
    path = tmp_path / "ETH_BTC-5m.csv"
    frame.to_csv(path, index=False)
    assert path.stat().st_size > 2 * 2**20
    data = load_directory(tmp_path)
    expected = [t for k, t in enumerate(ts) if k != n - 10]
    assert data.series["ETH/BTC"].ts.tolist() == expected
    assert data.series["ETH/BTC"].volume.tolist() == [float(k) for k in range(n) if k != n - 10]
    assert data.rejected == Counter(nan=1)

    frame = frame.astype({"high": object})
    frame.loc[n - 20, "high"] = "abc"
    frame.to_csv(path, index=False)
    data = load_directory(tmp_path)
    assert len(data.series["ETH/BTC"]) == n - 2
    assert data.rejected == Counter(nan=2)


def test_csv_with_other_columns_and_a_quoted_header(tmp_path: Path) -> None:
    (tmp_path / "ETH_BTC-5m.csv").write_text(
        '"date","open","high","low","close","volume","trades","taker"\n'
        "2018-01-10 04:55:00+00:00,1,2,0.5,1.5,10,7,x\n"
        "2018-01-10 05:00:00+00:00,1,2,0.5,1.5,11,8,y\n"
    )
    assert load_directory(tmp_path).series["ETH/BTC"].ts.tolist() == [T0, T0 + S]


def test_without_copying_the_series_shares_the_input_arrays() -> None:
    ts = np.array([0, S, 2 * S], dtype=np.int64)
    cols = [np.ones(3) for _ in range(5)]
    series, _ = validate_candles("X", ts, *cols, copy=False)
    assert np.shares_memory(series.open, cols[0]) and not cols[0].flags.writeable
    ts = ts.copy()
    series, _ = validate_candles("X", ts, *[np.ones(3) for _ in range(5)])  # copy=True
    assert not np.shares_memory(series.ts, ts) and ts.flags.writeable
