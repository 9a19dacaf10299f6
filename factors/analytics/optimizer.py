"""The tilt optimizer (ANALYTICS.md section 8, "suggest").

From current weights ``w`` and target exposures ``x*_k`` for the named factors,
``w'`` over every symbol with finite exposures at ``T`` (symbols not held start
at ``w_i = 0``) minimizing the tracking variance ``(w' - w)' V (w' - w)`` subject to

- ``sum_i w'_i X[i,k] = x*_k`` for each named ``k`` (the *targets*),
- ``sum w' = sum w`` (the *budget*),
- ``|w'_i| <= max_weight`` (default 0.25) and ``w' >= 0`` when long-only (the
  default),

with ``V = B F B' + diag(D)`` the risk model's asset covariance.  The program is
solved in the trades ``d = w' - w`` (so the objective ``d'Vd`` carries no
cancellation) by Clarabel (:mod:`.qp`), with ``V`` scaled by ``1 / mean(V_ii)``
so that the objective is of order one, and tolerances of 1e-10.  Reported: the
weights, the trades, the exposures of ``w'`` (``universe`` first), the objective
(a one-bar variance, unscaled), the tracking error ``sqrt(objective)`` and
annualized ``sqrt(objective * bars_per_year)``, the turnover ``sum |d|``.

An infeasible program raises :class:`InfeasibleTarget` naming the constraint
that binds (the command exits 1): the budget against the bounds (closed form:
``n * lower <= sum w <= n * max_weight``); else a single target outside its
reachable range under budget and bounds (two linear programs: the minimum and
the maximum of ``sum_i w'_i X[i,k]``); else the constraints whose removal alone
makes the rest feasible (each target, ``max_weight``, ``long_only``).

Choices the contract leaves open, made here:

- A held symbol without finite exposures (or specific variance) is not in the
  program: its weight stays as it is, outside the budget, and is listed in
  ``left_out``.
- Weights are clipped to their bounds after the solve (removes interior-point
  residue of order 1e-12, so unheld symbols of a long-only result are exactly 0);
  every constraint is then checked to 1e-6 and a violation is an
  :class:`OptimizationError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.analytics.portfolio import PortfolioInputError
from factorcast.factors.analytics.qp import INFEASIBLE, SOLVED, solve_qp
from factorcast.factors.analytics.risk import asset_covariance
from factorcast.factors.registry import UNIVERSE

FloatArray = NDArray[np.float64]

DEFAULT_MAX_WEIGHT: Final = 0.25
#: constraints are met within this after the solve
NO_TRADE: Final = 1e-8  # a smaller trade (weight) is none
CONSTRAINT_TOLERANCE: Final = 1e-6
BUDGET: Final = "budget"
MAX_WEIGHT: Final = "max_weight"
LONG_ONLY: Final = "long_only"


class OptimizationError(Exception):
    """The optimizer could not produce an answer (the command exits 1)."""


class InfeasibleTarget(OptimizationError):
    """No weights meet every constraint; ``constraints`` names those that bind
    (factor names for targets, :data:`BUDGET`, :data:`MAX_WEIGHT`,
    :data:`LONG_ONLY`)."""

    def __init__(self, message: str, constraints: tuple[str, ...]) -> None:
        super().__init__(message)
        self.constraints = constraints


@dataclass(frozen=True, slots=True)
class Suggestion:
    """The optimizer's answer over ``symbols`` (those with finite exposures);
    ``names`` are ``universe`` then the model factors, ``exposure`` one each."""

    symbols: tuple[str, ...]
    names: tuple[str, ...]
    target: dict[str, float]
    current: FloatArray
    weights: FloatArray
    trades: FloatArray
    exposure: FloatArray
    objective: float
    tracking_error: float
    tracking_error_annual: float
    turnover: float
    left_out: dict[str, float]
    iterations: int


@dataclass(frozen=True, slots=True)
class _Program:
    """The program in the trades ``d``: targets ``c' d = e`` (rows per named
    factor), budget ``1'd = 0``, bounds ``lower - w <= d <= upper - w`` (an
    infinite bound is left out)."""

    w: FloatArray
    c: FloatArray  # (k_named, n)
    e: FloatArray
    lower: float
    upper: float

    def bounded(self, lower: float, upper: float) -> _Program:
        return _Program(self.w, self.c, self.e, lower, upper)

    def constraints(
        self, targets: Sequence[int]
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        n = self.w.size
        rows = list(targets)
        a_eq = np.vstack([self.c[rows], np.ones((1, n))])
        b_eq = np.concatenate([self.e[rows], [0.0]])
        eye = np.eye(n)
        g: list[FloatArray] = []
        h: list[FloatArray] = []
        if math.isfinite(self.upper):
            g.append(eye)
            h.append(self.upper - self.w)
        if math.isfinite(self.lower):
            g.append(-eye)
            h.append(self.w - self.lower)
        gm = np.vstack(g) if g else np.zeros((0, n))
        hv = np.concatenate(h) if h else np.zeros(0)
        return a_eq, b_eq, gm, hv


def _check_target(target: Mapping[str, float], names: Sequence[str]) -> None:
    if not target:
        raise PortfolioInputError("target: no factor given (name=value,...)")
    for name, value in target.items():
        if name == UNIVERSE or name not in names:
            raise PortfolioInputError(f"target: unknown factor {name!r}; known: {', '.join(names)}")
        if not math.isfinite(value):
            raise PortfolioInputError(f"target: {name} is not a finite number")


def suggest(
    symbols: Sequence[str],
    names: Sequence[str],
    exposures: FloatArray,
    covariance: FloatArray,
    specific: FloatArray,
    current: FloatArray,
    target: Mapping[str, float],
    *,
    bars_per_year: float,
    max_weight: float = DEFAULT_MAX_WEIGHT,
    long_only: bool = True,
) -> Suggestion:
    """Weights closest to ``current`` (n,; 0 where not held) in tracking variance
    with the ``target`` exposures; ``exposures`` (n, K) over ``names``, the risk
    model's ``covariance`` (K+1, K+1) and ``specific`` (n,)."""
    x = np.asarray(exposures, dtype=np.float64)
    d_spec = np.asarray(specific, dtype=np.float64)
    f = np.asarray(covariance, dtype=np.float64)
    w_all = np.asarray(current, dtype=np.float64)
    n_all, k = len(symbols), len(names)
    if x.shape != (n_all, k) or d_spec.shape != (n_all,) or w_all.shape != (n_all,):
        raise ValueError("exposures, specific and current do not fit the symbols")
    if f.shape != (k + 1, k + 1):
        raise ValueError("covariance does not fit the names")
    if not (math.isfinite(max_weight) and max_weight > 0):
        raise PortfolioInputError(f"max_weight: must be positive, got {max_weight!r}")
    if not np.isfinite(w_all).all():
        raise PortfolioInputError("current weights: not all finite")
    _check_target(target, names)
    if not np.isfinite(f).all():
        raise OptimizationError("no risk model at this bar (insufficient_history)")
    ok = np.isfinite(x).all(axis=1) & np.isfinite(d_spec)
    left_out = {symbols[i]: float(w_all[i]) for i in np.flatnonzero(~ok & (w_all != 0)).tolist()}
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        raise OptimizationError("no symbol has finite exposures at this bar")
    xs, w = x[idx], w_all[idx]
    named = [names.index(n) for n in names if n in target]
    program = _Program(
        w=w,
        c=xs[:, named].T.copy(),
        e=np.array([target[names[j]] for j in named]) - xs[:, named].T @ w,
        lower=0.0 if long_only else -max_weight,
        upper=max_weight,
    )
    v = asset_covariance(f, d_spec[idx], xs)
    scale = 1.0 / float(np.mean(np.diag(v)))
    a_eq, b_eq, g, h = program.constraints(range(len(named)))
    sol = solve_qp(2.0 * scale * v, np.zeros(idx.size), a_eq, b_eq, g, h)
    if sol.status == INFEASIBLE:
        raise _diagnose(program, [names[j] for j in named], target, max_weight, long_only)
    if sol.status != SOLVED:
        raise OptimizationError(f"the solver stopped: {sol.status}")
    new = np.clip(w + sol.x, program.lower, program.upper)
    # an interior-point answer leaves trades of a few 1e-9 on symbols it does not move
    new = np.where(np.abs(new - w) < NO_TRADE, w, new)
    trades = new - w
    exposure = np.concatenate([[new.sum()], new @ xs])
    worst = max(
        float(np.max(np.abs(program.c @ new - (program.e + program.c @ w)), initial=0.0)),
        abs(float(new.sum() - w.sum())),
    )
    if worst > CONSTRAINT_TOLERANCE:
        raise OptimizationError(f"the solver's answer misses a constraint by {worst:.3g}")
    objective = float(trades @ v @ trades)
    return Suggestion(
        symbols=tuple(symbols[i] for i in idx.tolist()),
        names=(UNIVERSE, *names),
        target={names[j]: float(target[names[j]]) for j in named},
        current=w,
        weights=new,
        trades=trades,
        exposure=exposure,
        objective=objective,
        tracking_error=math.sqrt(max(objective, 0.0)),
        tracking_error_annual=math.sqrt(max(objective, 0.0) * bars_per_year),
        turnover=float(np.abs(trades).sum()),
        left_out=left_out,
        iterations=sol.iterations,
    )


def _feasible(program: _Program, targets: Sequence[int]) -> bool:
    a_eq, b_eq, g, h = program.constraints(targets)
    return solve_qp(None, np.zeros(program.w.size), a_eq, b_eq, g, h).status == SOLVED


def _diagnose(
    program: _Program,
    named: list[str],
    target: Mapping[str, float],
    max_weight: float,
    long_only: bool,
) -> InfeasibleTarget:
    """Which constraint binds (see the module docstring)."""
    n = program.w.size
    budget = float(program.w.sum())
    under = f"max_weight {max_weight:g}{', long-only' if long_only else ''}"
    if not (n * program.lower - 1e-12 <= budget <= n * program.upper + 1e-12):
        above = budget > n * program.upper
        why = (MAX_WEIGHT,) if above or not long_only else (LONG_ONLY,)
        return InfeasibleTarget(
            f"infeasible: budget sum of weights {budget:.6g} cannot be met by {n} symbols "
            f"under {under}",
            (BUDGET, *why),
        )
    a_eq, b_eq, g, h = program.constraints([])
    for j, name in enumerate(named):
        base = float(program.c[j] @ program.w)
        lowest = solve_qp(None, program.c[j], a_eq, b_eq, g, h)
        highest = solve_qp(None, -program.c[j], a_eq, b_eq, g, h)
        if lowest.status != SOLVED or highest.status != SOLVED:
            continue
        low, high = base + lowest.objective, base - highest.objective
        want = float(target[name])
        if want < low - CONSTRAINT_TOLERANCE or want > high + CONSTRAINT_TOLERANCE:
            return InfeasibleTarget(
                f"infeasible: target {name}={want:g} is out of reach: {name} can range from "
                f"{low:.4g} to {high:.4g} with the budget {budget:.6g} under {under}",
                (name,),
            )
    every = list(range(len(named)))
    binding = [
        name for j, name in enumerate(named) if _feasible(program, every[:j] + every[j + 1 :])
    ]
    if _feasible(program.bounded(0.0 if long_only else -math.inf, math.inf), every):
        binding.append(MAX_WEIGHT)
    if long_only and _feasible(program.bounded(-max_weight, max_weight), every):
        binding.append(LONG_ONLY)
    listed = ", ".join(f"{nm}={float(target[nm]):g}" for nm in named)
    if binding:
        which = binding[0] if len(binding) == 1 else f"any one of {', '.join(binding)}"
        return InfeasibleTarget(
            f"infeasible: the targets {listed} cannot be met together under {under} and the "
            f"budget; dropping {which} makes it feasible",
            tuple(binding),
        )
    return InfeasibleTarget(
        f"infeasible: the targets {listed} cannot be met together under {under} and the budget",
        tuple(named),
    )
