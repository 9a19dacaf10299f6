"""The rolling windows of the health tracker (ANALYTICS.md section 2), one push per
grid step: the sums of the ICs and the factor-return track.

Both keep what a push changes, but for one ring slot, in one array (their
*state*) that a push replaces and never changes in place, so that a push hands
back one array and a checkpoint (the engine's undo log keeps one per step) is a
handful of references and the few values of the ring slot the next push
overwrites: a copy, or (after ``keep_undo(depth)``) saved by the push itself, in
its compiled call, for the last ``depth`` pushes.

A push is one compiled kernel (:mod:`~factorcast.factors.jit`): a
handful of factors per step cost less in one loop than in a numpy call per row.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.jit import kernel
from factorcast.factors.reasons import Reason

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]


CodeArray = NDArray[np.int8]

#: the codes of the health states (health.py's ``HealthState``, in this order)
UNKNOWN, UNRATED, WORKING, FLAT, INVERTED = range(5)


@kernel
def next_code(state: int, t_stat: float, direction: float, t_enter: float, t_exit: float) -> int:
    """The hysteresis of ANALYTICS.md section 2 (health.py's ``next_state``) on the
    states' codes."""
    if math.isnan(t_stat):
        return UNKNOWN
    if direction == 0:
        return UNRATED
    s = direction * t_stat
    if state == WORKING and s >= t_exit:
        return WORKING
    if state == INVERTED and s <= -t_exit:
        return INVERTED
    if s >= t_enter:
        return WORKING
    if s <= -t_enter:
        return INVERTED
    return FLAT


@kernel
def next_codes(
    codes: CodeArray, t_stats: FloatArray, directions: FloatArray, t_enter: float, t_exit: float
) -> tuple[CodeArray, int]:
    """:func:`next_code` of every factor; and how many changed."""
    out = np.empty_like(codes)
    changed = 0
    for j in range(codes.shape[0]):
        out[j] = next_code(codes[j], t_stats[j], directions[j], t_enter, t_exit)
        changed += out[j] != codes[j]
    return out, changed


#: What :meth:`IcWindow.restore` needs: the state, the ring slot the next push
#: overwrites (None: the push saves it), the position and the count of pushes (a
#: tuple: cheaper than an object).
IcWindowToken = tuple[FloatArray, FloatArray | None, int, int]

#: The rolling IC statistics of ANALYTICS.md section 2: ``n, mean_ic, std_ic, icir,
#: t_stat, hit_rate, reason`` per factor.
IcFigures = tuple[
    IntArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, NDArray[np.int8]
]

#: The rows of an :class:`IcWindow`'s state ``(6, K)``: the ICs of the last push
#: and their reason codes, then the window's sums of ``[finite, ic, ic^2, hit]``.
IC, IC_REASON, SUMS = 0, 1, 2


class IcWindow:
    """Sums of ``[finite, ic, ic^2, hit]`` per factor over the last ``window``
    pushes, O(K) per push; recomputed exactly from the ring every ``window``
    pushes to bound add/subtract drift (as factors/rolling.py does).

    The sums and the ICs of the last push (with their reasons) are the rows of one
    array, the ``state`` (:data:`IC`, :data:`IC_REASON`, :data:`SUMS`), which a push
    replaces: one array for a push to hand back, and for a checkpoint to keep."""

    __slots__ = ("_pos", "_pushes", "_ring", "_saved", "min_obs", "state", "window")

    def __init__(self, k: int, window: int, min_obs: int) -> None:
        self.window = window
        self.min_obs = min_obs
        self._ring: FloatArray = np.zeros((window, 4, k))  # zeros: nothing pushed there
        # no ICs yet (for want of history), and nothing summed
        self.state: FloatArray = np.zeros((SUMS + 4, k))
        self.state[IC] = np.nan
        self.state[IC_REASON] = float(Reason.INSUFFICIENT_HISTORY)
        self._pos = 0
        self._pushes = 0
        # the ring slots the last pushes overwrote, push p's at p % depth (none kept)
        self._saved: FloatArray = np.empty((0, 4, k))

    @property
    def sums(self) -> FloatArray:
        """The window's sums of ``[finite, ic, ic^2, hit]``, ``(4, K)``."""
        sums: FloatArray = self.state[SUMS:]
        return sums

    def keep_undo(self, depth: int) -> None:
        """From now on each push saves the ring slot it overwrites, for the last
        ``depth`` pushes: a :meth:`checkpoint` is then references alone."""
        self._saved = np.empty((depth, *self._ring.shape[1:]))

    def push(self, ic: FloatArray, reason: NDArray[np.int8], directions: FloatArray) -> None:
        """The ICs of the next bar (NaN where none) and their reasons into the window
        (:meth:`statistics` gives its figures)."""
        ring, pos, saved, save_at, state, recompute, _ = self.push_args()
        self.pushed(_ic_push(ic, reason, directions, ring, pos, saved, save_at, state, recompute))

    def push_args(self) -> tuple[FloatArray, int, FloatArray, int, FloatArray, bool, int]:
        """Count the next push and give what :func:`ic_push_states` takes after the
        ICs, their reasons and the directions: ``(ring, pos, saved, save_at, state,
        recompute, min_obs)``, for a caller that runs it inside a compiled call of its
        own (the health tracker, with the rank ICs before it); then :meth:`pushed`
        with the state."""
        pushes = self._pushes
        depth = len(self._saved)
        save_at = pushes % depth if depth else -1
        self._pushes = pushes = pushes + 1
        recompute = pushes % self.window == 0  # every W pushes, the sums afresh
        return self._ring, self._pos, self._saved, save_at, self.state, recompute, self.min_obs

    def pushed(self, state: FloatArray) -> None:
        """The push :meth:`push_args` began is done: its state."""
        self.state = state
        self._pos = (self._pos + 1) % self.window

    def statistics(self) -> IcFigures:
        """The statistics of the window as it is."""
        return window_statistics(self.sums, self.min_obs)

    def checkpoint(self) -> IcWindowToken:
        """The state before the next push: the slot it overwrites (unless the push
        saves it), and references."""
        slot = None if len(self._saved) else self._ring[self._pos].copy()
        return (self.state, slot, self._pos, self._pushes)

    def restore(self, token: IcWindowToken) -> None:
        pushed = self._pushes > token[3]  # else nothing was pushed since the checkpoint
        self.state, slot, self._pos, self._pushes = token
        if slot is None and pushed:  # the push saved it
            slot = self._saved[self._pushes % len(self._saved)]
        if slot is not None:
            self._ring[self._pos] = slot


@kernel
def ic_push_states(
    ic: FloatArray,
    reason: CodeArray,
    directions: FloatArray,
    ring: FloatArray,
    pos: int,
    saved: FloatArray,
    save_at: int,
    state: FloatArray,
    recompute: bool,
    min_obs: int,
    codes: CodeArray,
    thresholds: tuple[float, float],
) -> tuple[FloatArray, CodeArray, int]:
    """Ring slot ``pos`` takes the row ``[finite, ic, ic^2, hit]`` of ``ic`` (0 where
    it is not finite; a hit where the sign of ``ic`` is the factor's direction), the
    slot's old row first saved at ``saved[save_at]`` where ``save_at >= 0``; the
    window's state after the push (:func:`_ic_push`) and the state codes' step on
    its ``t_stat`` (:func:`next_codes` from ``codes`` with ``thresholds``
    ``(t_enter, t_exit)``): ``(state, codes, changed)``."""
    out = _ic_push(ic, reason, directions, ring, pos, saved, save_at, state, recompute)
    t_stat = window_statistics(out[SUMS:], min_obs)[4]
    new_codes, changed = next_codes(codes, t_stat, directions, thresholds[0], thresholds[1])
    return out, new_codes, changed


@kernel
def _ic_push(
    ic: FloatArray,
    reason: CodeArray,
    directions: FloatArray,
    ring: FloatArray,
    pos: int,
    saved: FloatArray,
    save_at: int,
    state: FloatArray,
    recompute: bool,
) -> FloatArray:
    """The window's state after the push of :func:`ic_push_states` (ring slot ``pos``
    written in place): the ICs and their reasons, and the sums with their row in and
    the slot's old row out (where ``recompute``, the sum of the ring's rows)."""
    k = ic.shape[0]
    if save_at >= 0:
        saved[save_at] = ring[pos]
    out = np.empty((SUMS + 4, k))
    for j in range(k):
        v = ic[j]
        out[IC, j] = v
        out[IC_REASON, j] = reason[j]
        row = (0.0, 0.0, 0.0, 0.0)
        if math.isfinite(v):
            sign = (v > 0) - (v < 0)
            row = (1.0, v, v * v, 1.0 if sign == directions[j] else 0.0)
        for r in range(4):
            out[SUMS + r, j] = state[SUMS + r, j] + (row[r] - ring[pos, r, j])
            ring[pos, r, j] = row[r]
    if recompute:
        out[SUMS:, :] = 0.0
        for s in range(ring.shape[0]):
            out[SUMS:] += ring[s]
    return out


@kernel
def window_statistics(sums: FloatArray, min_obs: int) -> IcFigures:
    """:func:`ic_statistics` of the sums ``[finite, ic, ic^2, hit]``, with ``n``."""
    n = np.empty(sums.shape[1], dtype=np.int64)
    for j in range(n.shape[0]):
        n[j] = np.int64(sums[0, j])  # a sum of ones and zeros: exact
    mean, std, icir, t_stat, hit, reason = ic_statistics(sums[1], sums[2], sums[3], n, min_obs)
    return n, mean, std, icir, t_stat, hit, reason


#: a variance below this share of the mean square of the ICs counts as zero
_REL_ZERO_VAR = 1e-12
_INSUFFICIENT = int(Reason.INSUFFICIENT_HISTORY)
_NO_DISPERSION = int(Reason.NO_DISPERSION)


@kernel
def ic_statistics(
    s1: FloatArray, s2: FloatArray, hits: FloatArray, n: IntArray, min_obs: int
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, NDArray[np.int8]]:
    """``mean_ic, std_ic, icir, t_stat, hit_rate, reason`` from the sums of the
    finite ICs, their squares and their hits over a window of ``n`` of them."""
    k = s1.shape[0]
    least = max(min_obs, 2)
    mean = np.full(k, np.nan)
    std = np.full(k, np.nan)
    icir = np.full(k, np.nan)
    t_stat = np.full(k, np.nan)
    hit = np.full(k, np.nan)
    reason = np.zeros(k, dtype=np.int8)
    for j in range(k):
        a, b, c = s1[j], s2[j], n[j]
        if c < least:
            reason[j] = _INSUFFICIENT
            continue
        m = a / c
        var = max((b - a * a / c) / (c - 1.0), 0.0)
        # the sums leave a few ulps of s2 where every IC is the same: that is no spread
        if var <= _REL_ZERO_VAR * b / c:
            var = 0.0
        sd = math.sqrt(var)
        mean[j] = m
        std[j] = sd
        hit[j] = hits[j] / c
        if sd > 0:
            icir[j] = m / sd
            t_stat[j] = icir[j] * math.sqrt(c)
        else:
            reason[j] = _NO_DISPERSION
    return mean, std, icir, t_stat, hit, reason


#: What :func:`track_push` takes: the ring, the state, the previous block's tails,
#: the slot, the returns, the saved slots and where to save.
TrackPushArgs = tuple[FloatArray, FloatArray, FloatArray, int, FloatArray, FloatArray, int]

#: What :meth:`ReturnTrack.restore` needs: the count of pushes, the returns of the
#: slot the next push overwrites (None: the push saves them), the state and the
#: figures of the previous block's tails.
ReturnTrackToken = tuple[int, FloatArray | None, FloatArray, FloatArray]

#: The rows of a :class:`ReturnTrack`'s state ``(8, K)``: the figures (cumulative
#: return, maximum drawdown), the counts in the window (finite returns, negative
#: growth factors) and this block's part ``P, M, m, D``.
CUM, MDD, FINITE, NEGATIVE, PART = 0, 1, 2, 3, 4


class ReturnTrack:
    """The factor-return track: over the last ``window`` pushes of ``K`` factor
    returns (NaN ones skipped), the cumulative return and the maximum drawdown of
    :func:`factorcast.factors.analytics.health.drawdown_track`.

    A push costs O(K), not a walk over the window (O(W K), most of it cache misses
    at a few hundred bars).  The ring holds the returns of a block of ``window``
    pushes, whose growth factors are ``g = 1 + f`` (1 where ``f`` is NaN); after
    slot ``o`` is written,
    the window is the previous block's slots ``o + 1 ..`` followed by this block's
    slots ``.. o``.  Each part is summed up, per factor, by four figures of its
    growth factors ``g_1 .. g_L`` with the products ``b_t = g_1 .. g_t``: ``P = b_L``,
    ``M = max(1, b_1 .. b_L)``, ``m = min(b_1 .. b_L)`` and the least drawdown ratio
    ``D = min_t b_t / max(1, b_1 .. b_t)``.  A part ``A`` followed by ``B`` has
    ``P = P_A P_B``, ``M = max(M_A, P_A M_B)``, ``m = min(m_A, P_A m_B)`` and
    ``D = min(D_A, D_B, P_A m_B / M_A)`` (each ``E / max(...)`` of ``B`` is the least
    of ``E / M_A`` and ``B``'s own ratio, for ``E >= 0``).  This block's part grows by
    one growth factor per push; the previous block's parts, from each slot to its
    end, are built once, when the block is complete.  The window's cumulative
    return is ``P - 1``, its maximum drawdown ``D - 1``: the numbers of the walk
    over the window up to rounding (the products are grouped otherwise).  A factor
    with a negative growth factor in the window (a return below -100 %) is walked.
    Where no finite return enters or leaves the window, the figures are those of the
    previous push, kept.

    All that a push changes besides its ring slot is one array, the state (rows
    :data:`CUM` .. :data:`PART`), replaced at each push: a push hands back one
    array, and a checkpoint is a reference to it.
    """

    __slots__ = ("_nan", "_returns", "_saved", "_state", "_steps", "_suffix", "window")

    def __init__(self, k: int, window: int) -> None:
        self.window = window
        self._returns: FloatArray = np.full((window, k), np.nan)
        # the previous block's parts from each slot on (ones)
        self._suffix: FloatArray = np.ones((window, 4, k))
        # no figures yet, nothing counted, this block's part empty
        self._state: FloatArray = np.full((PART + 4, k), np.nan)
        self._state[FINITE : NEGATIVE + 1] = 0.0
        _empty_part(self._state[PART:])
        self._nan: FloatArray = np.full(k, np.nan)  # the returns of a push without any
        self._steps = 0
        # the ring slots the last pushes overwrote, push p's at p % depth (none kept)
        self._saved: FloatArray = np.empty((0, k))

    def keep_undo(self, depth: int) -> None:
        """From now on each push saves the ring slot it overwrites, for the last
        ``depth`` pushes: a :meth:`checkpoint` is then references alone."""
        self._saved = np.empty((depth, self._returns.shape[1]))

    def push(self, returns: FloatArray | None) -> FloatArray:
        """The factor returns of the next bar (None: none); the state after them,
        whose rows :data:`CUM` and :data:`MDD` are the cumulative return and maximum
        drawdown over the window that ends with them."""
        f = None if returns is None else np.ascontiguousarray(returns, dtype=np.float64)
        return self.pushed(track_push(*self.push_args(f)))

    def push_args(self, returns: FloatArray | None) -> TrackPushArgs:
        """Count the next push of ``returns`` (C-contiguous float64, or None) and give
        what :func:`track_push` takes, for a caller that runs it inside a compiled
        call of its own; then :meth:`pushed` with what it returned."""
        f = self._nan if returns is None else returns
        slot = self._steps % self.window
        depth = len(self._saved)
        save_at = self._steps % depth if depth else -1
        self._steps += 1
        return (self._returns, self._state, self._suffix, slot, f, self._saved, save_at)

    def pushed(self, state: FloatArray) -> FloatArray:
        """The push :meth:`push_args` began is done: its state (:func:`track_push`),
        whose first rows are the cumulative return and maximum drawdown over the
        window."""
        self._state = state
        if (self._steps - 1) % self.window == self.window - 1:
            # the block is complete: its parts (the state has a new block's)
            self._suffix = _suffixes(self._returns)
        return state

    def checkpoint(self) -> ReturnTrackToken:
        """The state before the next push: the slot it overwrites, and references."""
        slot = self._steps % self.window
        return (
            self._steps,
            None if len(self._saved) else self._returns[slot].copy(),
            self._state,
            self._suffix,
        )

    def restore(self, token: ReturnTrackToken) -> None:
        pushed = self._steps > token[0]  # else nothing was pushed since the checkpoint
        self._steps, returns, self._state, self._suffix = token
        if returns is None and pushed:  # the push saved them
            returns = self._saved[self._steps % len(self._saved)]
        if returns is not None:
            self._returns[self._steps % self.window] = returns


@kernel
def _empty_part(part: FloatArray) -> None:
    """``part`` ``(4, K)``: the figures ``P, M, m, D`` of no growth factor (``m``
    infinite: no product)."""
    part[:, :] = 1.0
    part[2, :] = np.inf


@kernel
def _single(g: float, j: int, out: FloatArray) -> None:
    """``out[:, j]``: the figures ``P, M, m, D`` of the one growth factor ``g``."""
    out[0, j] = g
    out[1, j] = max(1.0, g)
    out[2, j] = g
    out[3, j] = g / max(1.0, g)


@kernel
def _join(a: FloatArray, b: FloatArray, j: int, out: FloatArray) -> None:
    """``out[:, j]``: the figures of part ``a`` followed by part ``b`` (factor ``j``)."""
    p, m, low, d = a[0, j], a[1, j], a[2, j], a[3, j]
    out[0, j] = p * b[0, j]
    out[1, j] = max(m, p * b[1, j])
    out[2, j] = min(low, p * b[2, j])
    out[3, j] = min(d, b[3, j], p * b[2, j] / m)


@kernel
def track_push(
    ring: FloatArray,
    state: FloatArray,
    suffix: FloatArray,
    slot: int,
    f: FloatArray,
    saved: FloatArray,
    save_at: int,
) -> FloatArray:
    """Write the returns ``f`` into ring slot ``slot`` (in place; where ``save_at >=
    0``, the slot's old returns first into ``saved[save_at]``) and return the state
    after it (:class:`ReturnTrack`, rows :data:`CUM` .. :data:`PART`; ``state`` is
    the one before): the counts, the cumulative return and the maximum drawdown
    over the window (NaN where a factor has no finite return; those of ``state``
    where no finite return entered or left), and this block's part with ``f`` (an
    empty one where ``f`` completes the block)."""
    w, k = ring.shape
    if save_at >= 0:
        saved[save_at] = ring[slot]
    new = np.empty((PART + 4, k))
    new[FINITE : NEGATIVE + 1] = state[FINITE : NEGATIVE + 1]
    part = new[PART:]
    single = np.empty((4, k))
    changed = False
    for j in range(k):
        now = math.isfinite(f[j])
        was = math.isfinite(ring[slot, j])
        g = _growth(f[j])
        new[FINITE, j] += (1.0 if now else 0.0) - (1.0 if was else 0.0)
        new[NEGATIVE, j] += (1.0 if g < 0 else 0.0) - (1.0 if _growth(ring[slot, j]) < 0 else 0.0)
        ring[slot, j] = f[j]
        changed = changed or now or was
        _single(g, j, single)
        _join(state[PART:], single, j, part)
    if not changed:  # the window's finite returns are the same: so are the figures
        new[CUM : MDD + 1] = state[CUM : MDD + 1]
    else:
        window = part
        if slot + 1 < w:  # the previous block's slots after this one come first
            window = np.empty((4, k))
            for j in range(k):
                _join(suffix[slot + 1], part, j, window)
        for j in range(k):
            new[CUM, j] = np.nan
            new[MDD, j] = np.nan
            if new[FINITE, j] == 0:
                continue
            if new[NEGATIVE, j] > 0:  # a negative growth factor: walk the window
                e, least = _walk(ring, j, slot)
            else:
                e, least = window[0, j], window[3, j]
            new[CUM, j] = e - 1.0
            new[MDD, j] = least - 1.0
    if slot + 1 == w:  # the block is complete: the next one starts empty
        _empty_part(part)
    return new


@kernel
def _growth(f: float) -> float:
    """The growth factor of a return: ``1 + f``, 1 where ``f`` is not finite."""
    return 1.0 + f if math.isfinite(f) else 1.0


@kernel
def _walk(ring: FloatArray, j: int, slot: int) -> tuple[float, float]:
    """``E`` and ``min E_t / max(E_0 .. E_t)`` (with ``E_0 = 1``) of factor ``j``
    over the window that ends at ``slot``, oldest first: the definition."""
    w = ring.shape[0]
    e = 1.0
    peak = 1.0
    least = 1.0
    for t in range(slot + 1, slot + 1 + w):
        e *= _growth(ring[t % w, j])
        peak = max(peak, e)
        least = min(least, e / peak)
    return e, least


@kernel
def _suffixes(ring: FloatArray) -> FloatArray:
    """The parts of a complete block from each slot to its end: ``(W, 4, K)``."""
    w, k = ring.shape
    out = np.empty((w, 4, k))
    single = np.empty((4, k))
    for j in range(k):
        _single(_growth(ring[w - 1, j]), j, out[w - 1])
    for o in range(w - 2, -1, -1):
        for j in range(k):
            _single(_growth(ring[o, j]), j, single)
            _join(single, out[o + 1], j, out[o])
    return out
