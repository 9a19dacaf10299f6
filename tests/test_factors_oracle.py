"""Every factor at every bar of the real shared candles against the independent
plain-pandas oracle of FACTORS.md (tests/oracle.py), to 1e-9.

The production model runs through ``factorcast replay`` (the CLI and the engine a
user runs); the oracle recomputes from the same files with window slices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from factorcast.adapters.files.recorded import load_directory
from factorcast.adapters.files.replay import Panel
from factorcast.factors import CANONICAL, FactorModel, FactorParams
from tests.oracle import oracle_exposures

TOL = 1e-9


def long_candles(directory: Path) -> pd.DataFrame:
    candles = load_directory(directory)
    frames = []
    for symbol, s in candles.series.items():
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": s.ts,
                    "symbol": symbol,
                    "open": s.open,
                    "high": s.high,
                    "low": s.low,
                    "close": s.close,
                    "volume": s.volume,
                    "quote_volume": s.quote_volume,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def model_exposures(directory: Path, params: FactorParams, supply: Any = None) -> pd.DataFrame:
    """The production model over the same candles, in the exposure-table layout."""
    panel = Panel.from_recorded(load_directory(directory))
    model = FactorModel(len(panel.symbols), params, supply=supply)
    rows = []
    names = np.array(CANONICAL)
    last = None
    for t in range(panel.ts.size):
        xs = panel.cross_section(t)
        if last is not None:  # grid times without any bar advance the windows too
            for _ in range((xs.ts - last) // 300_000 - 1):
                n = len(panel.symbols)
                model.update(
                    np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, bool)
                )
        last = xs.ts
        snap = model.update(xs.close, xs.volume, xs.quote_volume, xs.present)
        idx = np.flatnonzero(xs.present)
        k = len(CANONICAL)
        rows.append(
            pd.DataFrame(
                {
                    "timestamp": xs.ts,
                    "symbol": np.repeat(np.array(panel.symbols)[idx], k),
                    "factor": np.tile(names, idx.size),
                    "raw": snap.raw[idx].ravel(),
                    "exposure": snap.exposure[idx].ravel(),
                    "reason_code": snap.reason[idx].ravel(),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def compare(ours: pd.DataFrame, oracle: pd.DataFrame) -> None:
    from factorcast.factors import REASON_LABELS

    ours = ours.assign(reason=np.array(REASON_LABELS)[ours.pop("reason_code")])
    key = ["timestamp", "symbol", "factor"]
    merged = ours.merge(oracle, on=key, how="outer", suffixes=("", "_oracle"), indicator=True)
    assert (merged["_merge"] == "both").all(), "row sets differ"
    for col in ("raw", "exposure"):
        a, b = merged[col].to_numpy(), merged[f"{col}_oracle"].to_numpy()
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{col}: NaN pattern")
        ok = ~np.isnan(a)
        err = np.abs(a[ok] - b[ok]) / np.maximum(1.0, np.abs(b[ok]))
        worst = int(np.argmax(err)) if err.size else 0
        assert err.size == 0 or err.max() <= TOL, (
            f"{col} differs by {err.max():.3g} at {merged.loc[ok].iloc[worst][key].to_dict()}"
        )
    mismatch = merged["reason"] != merged["reason_oracle"]
    assert not mismatch.any(), merged.loc[mismatch, [*key, "reason", "reason_oracle"]].head()


@pytest.fixture(scope="module")
def candles(shared_data: Path) -> pd.DataFrame:
    return long_candles(shared_data)


def test_defaults_match_oracle_on_shared_data(shared_data: Path, candles: pd.DataFrame) -> None:
    params = FactorParams()
    ours = model_exposures(shared_data, params)
    oracle = oracle_exposures(candles, params, 300_000)
    assert (oracle["reason"] == "ok").mean() > 0.5  # the comparison covers real numbers
    compare(ours, oracle)


@pytest.mark.parametrize(
    "params",
    [
        FactorParams(weighting="adv"),
        FactorParams(scaling="rank"),
        FactorParams(
            beta_window=60,
            beta_min_obs=30,
            size_window=40,
            size_min_obs=20,
            momentum_lag=12,
            value_lag=48,
            volatility_window=10,
            volatility_min_obs=8,
            liquidity_window=10,
            liquidity_min_obs=8,
            winsor_k=1.5,
            clip=2.0,
        ),
    ],
    ids=["adv", "rank", "short-windows"],
)
def test_variants_match_oracle(
    shared_data: Path, candles: pd.DataFrame, params: FactorParams
) -> None:
    compare(model_exposures(shared_data, params), oracle_exposures(candles, params, 300_000))


def test_cap_weighting_and_supply_match_oracle(shared_data: Path, candles: pd.DataFrame) -> None:
    symbols = sorted(candles["symbol"].unique())
    supply_map = {s: 1e6 * (i + 1) ** 2 for i, s in enumerate(symbols) if i % 3}
    supply = np.array([supply_map.get(s, np.nan) for s in symbols])
    params = FactorParams(weighting="cap")
    ours = model_exposures(shared_data, params, supply=supply)
    compare(ours, oracle_exposures(candles, params, 300_000, supply=supply_map))


def test_replay_cli_output_equals_oracle(replay_run: dict[str, Any], candles: pd.DataFrame) -> None:
    """What `factorcast replay --exposures-out` writes is FACTORS.md."""
    exp = replay_run["exposures"].copy()  # the session's frame is shared: leave it whole
    from factorcast.factors import REASON_LABELS

    codes = {label: i for i, label in enumerate(REASON_LABELS)}
    ours = exp.assign(reason_code=exp.pop("reason").map(codes))
    compare(ours, oracle_exposures(candles, FactorParams(), 300_000))
