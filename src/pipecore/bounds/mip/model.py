"""A solver-neutral MIP: sparse constraint matrix, bounds and integrality.

Formulations build one :class:`MipModel` from numpy arrays (no per-variable
Python objects) and hand it to a backend through :func:`solve_model`. The model
is ``min/max c.x  s.t.  row_lower <= A x <= row_upper,  col_lower <= x <= col_upper,
x_j integer where integrality[j]``; infinite bounds are allowed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from ...result import Quality, Termination

__all__ = ["MipModel", "MipResult"]


def _vec(name: str, v, n: int, fill: float | None = None) -> np.ndarray:
    if v is None:
        if fill is None:
            raise ValueError(f"MipModel.{name} is required")
        return np.full(n, fill, dtype=np.float64)
    arr = np.ascontiguousarray(np.asarray(v, dtype=np.float64).ravel())
    if arr.shape != (n,):
        raise ValueError(f"MipModel.{name}: expected shape ({n},), got {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError(f"MipModel.{name} contains NaN")
    return arr


@dataclass
class MipModel:
    """``min (or max) c.x`` subject to ``row_lower <= A x <= row_upper`` and column bounds.

    Parameters
    ----------
    c : (n_vars,) objective coefficients
    A : scipy sparse matrix (n_rows, n_vars), converted to CSR float64
    row_lower, row_upper : (n_rows,) row bounds, ``-inf``/``+inf`` allowed
    col_lower, col_upper : (n_vars,) column bounds (default 0 and +inf)
    integrality : (n_vars,) bool, True = integer variable (default all continuous)
    sense : "min" or "max"
    var_names : optional names (used only for debugging / model export)
    """

    c: np.ndarray
    A: Any
    row_lower: np.ndarray
    row_upper: np.ndarray
    # array-like (or None for the default) in; a validated ndarray after __post_init__
    col_lower: Any = None
    col_upper: Any = None
    integrality: Any = None
    sense: str = "min"
    var_names: Sequence[str] | None = None
    objective_offset: float = 0.0

    def __post_init__(self):
        self.c = _vec("c", self.c, np.asarray(self.c).size)
        n = self.c.size
        A = self.A
        if not sp.issparse(A):
            A = sp.csr_matrix(np.atleast_2d(np.asarray(A, dtype=np.float64)).reshape(-1, n)
                              if np.asarray(A).size else (0, n))
        A = sp.csr_matrix(A, dtype=np.float64)
        A.sum_duplicates()
        A.eliminate_zeros()
        if A.shape[1] != n:
            raise ValueError(f"MipModel.A has {A.shape[1]} columns but c has {n} entries")
        if not np.isfinite(A.data).all():
            raise ValueError("MipModel.A contains a non-finite coefficient")
        self.A = A
        m = A.shape[0]
        self.row_lower = _vec("row_lower", self.row_lower, m, -math.inf)
        self.row_upper = _vec("row_upper", self.row_upper, m, math.inf)
        self.col_lower = _vec("col_lower", self.col_lower, n, 0.0)
        self.col_upper = _vec("col_upper", self.col_upper, n, math.inf)
        if self.integrality is None:
            self.integrality = np.zeros(n, dtype=bool)
        self.integrality = np.ascontiguousarray(np.asarray(self.integrality, dtype=bool).ravel())
        if self.integrality.shape != (n,):
            raise ValueError(f"MipModel.integrality: expected shape ({n},)")
        if self.sense not in ("min", "max"):
            raise ValueError(f"MipModel.sense must be 'min' or 'max', got {self.sense!r}")
        if (self.row_lower > self.row_upper).any() or (self.col_lower > self.col_upper).any():
            # not an error: the model is simply infeasible; backends will say so
            pass
        if self.var_names is not None and len(self.var_names) != n:
            raise ValueError(f"MipModel.var_names: expected {n} names")

    @property
    def n_vars(self) -> int:
        return self.c.size

    @property
    def n_rows(self) -> int:
        return self.A.shape[0]

    @property
    def n_integer(self) -> int:
        return int(self.integrality.sum())

    def objective_of(self, x: np.ndarray) -> float:
        return float(self.c @ x) + self.objective_offset

    def max_violation(self, x: np.ndarray) -> float:
        """Largest violation of a row, a bound or integrality by ``x`` (0 when feasible)."""
        x = np.asarray(x, dtype=np.float64)
        ax = self.A @ x
        viol = [0.0]
        if ax.size:
            viol.append(float(np.max(np.maximum(self.row_lower - ax, ax - self.row_upper), initial=0)))
        viol.append(float(np.max(np.maximum(self.col_lower - x, x - self.col_upper), initial=0)))
        xi = x[self.integrality]
        if xi.size:
            viol.append(float(np.max(np.abs(xi - np.round(xi)))))
        return max(viol)

    def __repr__(self) -> str:
        return (f"MipModel(vars={self.n_vars}, integer={self.n_integer}, rows={self.n_rows}, "
                f"nnz={self.A.nnz}, sense={self.sense!r})")


@dataclass
class MipResult:
    """What a backend returns (the same fields for every backend).

    ``termination`` says why the solver stopped and ``quality`` what it proved
    (:class:`~pipecore.result.Quality`: ``optimal`` = the incumbent is optimal within
    the requested gap, ``feasible`` = an incumbent without that proof, ``infeasible``
    = proven, ``no_solution`` = none found). ``dual_bound`` is the solver's proven
    bound on the optimum (for ``min`` a lower bound), ``nan`` if none; ``objective``
    is the incumbent's value (``nan`` if none). The dual bound is *not* rounded here:
    callers that turn it into a certificate round it safely
    (:func:`pipecore.bounds.safe_floor`).
    """

    termination: Termination
    quality: Quality
    x: np.ndarray | None = None
    objective: float = math.nan
    dual_bound: float = math.nan
    backend: str = ""
    wall_time: float = 0.0
    message: str = ""
    stats: dict = field(default_factory=dict)

    @property
    def has_solution(self) -> bool:
        return self.x is not None

    @property
    def gap(self) -> float:
        """Relative gap |objective - dual_bound| / max(|objective|, tiny); inf if unknown."""
        if not (math.isfinite(self.objective) and math.isfinite(self.dual_bound)):
            return math.inf
        return abs(self.objective - self.dual_bound) / max(abs(self.objective), 1e-10)
