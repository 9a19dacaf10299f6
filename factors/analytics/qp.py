"""A thin layer over the Clarabel interior-point solver for the optimizer's
quadratic (and linear) programs.

    minimize    1/2 x'Px + q'x
    subject to  A_eq x  = b_eq
                G x    <= h

becomes Clarabel's ``A x + s = b`` with ``s`` in a zero cone (the equalities)
followed by a nonnegative cone (the inequalities); ``P`` goes in as its upper
triangle (CSC).  The tolerances are tightened from Clarabel's defaults (1e-8) to
:data:`TOLERANCE`: callers scale their problems so that the objective is of
order one (the optimizer's variance is in bp^2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import clarabel
import numpy as np
from numpy.typing import NDArray
from scipy import sparse

FloatArray = NDArray[np.float64]

TOLERANCE: Final = 1e-10
SOLVED: Final = "solved"
INFEASIBLE: Final = "infeasible"


@dataclass(frozen=True, slots=True)
class QpSolution:
    """``x``, the objective ``1/2 x'Px + q'x``, the status (:data:`SOLVED`,
    :data:`INFEASIBLE`, or Clarabel's own name of anything else) and the
    solver's iterations."""

    x: FloatArray
    objective: float
    status: str
    iterations: int


def _status(raw: object) -> str:
    name = str(raw).rsplit(".", 1)[-1]
    if name in ("Solved", "AlmostSolved"):
        return SOLVED
    if name in ("PrimalInfeasible", "AlmostPrimalInfeasible"):
        return INFEASIBLE
    return name


def solve_qp(
    p: FloatArray | None,
    q: FloatArray,
    a_eq: FloatArray,
    b_eq: FloatArray,
    g: FloatArray,
    h: FloatArray,
    *,
    tolerance: float = TOLERANCE,
) -> QpSolution:
    """Solve the program above (``p`` ``None`` for a linear program)."""
    n = q.size
    a = np.vstack([a_eq.reshape(-1, n), g.reshape(-1, n)])
    b = np.concatenate([b_eq, h]).astype(np.float64)
    cones = []
    if b_eq.size:
        cones.append(clarabel.ZeroConeT(int(b_eq.size)))
    if h.size:
        cones.append(clarabel.NonnegativeConeT(int(h.size)))
    pm = sparse.csc_matrix((n, n)) if p is None else sparse.triu(sparse.csc_matrix(p), format="csc")
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = tolerance
    settings.tol_gap_rel = tolerance
    settings.tol_feas = tolerance
    settings.tol_ktratio = 1e-8
    solver = clarabel.DefaultSolver(
        pm, q.astype(np.float64), sparse.csc_matrix(a), b, cones, settings
    )
    sol = solver.solve()
    x = np.asarray(sol.x, dtype=np.float64)
    objective = float(q @ x) + (0.0 if p is None else 0.5 * float(x @ p @ x))
    return QpSolution(x, objective, _status(sol.status), int(sol.iterations))
