"""The live integrity gate: what gets through, what is counted, when a cross-section goes out."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

from factorcast.strategy.candles import validate_candles
from factorcast.strategy.events import LateBar
from factorcast.strategy.gate import (
    ACCEPTED,
    CONFLICT,
    DUPLICATE,
    TOO_LATE,
    TOO_LATE_TO_AMEND,
    CandleGate,
    Gap,
    row_problem,
)

TF = 60_000


def bar(price: float = 10.0, volume: float = 1.0) -> list[float]:
    return [price, price * 1.01, price * 0.99, price, volume]


def test_released_only_when_every_symbol_has_closed() -> None:
    gate = CandleGate(["A", "B", "C"], TF)
    gate.offer(0, 0, bar(1))
    gate.offer(1, 0, bar(2))
    assert gate.release() == []
    assert gate.pending_symbols() == [2]
    gate.offer(2, 0, bar(3))
    (xs,) = gate.release()
    assert xs.ts == 0 and xs.present.all()
    np.testing.assert_array_equal(xs.close, [1, 2, 3])
    assert not xs.late.any()


def test_a_symbol_that_moved_past_t_without_a_bar_is_missing_not_late() -> None:
    gate = CandleGate(["A", "B"], TF)
    gate.start(0)
    gate.offer(0, 0, bar())
    gate.offer(1, 0, bar())
    gate.release()
    gate.offer(0, TF, bar())
    outcome, gap = gate.offer(1, 2 * TF, bar())  # B skipped TF: a gap to backfill
    assert outcome == ACCEPTED and gap == Gap(1, TF, TF)
    assert gate.release() == []  # waits for the backfill
    gate.backfilled(1, [])  # the exchange has no bar there
    (xs,) = gate.release()
    assert xs.ts == TF and xs.present.tolist() == [True, False] and not xs.late.any()


def test_a_symbol_outside_the_universe_is_never_waited_for_nor_late() -> None:
    gate = CandleGate(["A", "B", "C"], TF)
    gate.start(0)
    gate.set_member(2, False)  # not listed, delisted, or silent for too long
    gate.offer(0, 0, bar())
    gate.offer(1, 0, bar())
    (xs,) = gate.release()
    assert xs.present.tolist() == [True, True, False] and not xs.late.any()
    assert gate.pending_symbols() == [0, 1]
    gate.offer(0, TF, bar())
    gate.offer(2, TF, bar(3))  # a bar of it that comes is still taken
    (xs,) = gate.release(deadline_passed=True)
    assert xs.present.tolist() == [True, False, True] and xs.late.tolist() == [False, True, False]
    assert gate.stats.late == 1


def test_a_symbol_joins_from_a_bar_on() -> None:
    gate = CandleGate(["A", "B"], TF)
    gate.start(0)
    gate.set_member(1, False)
    for t in range(3):
        gate.offer(0, t * TF, bar())
    assert [xs.ts for xs in gate.release()] == [0, TF, 2 * TF]
    gate.set_member(1, True, since=3 * TF)  # listed as bar 3 opens: nothing of it before
    gate.offer(0, 3 * TF, bar())
    assert gate.release() == [] and gate.pending_symbols() == [1]
    gate.offer(1, 3 * TF, bar())
    (xs,) = gate.release()
    assert xs.ts == 3 * TF and xs.present.all()
    gate.set_member(1, True, since=0)  # joining again changes nothing it already has
    assert gate.last_ts(1) == 3 * TF


def test_mark_absent_settles_a_member_up_to_a_bar() -> None:
    gate = CandleGate(["A", "B"], TF)
    gate.start(0)
    gate.offer(0, 0, bar())
    gate.offer(0, TF, bar())
    gate.mark_absent(1, TF)  # the exchange has no bar of B at 0 and TF
    assert [xs.ts for xs in gate.release()] == [0, TF]


def test_gap_backfill_fills_the_cross_sections_in_order() -> None:
    gate = CandleGate(["A", "B"], TF)
    gate.start(0)
    for t in range(5):
        gate.offer(0, t * TF, bar(10 + t))
    gate.offer(1, 0, bar(20))
    _, gap = gate.offer(1, 4 * TF, bar(24))
    assert gap == Gap(1, TF, 3 * TF)
    assert [xs.ts for xs in gate.release()] == [0]
    gate.backfilled(1, [[t * TF, *bar(20 + t)] for t in (1, 2, 3)])
    out = gate.release()
    assert [xs.ts for xs in out] == [TF, 2 * TF, 3 * TF, 4 * TF]
    assert all(xs.present.all() for xs in out)
    assert [xs.close[1] for xs in out] == [21, 22, 23, 24]
    assert gate.stats.backfilled_bars == 3 and gate.stats.gaps == 1


def test_duplicates_conflicts_and_out_of_order() -> None:
    gate = CandleGate(["A"], TF)
    assert gate.offer(0, TF, bar(5))[0] == ACCEPTED
    assert gate.offer(0, TF, bar(5))[0] == DUPLICATE
    assert gate.offer(0, TF, bar(6))[0] == CONFLICT
    assert gate.offer(0, 0, bar(4))[0] == "out_of_order"
    (xs,) = gate.release()
    assert xs.close[0] == 5  # the first copy stays
    c = gate.stats.outcomes
    assert (c[ACCEPTED], c[DUPLICATE], c[CONFLICT], c["out_of_order"]) == (1, 1, 1, 1)


def test_bad_rows_are_rejected_with_their_reason() -> None:
    gate = CandleGate(["A"], TF)
    cases = {
        "nan": [None, None, None, None, None],  # ccxt's row for an HTML answer
        "non_positive_price": [0.0, 1.0, 0.5, 1.0, 1.0],
        "negative_volume": [1.0, 1.0, 1.0, 1.0, -1.0],
        "high_below_low": [1.0, 0.9, 1.1, 1.0, 1.0],
    }
    for reason, row in cases.items():
        assert gate.offer(0, TF, row)[0] == reason
    assert gate.offer(0, TF + 1, bar())[0] == "off_grid"
    assert gate.offer(0, TF, [math.nan, 1, 1, 1, 1])[0] == "nan"
    assert gate.release() == []  # nothing got through
    assert sum(gate.stats.outcomes.values()) == 6


def test_deadline_releases_with_late_symbols_and_drops_their_late_bar() -> None:
    gate = CandleGate(["A", "B", "C"], TF)
    gate.start(0)
    gate.offer(0, 0, bar())
    gate.offer(1, 0, bar())
    assert gate.release() == []
    (xs,) = gate.release(deadline_passed=True)
    assert xs.late.tolist() == [False, False, True]
    assert xs.present.tolist() == [True, True, False]
    assert gate.offer(2, 0, bar(3))[0] == TOO_LATE
    gate.offer(0, TF, bar())
    gate.offer(1, TF, bar())
    gate.offer(2, TF, bar())
    (xs,) = gate.release()
    assert xs.ts == TF and xs.present.all()
    assert gate.stats.late == 1
    # the late bar goes out with it, for the engine to take in
    assert xs.amendments == (LateBar(0, 2, *bar(3), math.nan),)
    assert gate.stats.amended == 1 and gate.stats.outcomes[TOO_LATE] == 1


def test_a_late_bar_goes_out_once_with_the_next_cross_section_released() -> None:
    gate = CandleGate(["A", "B", "C"], TF)
    gate.start(0)
    for i in (0, 1):
        gate.offer(i, 0, bar())
    gate.release(deadline_passed=True)
    for i in (0, 1):
        gate.offer(i, TF, bar())
    (late_again,) = gate.release(deadline_passed=True)  # C late at TF too
    assert late_again.amendments == ()
    assert gate.offer(2, 0, bar(7))[0] == TOO_LATE
    assert gate.offer(2, TF, bar(8))[0] == TOO_LATE
    assert gate.offer(2, TF, bar(8))[0] == DUPLICATE  # taken once
    for i in range(3):
        gate.offer(i, 2 * TF, bar())
    (xs,) = gate.release()
    assert [(b.ts, b.symbol, b.close) for b in xs.amendments] == [(0, 2, 7), (TF, 2, 8)]
    for i in range(3):
        gate.offer(i, 3 * TF, bar())
    (xs,) = gate.release()
    assert xs.amendments == ()


def test_a_bar_later_than_amend_bars_is_dropped_and_counted() -> None:
    gate = CandleGate(["A", "B", "C"], TF, amend_bars=2)
    gate.start(0)
    for t in range(4):  # C late at 0, TF, 2TF and 3TF
        for i in (0, 1):
            gate.offer(i, t * TF, bar())
        gate.release(deadline_passed=True)
    # the next cross-section, 4TF, could carry bars from 2TF on
    assert gate.offer(2, TF, bar())[0] == TOO_LATE_TO_AMEND
    assert gate.offer(2, 2 * TF, bar())[0] == TOO_LATE
    # ... but the next one released is 6TF: nothing at 4TF and 5TF
    for i in range(3):
        _, gap = gate.offer(i, 6 * TF, bar())
        if gap is not None:
            gate.backfilled(i, [])
    (xs,) = gate.release()
    assert xs.ts == 6 * TF and xs.amendments == ()
    assert gate.stats.amended == 0 and gate.stats.too_late_to_amend == 2


def test_a_backfill_that_comes_after_the_deadline_is_a_late_bar() -> None:
    gate = CandleGate(["A", "B"], TF)
    gate.start(0)
    gate.offer(0, 0, bar())
    gate.offer(1, 0, bar())
    gate.offer(0, TF, bar())
    gate.offer(0, 2 * TF, bar())
    _, gap = gate.offer(1, 2 * TF, bar())
    assert gap == Gap(1, TF, TF)
    assert [x.ts for x in gate.release()] == [0]
    out = gate.release(deadline_passed=True)  # the backfill is slow
    assert [(x.ts, x.late.tolist()) for x in out] == [
        (TF, [False, True]),
        (2 * TF, [False, False]),
    ]
    gate.backfilled(1, [[TF, *bar(5)]])
    for i in (0, 1):
        gate.offer(i, 3 * TF, bar())
    (xs,) = gate.release()
    assert [(b.ts, b.symbol, b.close) for b in xs.amendments] == [(TF, 1, 5)]


def test_a_late_bar_the_exchange_confirms_absent_is_not_amended() -> None:
    gate = CandleGate(["A", "B"], TF)
    gate.start(0)
    gate.offer(0, 0, bar())
    gate.release(deadline_passed=True)
    gate.mark_absent(1, 0)
    assert gate.offer(1, 0, bar())[0] == CONFLICT
    for i in (0, 1):
        gate.offer(i, TF, bar())
    (xs,) = gate.release()
    assert xs.amendments == ()


def test_deadline_forces_only_one_cross_section() -> None:
    gate = CandleGate(["A", "B"], TF)
    gate.start(0)
    for t in range(3):
        gate.offer(0, t * TF, bar())
    assert [x.ts for x in gate.release(deadline_passed=True)] == [0]
    assert [x.ts for x in gate.release(deadline_passed=True)] == [TF]


def test_a_limited_release_keeps_the_rest_in_order_for_a_later_one() -> None:
    """The source releases only as many cross-sections as its queue has room for:
    the others stay in the gate, candles and all, and nothing is lost or reordered."""
    gate = CandleGate(["A", "B"], TF)
    gate.start(0)
    for t in range(5):
        gate.offer(0, t * TF, bar(1 + t))
        gate.offer(1, t * TF, bar(10 + t))
    assert gate.release(limit=0) == []
    first = gate.release(limit=2)
    assert [x.ts for x in first] == [0, TF]
    assert gate.next_ts == 2 * TF
    rest = gate.release(limit=10)
    assert [x.ts for x in rest] == [2 * TF, 3 * TF, 4 * TF]
    np.testing.assert_array_equal([x.close[0] for x in first + rest], [1, 2, 3, 4, 5])
    assert all(x.present.all() and not x.late.any() for x in first + rest)
    assert gate.stats.released == 5
    for t in (5, 6):
        gate.offer(0, t * TF, bar())
    (forced,) = gate.release(limit=1, deadline_passed=True)
    assert forced.ts == 5 * TF and forced.late.tolist() == [False, True]


finite = st.floats(-10, 1e6, allow_nan=False)
special = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, None])
number = st.one_of(finite, special)
#: as a websocket brings them: decimal text, also text that is no number
text = st.one_of(finite.map(repr), st.sampled_from(["n/a", "", "nan", "inf", "-0", "1e400"]))


def as_number(x: float | str | None) -> float | None:
    """The value a recorded file would hold for ``x``: a float, or None (missing)."""
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            return None
    return x


@settings(max_examples=600, deadline=None)
@given(
    st.lists(st.one_of(number, text), min_size=5, max_size=5),
    st.sampled_from([0, TF, TF + 7, 7 * TF]),
)
def test_row_rules_equal_the_recorded_reader_rules(row: list[float | str | None], ts: int) -> None:
    o, h, lo, c, v = map(as_number, row)
    _, rejections = validate_candles("X", [ts], [o], [h], [lo], [c], [v], timeframe_ms=TF)
    expected = rejections[0].reason if rejections else None
    assert row_problem(ts, row, TF) == expected
    assert row_problem(float(ts), row, TF) == expected  # also as a float time


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_cross_section_goes_out_once_every_symbol_is_past_it(data: st.DataObject) -> None:
    n, bars = 3, 6
    # every symbol has the last bar, and some subset of the others, offered in time order
    have = [
        sorted({*data.draw(st.sets(st.integers(0, bars - 2), max_size=bars - 1)), bars - 1})
        for _ in range(n)
    ]
    queues = [[t * TF for t in h] for h in have]
    order = data.draw(st.permutations([i for i in range(n) for _ in queues[i]]))
    gate = CandleGate(["A", "B", "C"], TF)
    gate.start(0)
    last = [-1] * n
    released: list[int] = []
    for i in order:
        ts = queues[i].pop(0)
        _, gap = gate.offer(i, ts, bar())
        if gap is not None:
            gate.backfilled(i, [])  # the skipped bars do not exist
        last[i] = ts
        out = [xs.ts for xs in gate.release()]
        settled = min(last)
        want = [
            t * TF
            for t in range(bars)
            if t * TF <= settled and t * TF not in released and any(t in h for h in have)
        ]
        assert out == want
        released += out
    assert released == [t * TF for t in range(bars) if any(t in h for h in have)]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_bar_goes_out_on_time_or_late_with_a_later_cross_section_or_is_counted(
    data: st.DataObject,
) -> None:
    """Bars offered in time order per symbol, deadlines passing at random: each bar
    is in its own cross-section, or that cross-section has the symbol late and the
    bar rides on a later one (at most ``amend_bars`` bars later, once), or it is
    counted too late to amend (or waits for a cross-section still to come)."""
    n, bars, k = 3, 10, 2
    have = [
        sorted({*data.draw(st.sets(st.integers(0, bars - 2), max_size=bars - 1)), bars - 1})
        for _ in range(n)
    ]
    queues = [[t * TF for t in h] for h in have]
    order = data.draw(st.permutations([i for i in range(n) for _ in queues[i]]))
    deadlines = data.draw(st.sets(st.integers(0, len(order) - 1), max_size=6))
    gate = CandleGate(["A", "B", "C"], TF, amend_bars=k)
    gate.start(0)

    def price(i: int, ts: int) -> float:
        return 1.0 + 100 * i + ts // TF

    out = []
    outcomes: dict[tuple[int, int], str] = {}
    for step, i in enumerate(order):
        ts = queues[i].pop(0)
        outcomes[(i, ts)], gap = gate.offer(i, ts, bar(price(i, ts)))
        if gap is not None:
            gate.backfilled(i, [])  # offered in order: the bars it skipped do not exist
        out += gate.release(deadline_passed=step in deadlines)
    out += gate.release()
    released = {xs.ts: xs for xs in out}
    carried: set[tuple[int, int]] = set()
    for xs in out:
        for b in xs.amendments:
            assert (b.symbol, b.ts) not in carried  # once
            assert 0 < xs.ts - b.ts <= k * TF
            assert b.close == price(b.symbol, b.ts)
            own = released.get(b.ts)  # none: no bar came on time at that time
            assert own is None or (own.late[b.symbol] and not own.present[b.symbol])
            carried.add((b.symbol, b.ts))
    for i in range(n):
        for t in have[i]:
            xs = released.get(t * TF)
            if outcomes[(i, t * TF)] == ACCEPTED:
                assert xs is not None and xs.present[i] and xs.close[i] == price(i, t * TF)
            else:  # not there: late, never merely missing
                assert outcomes[(i, t * TF)] in (TOO_LATE, TOO_LATE_TO_AMEND)
                assert xs is None or (xs.late[i] and not xs.present[i])
    late_offers = Counter(outcomes.values())
    event("bars carried" if carried else "no bar carried")
    event("a bar too late to amend" if gate.stats.too_late_to_amend else "none too late")
    assert len(carried) == gate.stats.amended
    pending = len(gate._amendments)  # no cross-section released after they came
    assert late_offers[TOO_LATE] == gate.stats.amended + pending + (
        gate.stats.too_late_to_amend - late_offers[TOO_LATE_TO_AMEND]
    )
