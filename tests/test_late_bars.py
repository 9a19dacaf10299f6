"""Late bars taken in by the engine: after the cross-section that carries a late bar,
every step equals, bit for bit, the step of an engine fed the complete candles.

No event loop: cross-sections are built here as the live gate would release them
(a late symbol missing and marked ``late``; a grid time where the only bar is late
not released at all; the late bar carried by a later released cross-section).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from factorcast.factors import CANONICAL, FactorModel, FactorParams, FactorSnapshot, Reason
from factorcast.factors.analytics.params import HealthParams, RiskParams
from factorcast.factors.analytics.pipeline import AnalyticsBar, FactorAnalytics
from factorcast.factors.registry import LIQUIDITY, VOLATILITY
from factorcast.strategy.app.settings import SignalSettings
from factorcast.strategy.engine import Engine, StepResult
from factorcast.strategy.events import AMEND_BARS, CrossSection, LateBar
from factorcast.strategy.strategies import Decision, Trend

TF = 300_000
T0 = 1_600_000_000_000 - 1_600_000_000_000 % TF
K = AMEND_BARS
SMALL = FactorParams(
    beta_window=12,
    beta_min_obs=6,
    size_window=10,
    size_min_obs=5,
    momentum_lag=4,
    value_lag=9,
    volatility_window=6,
    volatility_min_obs=4,
    liquidity_window=6,
    liquidity_min_obs=4,
    weighting="adv",
)
FIELDS = ("open", "high", "low", "close", "volume", "quote_volume")

#: (grid row, symbol) of a late bar -> grid row of the cross-section that brings it
#: (None: it never comes)
Late = dict[tuple[int, int], int | None]


@dataclass(frozen=True)
class Panel:
    ts: NDArray[np.int64]
    fields: dict[str, NDArray[np.float64]]
    present: NDArray[np.bool_]

    @property
    def n(self) -> int:
        return int(self.present.shape[1])

    def without(self, bars: Sequence[tuple[int, int]]) -> Panel:
        present = self.present.copy()
        fields = {k: v.copy() for k, v in self.fields.items()}
        for r, i in bars:
            present[r, i] = False
            for v in fields.values():
                v[r, i] = np.nan
        return Panel(self.ts, fields, present)


def make_panel(
    n: int, rows: int, seed: int, missing: float = 0.05, empty_rows: Sequence[int] = ()
) -> Panel:
    rng = np.random.default_rng(seed)
    returns = rng.standard_t(4, size=(rows, n)) * 0.01 + rng.normal(0, 0.005, (rows, 1))
    close = 10 ** rng.uniform(-2, 2, n) * np.exp(np.cumsum(returns, axis=0))
    open_ = close * np.exp(rng.normal(0, 0.002, (rows, n)))
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    volume = rng.lognormal(4, 1.5, (rows, n))
    volume[rng.uniform(size=(rows, n)) < 0.03] = 0.0
    quote = close * volume * rng.uniform(0.99, 1.01, (rows, n))
    quote[rng.uniform(size=(rows, n)) < 0.3] = np.nan  # a source without quote volume
    present = rng.uniform(size=(rows, n)) >= missing
    present[list(empty_rows)] = False
    fields = {"open": open_, "high": high, "low": low, "close": close}
    fields |= {"volume": volume, "quote_volume": quote}
    for v in fields.values():
        v[~present] = np.nan
    return Panel(T0 + np.arange(rows, dtype=np.int64) * TF, fields, present)


def sections(panel: Panel, late: Late | None = None) -> list[CrossSection]:
    """The cross-sections the live gate releases: late symbols missing and marked,
    a late bar carried by the first released cross-section at or after the row
    that brings it; a grid time without any bar on time is not released (replay
    has no cross-section where no symbol has a bar either)."""
    late = late or {}
    carry: list[LateBar] = []
    out = []
    for r in range(panel.ts.size):
        present = panel.present[r].copy()
        marked = np.zeros(panel.n, dtype=bool)
        for (row, i), at in late.items():
            if row == r:
                present[i] = False
                marked[i] = True
            if at == r:
                values = [float(panel.fields[f][row, i]) for f in FIELDS]
                carry.append(LateBar(int(panel.ts[row]), i, *values))  # type: ignore[arg-type]
        if not present.any():
            continue
        fields = {f: np.where(present, panel.fields[f][r], np.nan) for f in FIELDS}
        out.append(
            CrossSection(
                int(panel.ts[r]),
                **fields,
                present=present,
                late=marked & panel.present[r],
                amendments=tuple(carry),
            )
        )
        carry = []
    return out


class Stateless:
    """A strategy without state across bars (and without snapshot/restore)."""

    name = "stateless"

    def __init__(self, symbols: Sequence[str]) -> None:
        self.calls = 0

    def decide(self, xs: CrossSection, factors: FactorSnapshot) -> Decision:
        self.calls += 1
        e = np.nan_to_num(factors.exposure[:, 3])
        action = np.sign(e).astype(np.int8)
        return Decision(action, np.minimum(np.abs(e), 1.0), ~np.isfinite(factors.exposure[:, 3]))


class Counting(Stateless):
    """Keeps state across bars (a count of bars seen) and cannot be taken back."""

    name = "counting"

    def __init__(self, symbols: Sequence[str]) -> None:
        super().__init__(symbols)
        self.seen = np.zeros(len(symbols))

    def decide(self, xs: CrossSection, factors: FactorSnapshot) -> Decision:
        self.seen += xs.present
        d = super().decide(xs, factors)
        return Decision(d.action, d.confidence * (self.seen % 2), d.insufficient)


def engine(
    n: int, params: FactorParams = SMALL, strategy: type = Trend, amend_bars: int = K
) -> Engine:
    symbols = [f"S{i}/BTC" for i in range(n)]
    s = strategy(symbols, fast=3, slow=7) if strategy is Trend else strategy(symbols)
    view = SignalSettings(factors_can_initiate=True).to_view()
    # short analytics windows, so that health and risk have figures within the panels
    analytics = FactorAnalytics(
        view.names,
        n,
        view.directions,
        weighting=params.weighting,
        health=HealthParams(horizons=(1, 3), window=10, min_obs=3),
        risk=RiskParams(window=12, half_life=4.0, min_obs=3),
    )
    return Engine(
        symbols,
        TF,
        FactorModel(n, params),
        s,
        view,
        clock=lambda: 0.0,
        amend_bars=amend_bars,
        analytics=analytics,
    )


def run(e: Engine, xss: list[CrossSection]) -> dict[int, StepResult]:
    return {xs.ts: e.step(xs) for xs in xss}


def same_bits(a: NDArray[np.generic], b: NDArray[np.generic]) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def assert_same_analytics(a: AnalyticsBar, b: AnalyticsBar) -> None:
    """Factor returns, health and risk equal bit for bit."""
    for f in ("returns", "residuals"):
        assert same_bits(getattr(a.returns, f), getattr(b.returns, f)), (f, a.bar_ts)
    assert (a.returns.n, a.returns.reason) == (b.returns.n, b.returns.reason)
    assert np.array_equal([a.returns.r2], [b.returns.r2], equal_nan=True)
    assert a.health.states == b.health.states, a.bar_ts
    for f in ("cum_return", "max_drawdown"):
        assert same_bits(getattr(a.health, f), getattr(b.health, f)), (f, a.bar_ts)
    assert a.health.stats.keys() == b.health.stats.keys()
    for h, sa in a.health.stats.items():
        sb = b.health.stats[h]
        for f in ("ic", "ic_reason", "n", "mean_ic", "std_ic", "icir", "t_stat", "hit_rate"):
            assert same_bits(getattr(sa, f), getattr(sb, f)), (f, h, a.bar_ts)
    for f in ("covariance", "specific", "fallback", "n_residuals"):
        assert same_bits(getattr(a.risk, f), getattr(b.risk, f)), (f, a.bar_ts)
    assert (a.risk.reason, a.risk.n_obs) == (b.risk.reason, b.risk.n_obs)


def assert_same(a: StepResult, b: StepResult, *, decisions: bool = True) -> None:
    """Exposures, reasons, analytics and signals equal bit for bit."""
    assert a.ts == b.ts
    for f in ("raw", "exposure", "reason", "members"):
        assert same_bits(getattr(a.factors, f), getattr(b.factors, f)), (f, a.ts)
    assert np.array_equal([a.factors.market_return], [b.factors.market_return], equal_nan=True)
    assert a.analytics is not None and b.analytics is not None
    assert_same_analytics(a.analytics, b.analytics)
    if not decisions:
        return
    for f in ("action", "confidence", "insufficient"):
        assert same_bits(getattr(a.decision, f), getattr(b.decision, f)), (f, a.ts)
    for f in a.signals.__dataclass_fields__:
        assert same_bits(getattr(a.signals, f), getattr(b.signals, f)), (f, a.ts)


def check(
    panel: Panel, late: Late, e: Engine | None = None, **kw: object
) -> tuple[dict[int, StepResult], int]:
    """Run ``late`` live and the complete candles.  A late bar rides on the first
    cross-section released at or after the row that brings it; one that would ride
    more than ``K`` bars after its own is dropped, as is one that never comes: the
    complete run takes those as missing.  Every live step with no late bar still to
    come equals the complete run's step; returns the live steps and how many were
    compared."""
    on_time = panel.without(list(late))
    released = [r for r in range(panel.ts.size) if on_time.present[r].any()]
    carrier: dict[tuple[int, int], int | None] = {}
    for (r, i), at in late.items():
        c = None if at is None else next((x for x in released if x >= at), None)
        carrier[(r, i)] = c if c is not None and c - r <= K else None
    never = [bar for bar, c in carrier.items() if c is None]
    truth = run(engine(panel.n, **kw), sections(panel.without(never)))  # type: ignore[arg-type]
    live = run(e or engine(panel.n, **kw), sections(panel, late))  # type: ignore[arg-type]
    waiting = [
        (int(panel.ts[r]), int(panel.ts[r + 1 if c is None else c]))
        for (r, _), c in carrier.items()
    ]
    compared = 0
    for ts, result in live.items():
        if not any(a <= ts < b for a, b in waiting):
            assert_same(result, truth[ts])
            compared += 1
    return live, compared


# -- one late bar -------------------------------------------------------------------


@pytest.mark.parametrize("delay", range(1, K + 1))
def test_a_late_bar_taken_in_makes_every_later_step_exact(delay: int) -> None:
    panel = make_panel(6, 60, seed=delay, missing=0.0)
    live, compared = check(panel, {(30, 2): 30 + delay})
    assert compared == 60 - delay
    ts = int(panel.ts[30])
    assert (live[ts].factors.reason[2] == Reason.LATE).all()  # went out late, stays so
    carrier = live[int(panel.ts[30 + delay])]
    assert [(b.ts, b.symbol) for b in carrier.amended] == [(ts, 2)]


def test_with_the_default_windows_one_late_bar_no_longer_costs_21_bars() -> None:
    """Without the late bar, the symbol's volatility and liquidity are missing for
    21 bars (its own, late, and 20 more: two returns short of ``min_obs``); with it,
    the next cross-section is already exact."""
    panel = make_panel(8, 330, seed=3, missing=0.0)
    row = 300
    defaults = FactorParams()
    dropped = run(engine(8, defaults), sections(panel, {(row, 5): None}))
    cols = [CANONICAL.index(VOLATILITY), CANONICAL.index(LIQUIDITY)]
    short = [
        t
        for t, r in dropped.items()
        if t > panel.ts[row] and (r.factors.reason[5, cols] == Reason.INSUFFICIENT_HISTORY).all()
    ]
    assert short == [int(panel.ts[r]) for r in range(row + 1, row + 21)]
    _, compared = check(panel, {(row, 5): row + 1}, params=defaults)
    assert compared == 329


# -- several late bars ----------------------------------------------------------------


def test_several_symbols_late_at_once_and_at_several_bar_times() -> None:
    panel = make_panel(7, 70, seed=5, missing=0.0)
    late: Late = {(40, 0): 43, (40, 3): 43, (40, 6): 41, (41, 2): 43, (42, 0): 45, (44, 1): 45}
    live, compared = check(panel, late)
    assert compared == 70 - 5
    assert len(live[int(panel.ts[43])].amended) == 3
    assert len(live[int(panel.ts[45])].amended) == 2


def test_a_late_bar_carried_by_a_cross_section_with_late_symbols_of_its_own() -> None:
    panel = make_panel(5, 50, seed=9, missing=0.0)
    assert check(panel, {(20, 1): 22, (22, 4): 24, (22, 1): 25})[1] == 50 - 5


# -- the bound ------------------------------------------------------------------------


def test_a_bar_at_the_bound_is_taken_in() -> None:
    panel = make_panel(6, 60, seed=2, missing=0.0)
    e = engine(6)
    assert check(panel, {(30, 4): 30 + K}, e)[1] == 60 - K
    assert e.stats.amended == 1 and e.stats.too_old == 0


def test_a_bar_beyond_the_bound_is_dropped_and_counted() -> None:
    """It is then as if it never came: equal to the run where it stays missing."""
    panel = make_panel(6, 60, seed=2, missing=0.0)
    never = run(engine(6), sections(panel, {(30, 4): None}))
    e = engine(6)
    live = run(e, sections(panel, {(30, 4): 31 + K}))
    assert e.stats.amended == 0 and e.stats.too_old == 1
    assert live[int(panel.ts[31 + K])].amended == ()
    for ts, result in live.items():
        assert_same(result, never[ts])


def test_without_an_undo_log_late_bars_are_dropped() -> None:
    panel = make_panel(5, 40, seed=4, missing=0.0)
    e = engine(5, amend_bars=0)
    live = run(e, sections(panel, {(20, 1): 21}))
    never = run(engine(5), sections(panel, {(20, 1): None}))
    assert e.stats.too_old == 1
    for ts, result in live.items():
        assert_same(result, never[ts])


# -- empty grid steps ----------------------------------------------------------------


def test_a_late_bar_alone_at_its_grid_time() -> None:
    """No other symbol has a bar there: the live gate released nothing at that time,
    and the late bar gets a cross-section of its own when it is taken in."""
    panel = make_panel(5, 60, seed=6, missing=0.0, empty_rows=[30, 31, 32])
    panel.present[31, 3] = True  # only symbol 3 has a bar at row 31, and it is late
    for f in FIELDS:
        panel.fields[f][31, 3] = panel.fields[f][29, 3] * 1.01
    for delay in (2, 3, K):
        live, compared = check(panel, {(31, 3): 31 + delay})
        assert int(panel.ts[31]) not in live  # nothing went out for it
        assert compared == 57 - len(range(33, 31 + delay))  # exact from its carrier on


def test_a_late_bar_next_to_empty_grid_steps() -> None:
    panel = make_panel(5, 60, seed=7, missing=0.0, empty_rows=[30, 31, 32, 36])
    assert check(panel, {(29, 0): 33, (33, 2): 35, (35, 1): 37})[1] == 56 - 4


def test_a_late_bar_after_a_gap_longer_than_every_window() -> None:
    """Past ``history_bars + 1`` empty grid steps the engine stops stepping the model:
    a late bar near the end of such a gap still lands where replay has it."""
    panel = make_panel(4, 80, seed=8, missing=0.0, empty_rows=range(20, 60))
    panel.present[56, 1] = True
    for f in FIELDS:
        panel.fields[f][56, 1] = panel.fields[f][19, 1]
    assert check(panel, {(56, 1): 61, (60, 2): 62})[1] == 80 - 40 - 2


# -- strategies that cannot be taken back --------------------------------------------


def test_a_stateless_strategy_without_snapshot_is_exact_and_not_run_again() -> None:
    panel = make_panel(5, 50, seed=10, missing=0.0)
    e = engine(5, strategy=Stateless)
    live, _ = check(panel, {(30, 2): 33}, e, strategy=Stateless)
    assert isinstance(e.strategy, Stateless)
    assert e.strategy.calls == len(live)  # the steps taken back were not decided again


def test_a_stateful_strategy_without_snapshot_keeps_what_it_saw() -> None:
    """Its factor exposures are exact; its own state never saw the late bar."""
    panel = make_panel(5, 50, seed=10, missing=0.0)
    truth = run(engine(5, strategy=Counting), sections(panel))
    e = engine(5, strategy=Counting)
    live = run(e, sections(panel, {(30, 2): 33}))
    for ts in panel.ts[33:]:
        assert_same(live[int(ts)], truth[int(ts)], decisions=False)
    assert isinstance(e.strategy, Counting)
    assert e.strategy.seen[2] == panel.present[:, 2].sum() - 1


# -- any pattern ----------------------------------------------------------------------


@st.composite
def late_patterns(draw: st.DrawFn) -> tuple[Panel, Late]:
    n = draw(st.integers(3, 6))
    rows = draw(st.integers(25, 45))
    seed = draw(st.integers(0, 2**32 - 1))
    empty = draw(st.lists(st.integers(1, rows - 1), max_size=4))
    panel = make_panel(n, rows, seed, draw(st.sampled_from([0.0, 0.1])), empty)
    bars = [(r, i) for r in range(rows - 1) for i in range(n) if panel.present[r, i]]
    late: Late = {}
    for r, i in draw(st.lists(st.sampled_from(bars), max_size=8, unique=True)):
        delay = draw(st.one_of(st.integers(1, K + 2), st.none()))
        late[(r, i)] = None if delay is None or r + delay >= rows else r + delay
    return panel, late


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(late_patterns())
def test_any_pattern_of_late_bars(case: tuple[Panel, Late]) -> None:
    panel, late = case
    check(panel, late)


# -- alerts of the grid steps without a cross-section -----------------------------------


def test_alerts_raised_on_empty_grid_steps_come_with_the_next_step() -> None:
    """The engine feeds the analytics every grid step; an alert raised on a grid step
    without any bar goes out with the next cross-section's step, so the steps' alerts
    are every alert of the grid, in time order (compared with the analytics fed each
    grid row directly).  Seeds are tried until one raises an alert on an empty row:
    the test fails if none of them does."""
    for seed in range(40):
        empty_rows = list(range(20, 58, 3))
        panel = make_panel(6, 60, seed=seed, missing=0.0, empty_rows=empty_rows)
        e = engine(6)
        steps = run(e, sections(panel))
        assert e.analytics is not None
        grid = FactorAnalytics(
            e.view.names,
            6,
            e.view.directions,
            weighting=SMALL.weighting,
            health=e.analytics.health_params,
            risk=e.analytics.risk_params,
        )
        model = FactorModel(6, SMALL)
        truth = []
        for r in range(panel.ts.size):
            f = panel.fields
            snap = model.update(
                f["close"][r], f["volume"][r], f["quote_volume"][r], panel.present[r]
            )
            close = np.where(panel.present[r], f["close"][r], np.nan)
            truth.extend(grid.update(int(panel.ts[r]), close, snap.exposure, snap.weights).alerts)
        assert [a for s in steps.values() for a in s.alerts] == truth
        empty_ts = {int(panel.ts[r]) for r in empty_rows}
        if any(a.bar_ts in empty_ts for a in truth):
            return
    pytest.fail("no seed raised an alert on an empty grid step")
