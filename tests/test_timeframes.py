"""Timeframe names and lengths, the one parser every part uses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from factorcast.adapters.sim.binance import interval_of
from factorcast.strategy.timeframes import timeframe_ms, timeframe_name


@pytest.mark.parametrize(
    ("name", "ms"),
    [
        ("1s", 1_000),
        ("1m", 60_000),
        ("5m", 300_000),
        ("90m", 5_400_000),
        ("1h", 3_600_000),
        ("4h", 14_400_000),
        ("1d", 86_400_000),
        ("3d", 259_200_000),
        ("1w", 604_800_000),
    ],
)
def test_names_and_lengths(name: str, ms: int) -> None:
    assert timeframe_ms(name) == ms


@pytest.mark.parametrize(("ms", "name"), [(5_400_000, "90m"), (7_200_000, "2h"), (1_000, "1s")])
def test_the_largest_unit_names_a_length(ms: int, name: str) -> None:
    assert timeframe_name(ms) == name


@given(st.integers(1, 10_000), st.sampled_from("smhdw"))
def test_a_name_of_a_length_reads_back_as_that_length(n: int, unit: str) -> None:
    ms = timeframe_ms(f"{n}{unit}")
    assert timeframe_ms(timeframe_name(ms)) == ms


@pytest.mark.parametrize("junk", ["", "5", "m", "0m", "05m", "1M", "1y", "1.5h", " 1m"])
def test_anything_else_is_refused(junk: str) -> None:
    with pytest.raises(ValueError, match="invalid timeframe"):
        timeframe_ms(junk)


@pytest.mark.parametrize("ms", [0, -60_000, 1_500])
def test_no_name_for_a_length_that_is_not_whole_seconds(ms: int) -> None:
    with pytest.raises(ValueError):
        timeframe_name(ms)


def test_binance_names_only_its_own_intervals() -> None:
    assert interval_of(300_000) == "5m"
    assert interval_of(259_200_000) == "3d"
    with pytest.raises(ValueError, match="no Binance kline interval"):
        interval_of(5_400_000)  # 90m: a timeframe, but no Binance interval
