"""The recorded-candle reader and the candle rules it applies."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from factorcast.adapters.files.recorded import (
    CandleDataError,
    load_directory,
    symbol_from_filename,
)
from factorcast.strategy.candles import (
    REJECT_REASONS,
    CandleSeries,
    Rejection,
    validate_candles,
)
from factorcast.strategy.timeframes import timeframe_ms

S = 300_000  # 5m in ms
T0 = 1_515_560_100_000  # 2018-01-10 04:55 UTC, on the 5m grid
NAN = math.nan
FORMATS = ("feather", "parquet", "csv", "json")

# (ts, open, high, low, close, volume, expected reason or None for a bar that survives).
# Volumes are distinct so that each surviving bar identifies its row.
ROWS: list[tuple[int | None, float, float, float, float, float, str | None]] = [
    (T0, 1.0, 2.0, 0.5, 1.5, 10.0, None),
    (T0 + S, 1.5, 2.5, 1.0, 2.0, 11.0, None),
    (T0 + 2 * S, 1.0, 2.0, 0.5, NAN, 12.0, "nan"),
    (None, 1.0, 2.0, 0.5, 1.5, 13.0, "nan"),
    (T0 + 2 * S, 1.0, 2.0, 0.5, 1.5, math.inf, "nan"),
    (T0 + 2 * S, 0.0, 2.0, 0.5, 1.5, 14.0, "non_positive_price"),
    (T0 + 2 * S, 1.0, 2.0, -0.5, 1.5, 15.0, "non_positive_price"),
    (T0 + 2 * S, 1.0, 2.0, 0.5, 1.5, -1.0, "negative_volume"),
    (T0 + 2 * S, 1.0, 0.4, 0.5, 0.45, 16.0, "high_below_low"),
    (T0 + 2 * S + 60_000, 1.0, 2.0, 0.5, 1.5, 17.0, "off_grid"),
    (T0 + 2 * S, 2.0, 3.0, 1.5, 2.5, 18.0, None),
    (T0 + 2 * S, 9.0, 9.0, 9.0, 9.0, 19.0, "duplicate_timestamp"),
    (T0 + S, 9.0, 9.0, 9.0, 9.0, 20.0, "duplicate_timestamp"),  # also lower: duplicate wins
    (T0 - S, 1.0, 2.0, 0.5, 1.5, 21.0, "out_of_order"),
    (T0 + 4 * S, 3.0, 3.5, 2.5, 3.0, 0.0, None),  # a gap of one bar: never filled
    (T0 + 3 * S, 1.0, 2.0, 0.5, 1.5, 22.0, "out_of_order"),  # inside the gap, but late
]
GOOD = [r for r in ROWS if r[6] is None]
EXPECTED = Counter(r[6] for r in ROWS if r[6] is not None)
# A recorded file's rows are sorted by time first: there, the two rows that arrive
# out of order become bars (the one below every other opens the series).
FILE_GOOD = sorted((r for r in ROWS if r[6] in (None, "out_of_order")), key=lambda r: r[0])
FILE_EXPECTED = Counter(r[6] for r in ROWS if r[6] not in (None, "out_of_order"))
OHLCV = ("open", "high", "low", "close", "volume")


def _frame(rows: list[Any], ts: str = "datetime") -> pd.DataFrame:
    stamps = [r[0] for r in rows]
    frame = pd.DataFrame({c: [float(r[i + 1]) for r in rows] for i, c in enumerate(OHLCV)})
    if ts == "datetime":
        frame.insert(0, "date", pd.to_datetime(stamps, unit="ms", utc=True))
    else:  # int ms; nullable so that a missing ts can be written
        frame.insert(0, ts, pd.Series(stamps, dtype="Int64"))
    return frame


def _write(directory: Path, name: str, rows: list[Any], fmt: str, ts: str = "datetime") -> Path:
    path = directory / f"{name}.{fmt}"
    if fmt == "json":  # freqtrade's layout: [[ts_ms, o, h, l, c, v], ...]; null for missing
        data = [
            [None if isinstance(v, float) and math.isnan(v) else v for v in r[:6]] for r in rows
        ]
        path.write_text(json.dumps(data))
        return path
    frame = _frame(rows, ts)
    if fmt == "feather":
        frame.to_feather(path)
    elif fmt == "parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


def _assert_bars(series: CandleSeries, rows: list[Any]) -> None:
    assert series.ts.dtype == np.int64
    assert series.ts.tolist() == [r[0] for r in rows]
    for i, name in enumerate(OHLCV):
        assert getattr(series, name).tolist() == [r[i + 1] for r in rows], name


# --- each kind of bad candle, in every format ---------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_candles_are_rejected_counted_and_logged(tmp_path: Path, fmt: str) -> None:
    _write(tmp_path, "ETH_BTC-5m", ROWS, fmt)
    with capture_logs() as logs:
        data = load_directory(tmp_path)

    assert data.timeframe == "5m"
    assert data.timeframe_ms == S
    assert list(data.series) == ["ETH/BTC"]
    _assert_bars(data.series["ETH/BTC"], FILE_GOOD)
    assert np.isnan(data.series["ETH/BTC"].quote_volume).all()  # no quote volume recorded
    assert data.rejected == FILE_EXPECTED
    # the rows cover every rule but the live one, out_of_order
    assert set(data.rejected) == set(REJECT_REASONS) - {"out_of_order"}

    events = [e for e in logs if e["event"] == "bar_rejected"]
    assert [(e["symbol"], e["ts"], e["reason"]) for e in events] == [
        ("ETH/BTC", r[0], r[6]) for r in ROWS if r[6] in FILE_EXPECTED
    ]
    assert all(e["log_level"] == "warning" for e in events)
    assert [e["file"] for e in logs if e["event"] == "rows_sorted"] == [
        str(tmp_path / f"ETH_BTC-5m.{fmt}")
    ]


def test_the_live_rule_keeps_input_order() -> None:
    cols = [[r[i] for r in ROWS] for i in range(6)]
    series, rejections = validate_candles("X", *cols, timeframe_ms=S)
    _assert_bars(series, GOOD)
    assert [r.reason for r in rejections] == [r[6] for r in ROWS if r[6] is not None]


@pytest.mark.parametrize("fmt", ["feather", "parquet", "csv"])
@pytest.mark.parametrize("ts", ["date", "timestamp"])
def test_integer_ms_time_columns(tmp_path: Path, fmt: str, ts: str) -> None:
    _write(tmp_path, "ETH_BTC-5m", ROWS, fmt, ts=ts)
    data = load_directory(tmp_path)
    _assert_bars(data.series["ETH/BTC"], FILE_GOOD)
    assert data.rejected == FILE_EXPECTED


def test_csv_iso_dates_with_offsets_naive_and_junk(tmp_path: Path) -> None:
    (tmp_path / "ETH_BTC-5m.csv").write_text(
        "date,open,high,low,close,volume,quote_volume\n"
        "2018-01-10T04:55:00Z,1,2,0.5,1.5,10,15\n"
        "2018-01-10 06:00:00+01:00,1,2,0.5,1.5,11,\n"  # 05:00 UTC; no quote volume
        "2018-01-10 05:05:00,1,2,0.5,1.5,12,18\n"  # naive: taken as UTC
        "not a date,1,2,0.5,1.5,13,19\n"
        "2018-01-10 05:10:00.0005,1,2,0.5,1.5,14,21\n"  # half a millisecond: off every grid
        "2018-01-10 05:15:00,1,abc,0.5,1.5,15,22\n"
        "2018-01-10 05:20:00,1,2,0.5,1.5,16,-1\n"
    )
    with capture_logs() as logs:
        data = load_directory(tmp_path)
    s = data.series["ETH/BTC"]
    assert s.ts.tolist() == [T0, T0 + S, T0 + 2 * S]
    assert s.volume.tolist() == [10.0, 11.0, 12.0]
    np.testing.assert_array_equal(s.quote_volume, [15.0, NAN, 18.0])
    assert data.rejected == Counter(nan=2, off_grid=1, negative_volume=1)
    assert [(e["ts"], e["reason"]) for e in logs if e["event"] == "bar_rejected"] == [
        (None, "nan"),
        (T0 + 3 * S, "off_grid"),
        (T0 + 4 * S, "nan"),
        (T0 + 5 * S, "negative_volume"),
    ]


def test_datetimes_in_another_zone_or_naive_are_utc(tmp_path: Path) -> None:
    frame = _frame(GOOD)
    frame["date"] = frame["date"].dt.tz_convert("Asia/Tokyo")
    frame.to_parquet(tmp_path / "ETH_BTC-5m.parquet")
    frame["date"] = frame["date"].dt.tz_convert("UTC").dt.tz_localize(None).astype("M8[ms]")
    frame.to_feather(tmp_path / "LTC_BTC-5m.feather")
    data = load_directory(tmp_path)
    _assert_bars(data.series["ETH/BTC"], GOOD)
    _assert_bars(data.series["LTC/BTC"], GOOD)


def test_json_rows_that_are_not_candles_are_rejected_not_dropped(tmp_path: Path) -> None:
    rows = [[T0, 1, 2, 0.5, 1.5, 10], [T0 + S, 1, 2], "junk", [T0 + S, "1", 2, 0.5, 1.5, 3]]
    rows.append([T0 + 2 * S, 1, 2, 0.5, 1.5, 11, "extra fields are ignored"])
    (tmp_path / "ETH_BTC-5m.json").write_text(json.dumps(rows))
    data = load_directory(tmp_path)
    assert data.series["ETH/BTC"].ts.tolist() == [T0, T0 + 2 * S]
    assert data.rejected == Counter(nan=3)


def test_quote_volume_is_kept_and_checked(tmp_path: Path) -> None:
    frame = _frame(GOOD)
    frame["quote_volume"] = [100.0, NAN, -5.0, math.inf]
    frame.to_feather(tmp_path / "ETH_BTC-5m.feather")
    data = load_directory(tmp_path)
    s = data.series["ETH/BTC"]
    assert s.ts.tolist() == [GOOD[0][0], GOOD[1][0]]
    np.testing.assert_array_equal(s.quote_volume, [100.0, NAN])
    assert data.rejected == Counter(negative_volume=1, nan=1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_without_rows_is_a_warning_and_the_others_are_read(tmp_path: Path, fmt: str) -> None:
    _write(tmp_path, "ETH_BTC-5m", GOOD, "feather")
    empty = _write(tmp_path, "LTC_BTC-5m", [], fmt)  # a header (a schema) and no rows
    (tmp_path / "XRP_BTC-5m.csv").write_text("")  # not even a header
    with capture_logs() as logs:
        data = load_directory(tmp_path)
    assert list(data.series) == ["ETH/BTC"]
    _assert_bars(data.series["ETH/BTC"], GOOD)
    skipped = [e for e in logs if e["event"] == "file_skipped"]
    assert [(e["file"], e["reason"], e["log_level"]) for e in skipped] == [
        (str(empty), "no_rows", "warning"),
        (str(tmp_path / "XRP_BTC-5m.csv"), "no_rows", "warning"),
    ]


def test_only_files_without_rows_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "ETH_BTC-5m.json").write_text("[]")
    (tmp_path / "LTC_BTC-5m.csv").write_text("date,open,high,low,close,volume\n")
    with pytest.raises(CandleDataError, match=r"no candles in .*: every 5m file is empty"):
        load_directory(tmp_path)


# --- symbol naming --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stem", "symbol"),
    [
        ("ETH_BTC", "ETH/BTC"),
        ("BTC_USDT_USDT", "BTC/USDT:USDT"),
        ("1000SHIB_USDT", "1000SHIB/USDT"),
        ("BTC-PERP", "BTC-PERP"),
    ],
)
def test_symbol_from_filename(stem: str, symbol: str) -> None:
    assert symbol_from_filename(stem) == symbol


def test_directory_symbols_spot_and_futures_and_skipped_files(tmp_path: Path) -> None:
    _write(tmp_path, "ETH_BTC-5m", GOOD, "feather")
    _write(tmp_path, "BTC_USDT_USDT-5m-futures", GOOD, "parquet")
    _write(tmp_path, "BTC-PERP-5m", GOOD, "csv")
    _write(tmp_path, "BTC_USDT_USDT-5m-mark", ROWS, "feather")  # not candles of the contract
    _write(tmp_path, "BTC_USDT_USDT-8h-funding_rate", ROWS, "feather")  # nor a timeframe
    _write(tmp_path, "ETH_BTC-trades", ROWS, "feather")
    (tmp_path / "ETH_BTC-5m.feather.bak").write_text("not read")
    (tmp_path / "notes.txt").write_text("not read")
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub", "XRP_BTC-5m", GOOD, "feather")

    with capture_logs() as logs:
        data = load_directory(str(tmp_path))
    assert list(data.series) == ["BTC-PERP", "BTC/USDT:USDT", "ETH/BTC"]
    for series in data.series.values():
        _assert_bars(series, GOOD)
    assert data.rejected == Counter()
    skipped = {Path(e["file"]).name for e in logs if e["event"] == "file_skipped"}
    assert skipped == {
        "BTC_USDT_USDT-5m-mark.feather",
        "BTC_USDT_USDT-8h-funding_rate.feather",
        "ETH_BTC-trades.feather",
    }


# --- timeframes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tf", "ms"),
    [
        ("1s", 1_000),
        ("1m", 60_000),
        ("5m", 300_000),
        ("15m", 900_000),
        ("1h", 3_600_000),
        ("4h", 14_400_000),
        ("1d", 86_400_000),
        ("3d", 259_200_000),
        ("1w", 604_800_000),
    ],
)
def test_timeframe_ms(tf: str, ms: int) -> None:
    assert timeframe_ms(tf) == ms


@pytest.mark.parametrize(
    "junk", ["", "5", "m", "0m", "05m", "-1m", "1.5h", "5min", " 5m", "1M", "1y"]
)
def test_timeframe_ms_rejects_junk(junk: str) -> None:
    with pytest.raises(ValueError, match="invalid timeframe"):
        timeframe_ms(junk)


def test_several_timeframes_need_a_choice(tmp_path: Path) -> None:
    _write(tmp_path, "ETH_BTC-5m", GOOD, "feather")
    hourly = [(T0 + S + 3_600_000 * k, *r[1:]) for k, r in enumerate(GOOD)]  # from 05:00
    _write(tmp_path, "ETH_BTC-1h", hourly, "csv")
    _write(tmp_path, "LTC_BTC-1h", [], "json")
    with pytest.raises(CandleDataError, match=r"several timeframes \(5m, 1h\)"):
        load_directory(tmp_path)

    five = load_directory(tmp_path, "5m")
    assert (five.timeframe, five.timeframe_ms, list(five.series)) == ("5m", S, ["ETH/BTC"])
    hour = load_directory(tmp_path, timeframe="1h")
    assert (hour.timeframe, hour.timeframe_ms) == ("1h", 3_600_000)
    assert list(hour.series) == ["ETH/BTC"]  # LTC/BTC's file has no rows
    _assert_bars(hour.series["ETH/BTC"], hourly)
    assert hour.rejected == Counter()

    with pytest.raises(CandleDataError, match=r"no 15m candle files .* holds 5m, 1h"):
        load_directory(tmp_path, "15m")
    with pytest.raises(CandleDataError, match="invalid timeframe '5 m'"):
        load_directory(tmp_path, "5 m")


def test_bars_off_the_timeframe_grid_are_rejected(tmp_path: Path) -> None:
    # 04:55, 05:00, 05:05 and 05:15 UTC: 05:00 and 05:15 are on the 15m grid.
    _write(tmp_path, "ETH_BTC-15m", GOOD, "feather")
    data = load_directory(tmp_path)
    assert data.series["ETH/BTC"].ts.tolist() == [T0 + S, T0 + 4 * S]
    assert data.rejected == Counter(off_grid=2)


def test_weekly_bars_open_on_mondays() -> None:
    week = timeframe_ms("1w")
    monday = int(pd.Timestamp("2024-01-01", tz="UTC").value // 1_000_000)
    thursday = int(pd.Timestamp("2024-01-04", tz="UTC").value // 1_000_000)
    assert thursday % week == 0  # the epoch was a Thursday
    one = np.ones(3)
    series, rejections = validate_candles(
        "X", [monday, monday + week, thursday + week], one, one, one, one, one, timeframe_ms=week
    )
    assert series.ts.tolist() == [monday, monday + week]
    assert rejections == [Rejection("X", thursday + week, "off_grid")]


# --- errors ---------------------------------------------------------------------------------


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(CandleDataError, match="does not exist"):
        load_directory(tmp_path / "nope")
    (tmp_path / "file").write_text("")
    with pytest.raises(CandleDataError, match="is not a directory"):
        load_directory(tmp_path / "file")


def test_no_candle_files(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("")
    _write(tmp_path, "ETH_BTC-5m-mark", GOOD, "feather")
    (tmp_path / "futures").mkdir()
    with pytest.raises(CandleDataError, match=r"no candle files .* futures"):
        load_directory(tmp_path)


def test_same_symbol_in_two_formats(tmp_path: Path) -> None:
    _write(tmp_path, "ETH_BTC-5m", GOOD, "feather")
    _write(tmp_path, "ETH_BTC-5m", GOOD, "json")
    with pytest.raises(CandleDataError, match=r"two files for ETH/BTC 5m.*ETH_BTC-5m\.feather"):
        load_directory(tmp_path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_unreadable_file(tmp_path: Path, fmt: str) -> None:
    (tmp_path / f"ETH_BTC-5m.{fmt}").write_bytes(b'\xff\xfe\x00garbage\x00\n\x01,"')
    with pytest.raises(CandleDataError, match=rf"cannot read .*ETH_BTC-5m\.{fmt}"):
        load_directory(tmp_path)


def test_json_that_is_not_a_list_of_rows(tmp_path: Path) -> None:
    (tmp_path / "ETH_BTC-5m.json").write_text(json.dumps([{"date": T0, "open": 1}]))
    with pytest.raises(CandleDataError, match=r"ETH_BTC-5m\.json: expected a json list"):
        load_directory(tmp_path)


@pytest.mark.parametrize("fmt", ["feather", "parquet", "csv"])
def test_missing_columns(tmp_path: Path, fmt: str) -> None:
    frame = _frame(GOOD).drop(columns=["date", "low"])
    path = tmp_path / f"ETH_BTC-5m.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        getattr(frame, f"to_{fmt}")(path)
    with pytest.raises(CandleDataError, match=r"missing column\(s\) date \(or timestamp\), low"):
        load_directory(tmp_path)


# --- the shared recorded data ---------------------------------------------------------------

SHARED_BARS = {
    "ADA/BTC": 5720,
    "DASH/BTC": 5758,
    "ETC/BTC": 5759,
    "ETH/BTC": 5760,
    "LTC/BTC": 5760,
    "NXT/BTC": 5760,
    "TRX/BTC": 5754,
    "XLM/BTC": 5760,
    "XMR/BTC": 5758,
    "ZEC/BTC": 5757,
}


def test_shared_bittrex_5m(shared_data: Path) -> None:
    """The real candles beside the repository (the fixture fails if they are missing)."""
    with capture_logs() as logs:
        data = load_directory(shared_data)
    assert (data.timeframe, data.timeframe_ms) == ("5m", S)
    assert {k: len(v) for k, v in data.series.items()} == SHARED_BARS
    assert list(data.series) == sorted(SHARED_BARS)
    assert data.rejected == Counter()
    assert not [e for e in logs if e["event"] == "bar_rejected"]
    for s in data.series.values():
        assert (np.diff(s.ts) > 0).all()
        assert (s.ts % S == 0).all()
        assert s.ts[0] == T0  # 2018-01-10 04:55 UTC
        assert np.isfinite(np.stack([s.open, s.high, s.low, s.close, s.volume])).all()
        assert np.isnan(s.quote_volume).all()


# --- validate_candles directly --------------------------------------------------------------


def test_series_is_read_only_and_checked() -> None:
    one = np.ones(2)
    series, _ = validate_candles("X", [0, S], one, one, one, one, one)
    with pytest.raises(ValueError, match="read-only"):
        series.close[0] = 2.0
    with pytest.raises(ValueError, match="strictly increasing"):
        CandleSeries("X", np.array([S, 0]), one, one, one, one, one, one)
    with pytest.raises(ValueError, match="shape"):
        validate_candles("X", [0, S], one, one, one, one, np.ones(3))


def test_none_and_sub_millisecond_times() -> None:
    stamps = np.array(["1970-01-01T00:05", "NaT", "1970-01-01T00:10:00.000001"], dtype="M8[ns]")
    one = [1.0, None, 1.0]
    series, rejections = validate_candles("X", stamps, [1.0] * 3, one, one, one, one)
    assert series.ts.tolist() == [S]
    assert rejections == [Rejection("X", None, "nan"), Rejection("X", 2 * S, "off_grid")]
    series, rejections = validate_candles("X", [S, None, 2 * S + 0.5], *[[1.0] * 3] * 5)
    assert series.ts.tolist() == [S]
    assert rejections == [Rejection("X", None, "nan"), Rejection("X", 2 * S, "off_grid")]


_BAD_VALUES: dict[str, dict[str, float]] = {
    "nan": {"close": NAN},
    "non_positive_price": {"low": 0.0},
    "negative_volume": {"volume": -1.0},
    "high_below_low": {"high": 0.5, "low": 0.6},
}


def _oracle(rows: list[tuple[int, dict[str, float]]]) -> tuple[list[int], list[str]]:
    """Plain sequential recomputation: which rows survive, and each other row's reason."""
    kept: list[int] = []
    reasons: list[str] = []
    for i, (t, v) in enumerate(rows):
        if not all(math.isfinite(x) for x in v.values()):
            reasons.append("nan")
        elif min(v["open"], v["high"], v["low"], v["close"]) <= 0:
            reasons.append("non_positive_price")
        elif v["volume"] < 0:
            reasons.append("negative_volume")
        elif v["high"] < v["low"]:
            reasons.append("high_below_low")
        elif t % S:
            reasons.append("off_grid")
        elif kept and t in {rows[k][0] for k in kept}:
            reasons.append("duplicate_timestamp")
        elif kept and t < rows[kept[-1]][0]:
            reasons.append("out_of_order")
        else:
            kept.append(i)
    return kept, reasons


_row = st.tuples(
    st.integers(0, 12).map(lambda k: T0 + k * S) | st.integers(T0, T0 + 12 * S),
    st.sampled_from([None, *_BAD_VALUES]),
    st.floats(0.01, 100.0),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_row, max_size=60))
def test_property_output_is_the_good_rows_strictly_increasing(
    drawn: list[tuple[int, str | None, float]],
) -> None:
    rows = []
    for t, bad, price in drawn:
        v = {"open": price, "high": price * 1.1, "low": price * 0.9, "close": price}
        v["volume"] = price  # distinct enough to tell rows apart
        v.update(_BAD_VALUES.get(bad or "", {}))
        rows.append((t, v))
    cols = [[v[c] for _, v in rows] for c in OHLCV]
    series, rejections = validate_candles(
        "X", np.array([t for t, _ in rows], dtype=np.int64), *cols, timeframe_ms=S
    )

    kept, reasons = _oracle(rows)
    assert len(series) + len(rejections) == len(rows)
    assert bool(np.all(np.diff(series.ts) > 0))
    assert series.ts.tolist() == [rows[i][0] for i in kept]
    for name in OHLCV:
        assert getattr(series, name).tolist() == [rows[i][1][name] for i in kept]
    assert [r.reason for r in rejections] == reasons
    assert set(reasons) <= set(REJECT_REASONS)
    rejected_ts = [t for i, (t, _) in enumerate(rows) if i not in set(kept)]
    assert [r.ts for r in rejections] == rejected_ts

    # sorted: the same as the rows in time order (stable), with rejections in file order
    series, rejections = validate_candles(
        "X", np.array([t for t, _ in rows], dtype=np.int64), *cols, timeframe_ms=S, sort=True
    )
    order = sorted(range(len(rows)), key=lambda i: rows[i][0])
    kept, reasons = _oracle([rows[i] for i in order])
    assert series.ts.tolist() == [rows[order[i]][0] for i in kept]
    assert series.volume.tolist() == [rows[order[i]][1]["volume"] for i in kept]
    by_row = dict(
        zip((order[i] for i in range(len(rows)) if i not in set(kept)), reasons, strict=True)
    )
    assert [r.reason for r in rejections] == [by_row[i] for i in sorted(by_row)]
    assert "out_of_order" not in by_row.values()
