"""The factor-return track of the health tracker (ANALYTICS.md section 2: over the
finite factor returns of the window, ``prod(1 + f) - 1`` and the maximum drawdown
of section 10) against the definition written plainly with pandas, through block
boundaries of the ring, bars without returns, returns of -100 % and below, and
steps taken back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factorcast.factors.analytics.track import CUM, MDD, ReturnTrack

TOL = 1e-12


def plain(window: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the finite returns in order, wealth from 1, its drawdown."""
    cum, mdd = [], []
    for name in window.columns:
        f = window[name].dropna()
        if f.empty:
            cum.append(np.nan)
            mdd.append(np.nan)
            continue
        wealth = pd.concat([pd.Series([1.0]), (1.0 + f).cumprod()], ignore_index=True)
        cum.append(wealth.iloc[-1] - 1.0)
        mdd.append((wealth / wealth.cummax() - 1.0).min())
    return np.array(cum), np.array(mdd)


@pytest.mark.parametrize("saved", [False, True], ids=["copied", "saved-by-push"])
@pytest.mark.parametrize(("window", "seed"), [(1, 1), (2, 2), (7, 3), (50, 4)])
def test_track_matches_the_definition(window: int, seed: int, saved: bool) -> None:
    """The track against a plain pandas walk at every push, with a step taken back
    now and then: its ring slot copied by the checkpoint, or saved by the push
    (``keep_undo``)."""
    rng = np.random.default_rng(seed)
    k, bars = 4, 400
    f = (
        rng.normal(0.0, 0.05, size=(bars, k))
        + np.where(np.arange(bars) // 60 % 2, 0.01, -0.01)[:, None]
    )
    f[rng.random((bars, k)) < 0.15] = np.nan
    f[rng.random(bars) < 0.05] = np.nan  # bars without any return
    f[rng.random(bars) < 0.02, 0] = -1.0  # wealth to 0
    f[rng.random(bars) < 0.02, 1] = -1.6  # below -100 %: a negative growth factor
    track = ReturnTrack(k, window)
    if saved:
        track.keep_undo(1)
    frame = pd.DataFrame(f)
    for t in range(bars):
        if t % 9 == 4:  # a step taken back and run again
            token = track.checkpoint()
            track.push(rng.normal(size=k))
            track.restore(token)
        row = None if np.isnan(f[t]).all() and t % 2 else f[t]
        state = track.push(row)
        cum, mdd = state[CUM], state[MDD]
        want_cum, want_mdd = plain(frame.iloc[max(0, t - window + 1) : t + 1])
        assert np.allclose(cum, want_cum, rtol=0, atol=TOL, equal_nan=True), t
        assert np.allclose(mdd, want_mdd, rtol=0, atol=TOL, equal_nan=True), t
