"""Factor health (ANALYTICS.md section 2) against independent recomputations:
scipy's Spearman per factor and bar on the real shared candles, pandas rolling
windows written from the contract, pandas.qcut, and tables of state cases."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from factorcast.adapters.files.recorded import load_directory
from factorcast.adapters.files.replay import Panel
from factorcast.factors import REGISTRY, FactorModel
from factorcast.factors.analytics import (
    AlertKind,
    HealthState,
    HealthTracker,
    average_ranks,
    drawdown_track,
    ic_half_life,
    next_state,
    quintile_labels,
    rank_ic,
    transition_alert,
)
from factorcast.factors.reasons import Reason

TOL = 1e-9
# SIGNALS.md section 2 defaults, in registry order
DIRECTIONS = np.array([1.0, -1.0, 1.0, 1.0, -1.0, 1.0])
U, R, W, F, INV = (
    HealthState.UNKNOWN,
    HealthState.UNRATED,
    HealthState.WORKING,
    HealthState.FLAT,
    HealthState.INVERTED,
)


@dataclass(frozen=True)
class Run:
    ts: np.ndarray
    exposures: np.ndarray  # (T, n, K)
    closes: np.ndarray  # (T, n)


@pytest.fixture(scope="module")
def run(shared_data: Path) -> Run:
    panel = Panel.from_recorded(load_directory(shared_data))
    assert np.all(np.diff(panel.ts) == 300_000)  # a full grid: one update per bar
    model = FactorModel(len(panel.symbols))
    xs = [panel.cross_section(t) for t in range(panel.ts.size)]
    exposures = np.stack(
        [model.update(x.close, x.volume, x.quote_volume, x.present).exposure for x in xs]
    )
    return Run(panel.ts, exposures, panel.fields["close"])


def spearman_oracle(x: np.ndarray, r: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(r)
    if ok.sum() < 3:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(x[ok], r[ok]).statistic)


def oracle_ic(run: Run, h: int, bars: range) -> pd.DataFrame:
    """IC[t, k] by scipy, indexed by the IC's bar t."""
    rows = {}
    for t in bars:
        r = run.closes[t + h] / run.closes[t] - 1
        rows[t] = [
            spearman_oracle(run.exposures[t, :, k], r) for k in range(run.exposures.shape[2])
        ]
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(REGISTRY.names))


def replay(run: Run, **kw: object) -> list:
    tracker = HealthTracker(REGISTRY.names, DIRECTIONS, **kw)  # type: ignore[arg-type]
    return [
        tracker.update(int(run.ts[t]), run.exposures[t], run.closes[t]) for t in range(run.ts.size)
    ]


@pytest.fixture(scope="module")
def snaps(run: Run) -> list:
    return replay(run, horizons=(1, 4))


@pytest.fixture(scope="module")
def ic1(run: Run) -> pd.DataFrame:
    return oracle_ic(run, 1, range(run.ts.size - 1))


def close(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.allclose(a, b, rtol=0, atol=TOL, equal_nan=True))


# ----------------------------------------------------------------------- IC per bar


def test_ic_per_bar_matches_scipy_spearman_on_real_data(
    run: Run, snaps: list, ic1: pd.DataFrame
) -> None:
    for t in ic1.index:
        assert close(snaps[t + 1].stats[1].ic, ic1.loc[t].to_numpy()), t
    ic4 = oracle_ic(run, 4, range(0, run.ts.size - 4, 7))
    for t in ic4.index:
        assert close(snaps[t + 4].stats[4].ic, ic4.loc[t].to_numpy()), t
    assert np.isfinite(ic1.to_numpy()).mean() > 0.9  # the comparison is not over NaNs
    assert all(np.isnan(s.stats[4].ic).all() for s in snaps[:4])


def test_ic_reasons() -> None:
    x = np.array([[1.0, 1.0, np.nan], [2.0, 1.0, 2.0], [3.0, 1.0, np.nan], [4.0, 1.0, 1.0]])
    ic, why, n = rank_ic(x, np.array([0.1, 0.2, 0.3, 0.4]))
    assert ic[0] == pytest.approx(1.0)
    assert np.isnan(ic[1]) and why[1] == Reason.NO_DISPERSION
    assert np.isnan(ic[2]) and why[2] == Reason.TOO_FEW_SYMBOLS
    assert list(n) == [4, 4, 2]
    ic, why, _ = rank_ic(x[:, :1], np.full(4, 0.5))
    assert np.isnan(ic[0]) and why[0] == Reason.NO_DISPERSION


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 12), st.integers(1, 4)),
        elements=st.sampled_from([np.nan, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0]),
    ),
    st.randoms(use_true_random=False),
)
def test_permuting_symbols_changes_no_ic_and_ranks_match_scipy(x: np.ndarray, rnd: object) -> None:
    n = x.shape[0]
    r = np.linspace(-1, 1, n) ** 3
    r[::5] = np.nan
    perm = np.array(rnd.sample(range(n), n))  # type: ignore[attr-defined]
    a = rank_ic(x, r)
    b = rank_ic(x[perm], r[perm])
    assert np.array_equal(a[0], b[0], equal_nan=True) or close(a[0], b[0])
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
    mask = np.isfinite(x)
    ranks = average_ranks(x, mask)
    for k in range(x.shape[1]):
        expect = stats.rankdata(x[mask[:, k], k])
        assert np.array_equal(ranks[mask[:, k], k], expect)


# ----------------------------------------------------------------------- rolling stats


def pandas_stats(
    ic: pd.DataFrame, d: np.ndarray, window: int, min_obs: int
) -> dict[str, pd.DataFrame]:
    """The rolling figures at bar T = t + h, from the IC series indexed by t."""
    roll = ic.rolling(window, min_periods=1)
    n = roll.count()
    mean = roll.mean()
    std = roll.std(ddof=1)
    hits = (np.sign(ic) == d).where(ic.notna()).astype(float).rolling(window, min_periods=1).mean()
    few = n < min_obs
    out = {
        "n": n,
        "mean_ic": mean.mask(few),
        "std_ic": std.mask(few),
        "icir": (mean / std).mask(few),
        "hit_rate": hits.mask(few),
    }
    out["t_stat"] = out["icir"] * np.sqrt(n)
    return out


@pytest.mark.parametrize(("h", "window", "min_obs"), [(1, 200, 30), (4, 50, 10)])
def test_rolling_stats_match_pandas(
    run: Run, snaps: list, ic1: pd.DataFrame, h: int, window: int, min_obs: int
) -> None:
    if h == 1:
        ic = ic1
        got = snaps
    else:  # ICs at h=4 already checked against scipy above
        got = replay(run, horizons=(1, 4), window=window, min_obs=min_obs)
        ic = pd.DataFrame(
            [got[t + h].stats[h].ic for t in range(run.ts.size - h)], columns=list(REGISTRY.names)
        )
    ref = pandas_stats(ic, DIRECTIONS, window, min_obs)
    for t in ic.index:
        s = got[t + h].stats[h]
        assert np.array_equal(s.n, ref["n"].loc[t].to_numpy().astype(int)), t
        for field in ("mean_ic", "std_ic", "icir", "t_stat", "hit_rate"):
            assert close(getattr(s, field), ref[field].loc[t].to_numpy()), (t, field)
        few = s.n < min_obs
        assert np.all(s.reason[few] == Reason.INSUFFICIENT_HISTORY)
    assert (ref["n"].iloc[-1] == window).all()


def test_factor_return_track_matches_plain_recompute() -> None:
    rng = np.random.default_rng(7)
    f = rng.normal(0, 0.02, size=(300, 3))
    f[rng.random(f.shape) < 0.1] = np.nan
    f[:, 2] = np.nan
    f[250, 2] = 0.05
    tracker = HealthTracker(("a", "b", "c"), np.array([1.0, -1.0, 0.0]), window=40, min_obs=5)
    x = np.zeros((4, 3))
    for t in range(f.shape[0]):
        snap = tracker.update(t, x, np.ones(4), f[t])
        for k in range(3):
            w = pd.Series(f[max(0, t - 39) : t + 1, k]).dropna()
            if w.empty:
                assert np.isnan(snap.cum_return[k]) and np.isnan(snap.max_drawdown[k])
                continue
            e = (1 + w).cumprod()
            peak = e.cummax().clip(lower=1.0)
            assert snap.cum_return[k] == pytest.approx(e.iloc[-1] - 1, abs=TOL)
            assert snap.max_drawdown[k] == pytest.approx((e / peak - 1).min(), abs=TOL)
    cum, mdd = drawdown_track(np.array([[-0.1], [0.2]]))
    assert cum[0] == pytest.approx(0.08) and mdd[0] == pytest.approx(-0.1)


def track_oracle(f: np.ndarray, t: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative return and maximum drawdown of each column over bars t-W+1..t, by
    pandas, written from the contract (NaN where the window has no finite return)."""
    cum, mdd = np.full(f.shape[1], np.nan), np.full(f.shape[1], np.nan)
    for k in range(f.shape[1]):
        w = pd.Series(f[max(0, t - window + 1) : t + 1, k]).dropna()
        if not w.empty:
            e = (1 + w).cumprod()
            cum[k] = e.iloc[-1] - 1
            mdd[k] = (e / e.cummax().clip(lower=1.0) - 1).min()
    return cum, mdd


@pytest.mark.parametrize("saved", [False, True], ids=["copied", "saved-by-update"])
def test_factor_return_track_through_gaps_and_undo(saved: bool) -> None:
    """Bars without factor returns (None, or all NaN) for longer than the window,
    and undo at random bars: the track is the plain recomputation at every bar,
    whether a checkpoint copies the ring slots or the updates save them
    (``keep_undo``)."""
    rng = np.random.default_rng(8)
    window, bars = 25, 260
    f = rng.normal(0, 0.03, size=(bars, 3))
    f[rng.random(f.shape) < 0.15] = np.nan
    f[40:80] = np.nan  # a gap longer than the window
    f[120:130] = np.nan
    f[200:, 1] = np.nan  # one factor leaves the regression
    given_none = set(range(45, 70)) | {125}
    tracker = HealthTracker(("a", "b", "c"), np.array([1.0, -1.0, 1.0]), window=window, min_obs=5)
    if saved:
        tracker.keep_undo(3)
    x = np.zeros((4, 3))
    for t in range(bars):
        if rng.random() < 0.2:  # take back 1-3 bars of junk, as a late bar would
            tokens = []
            for j in range(int(rng.integers(1, 4))):
                tokens.append(tracker.checkpoint())
                tracker.update(t + j, x, np.ones(4), rng.normal(0, 0.5, 3))
            for token in reversed(tokens):  # newest first
                tracker.restore(token)
        snap = tracker.update(t, x, np.ones(4), None if t in given_none else f[t])
        cum, mdd = track_oracle(f, t, window)
        assert close(snap.cum_return, cum) and close(snap.max_drawdown, mdd), t


def test_rank_ic_with_clipped_exposures_and_masks_matches_scipy() -> None:
    """Exposures clipped at +-3 (long runs of ties), returns with ties, and a
    different set of missing symbols for some factors (each needs the returns
    ranked over its own symbols): scipy per factor."""
    rng = np.random.default_rng(9)
    n, k = 300, 6
    for _ in range(20):
        x = np.clip(rng.normal(0, 2.0, size=(n, k)), -3, 3)
        x[:, 2] = np.round(x[:, 2])  # seven values only
        x[rng.random(n) < 0.05, 4:] = np.nan  # two factors share a mask
        x[rng.random(n) < 0.1, 1] = np.nan
        x = np.asfortranarray(x)  # as the model stores them: by factor
        r = np.round(rng.normal(0, 0.01, size=n), 3)
        r[rng.random(n) < 0.05] = np.nan
        ic, why, count = rank_ic(x, r)
        expect = [spearman_oracle(x[:, j], r) for j in range(k)]
        assert close(ic, np.array(expect))
        assert (why == 0).all()
        assert list(count) == [int((np.isfinite(x[:, j]) & np.isfinite(r)).sum()) for j in range(k)]


# ----------------------------------------------------------------------- states and alerts

# (state before, t_stat, direction, state after)
STATE_CASES = [
    (U, math.nan, 1, U),
    (W, math.nan, 1, U),
    (U, 3.0, 0, R),
    (U, 2.0, 1, W),
    (U, -2.0, 1, INV),
    (U, 1.9, 1, F),
    (U, 2.0, -1, INV),
    (U, -2.5, -1, W),
    (F, 2.0, 1, W),
    (F, -2.0, 1, INV),
    (F, 1.99, 1, F),
    (W, 1.0, 1, W),
    (W, 0.99, 1, F),
    (W, -1.5, 1, F),
    (W, -2.0, 1, INV),
    (INV, -1.0, 1, INV),
    (INV, -0.5, 1, F),
    (INV, 1.99, 1, F),
    (INV, 2.0, 1, W),
    (INV, 1.0, -1, INV),
    (R, 2.5, 1, W),
]


@pytest.mark.parametrize(("before", "t_stat", "d", "after"), STATE_CASES)
def test_state_machine(before: HealthState, t_stat: float, d: int, after: HealthState) -> None:
    assert next_state(before, t_stat, d) is after


def test_state_thresholds_are_configurable() -> None:
    assert next_state(U, 2.5, 1, t_enter=3.0, t_exit=1.5) is F
    assert next_state(W, 1.4, 1, t_enter=3.0, t_exit=1.5) is F
    assert next_state(W, 1.5, 1, t_enter=3.0, t_exit=1.5) is W


ALERT_CASES = [
    (W, F, AlertKind.FACTOR_DECAY),
    (W, INV, AlertKind.FACTOR_INVERTED),
    (F, INV, AlertKind.FACTOR_INVERTED),
    (U, INV, AlertKind.FACTOR_INVERTED),
    (F, W, AlertKind.FACTOR_RECOVERED),
    (INV, W, AlertKind.FACTOR_RECOVERED),
    (U, W, None),
    (U, F, None),
    (W, U, None),
    (INV, F, None),
    (W, W, None),
    (INV, INV, None),
]


@pytest.mark.parametrize(("before", "after", "kind"), ALERT_CASES)
def test_transition_alerts(before: HealthState, after: HealthState, kind: AlertKind | None) -> None:
    assert transition_alert(before, after) is kind


def test_alerts_on_real_data_follow_the_state_path(run: Run, snaps: list) -> None:
    states = [U] * len(REGISTRY.names)
    seen = 0
    for snap in snaps:
        by_factor = {a.factor: a for a in snap.alerts}
        for j, name in enumerate(REGISTRY.names):
            s = snap.stats[1]
            assert snap.states[j] is next_state(states[j], float(s.t_stat[j]), DIRECTIONS[j])
            kind = transition_alert(states[j], snap.states[j])
            if kind is None:
                assert name not in by_factor
            else:
                a = by_factor[name]
                seen += 1
                assert (a.kind, a.from_state, a.to_state) == (kind, states[j], snap.states[j])
                assert a.id == f"{kind}:{name}:{snap.bar_ts}"
                assert (a.n, a.window, a.horizon) == (int(s.n[j]), 200, 1)
                assert a.t_stat == s.t_stat[j] and a.mean_ic == s.mean_ic[j]
            states[j] = snap.states[j]
    assert seen > 0


# ----------------------------------------------------------------------- offline helpers


@pytest.mark.parametrize("n", range(10, 301))
def test_quintile_labels_match_pandas_qcut(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.integers(0, max(3, n // 4), size=n).astype(float)  # plenty of ties
    expect = pd.qcut(pd.Series(x).rank(method="first"), 5, labels=False).to_numpy()
    assert np.array_equal(quintile_labels(x), expect)


HALF_LIFE_CASES = [
    ([0.10, 0.08, 0.05, 0.01, 0, 0, 0], 1, 4),
    ([0.10, 0.04, 0.05, 0.01, 0, 0, 0], 1, 2),
    ([0.10, 0.10, 0.10, 0.10, 0.1, 0.1, 0.1], 1, None),
    ([-0.10, 0.0, 0, 0, 0, 0, 0], 1, None),
    ([-0.10, -0.06, -0.05, 0, 0, 0, 0], -1, 4),
    ([0.10, 0.0, 0, 0, 0, 0, 0], 0, None),
    ([math.nan, 0.0, 0, 0, 0, 0, 0], 1, None),
]


@pytest.mark.parametrize(("curve", "d", "expect"), HALF_LIFE_CASES)
def test_ic_half_life_rule(curve: list[float], d: int, expect: int | None) -> None:
    assert ic_half_life(np.array(curve)[:, None], np.array([float(d)])) == [expect]


def test_rolling_sums_stay_exact_over_many_windows() -> None:
    rng = np.random.default_rng(11)
    tracker = HealthTracker(("a", "b"), np.array([1.0, -1.0]), window=7, min_obs=3)
    n = 9
    ics = []
    for t in range(500):
        x = rng.normal(size=(n, 2)) * 1e3
        x[rng.random(x.shape) < 0.2] = np.nan
        snap = tracker.update(t, x, np.exp(rng.normal(size=n)))
        ics.append(snap.stats[1].ic)
        window = np.array(ics[-7:])
        ok = np.isfinite(window)
        assert np.array_equal(snap.stats[1].n, ok.sum(axis=0))
        if (ok.sum(axis=0) >= 3).all():
            mean = np.array([window[ok[:, k], k].mean() for k in range(2)])
            assert close(snap.stats[1].mean_ic, mean)


def test_a_window_of_one_repeated_ic_has_no_dispersion() -> None:
    """The running sums leave a few ulps where every IC is the same: no spread, so no
    t-statistic (a huge one would switch the state on rounding noise)."""
    from factorcast.factors.analytics import ic_statistics
    from factorcast.factors.reasons import Reason

    n = np.array([57])
    s1 = np.array([0.1 * 57])
    s2 = np.array([sum(0.1 * 0.1 for _ in range(57))])
    mean, std, icir, t_stat, _, reason = ic_statistics(s1, s2, np.array([57.0]), n, 30)
    assert mean[0] == pytest.approx(0.1)
    assert std[0] == 0.0
    assert np.isnan(icir[0]) and np.isnan(t_stat[0])
    assert reason[0] == Reason.NO_DISPERSION
