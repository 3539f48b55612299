"""MIP backends: HiGHS (``highspy``, always installed) and Gurobi (``gurobipy``, optional).

One interface in the style of Pyomo's / cvxpy's solver layers: each backend has a
``name``, an ``available()`` check that looks for the module *without importing it*
(solver modules are imported only when a model is solved), and
``solve(model, options) -> MipResult`` with the same statuses and fields for all.

Gurobi's pip wheel ships a size-limited licence (2,000 variables / 2,000
constraints); a bigger model fails with error 10010. :func:`solve_model` then
falls back to HiGHS and logs a notice, and remembers the limit so later large
models go straight to HiGHS under ``backend="auto"``.
"""
from __future__ import annotations

import importlib.util
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ... import errors
from .model import MipModel, MipResult, MipStatus

__all__ = ["SolverOptions", "Backend", "HighsBackend", "GurobiBackend", "BACKENDS",
           "available_backends", "solve_model", "GUROBI_SIZE_LIMIT"]

log = logging.getLogger("pipecore.mip")

#: variables / constraints allowed by Gurobi's size-limited (pip) licence.
GUROBI_SIZE_LIMIT = 2000
_GUROBI_SIZE_LIMITED_ERRNO = 10010


@dataclass
class SolverOptions:
    """Options every backend understands."""

    time_limit: Optional[float] = None   # seconds, None = unlimited
    mip_rel_gap: Optional[float] = None  # stop when (incumbent - bound)/|incumbent| <= gap
    threads: int = 1
    verbose: bool = False
    warm_start: Optional[np.ndarray] = None  # full x vector, used as an incumbent hint
    mip_abs_gap: Optional[float] = None  # stop when incumbent - bound <= this
    tolerance: Optional[float] = None    # primal feasibility and integrality tolerance


class Backend:
    """Interface of a MIP backend."""

    name = "?"
    module = "?"

    def available(self) -> bool:
        """True if the solver module is installed (checked without importing it)."""
        return importlib.util.find_spec(self.module) is not None

    def solve(self, model: MipModel, options: SolverOptions) -> MipResult:  # pragma: no cover
        raise NotImplementedError


def _finite_or_nan(v) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) and abs(v) < 1e29 else math.nan


def _new_highs(highspy):
    """A Highs instance that prints nothing (the wrapper class prints a banner on stdout,
    which would corrupt ``--json`` output; the core class does not)."""
    core = getattr(getattr(highspy, "_core", None), "_Highs", None)
    h = core() if core is not None else highspy.Highs()
    h.setOptionValue("output_flag", False)
    return h


class HighsBackend(Backend):
    """HiGHS through ``highspy`` (model passed as CSR arrays in one call)."""

    name = "highs"
    module = "highspy"

    def solve(self, model: MipModel, options: SolverOptions) -> MipResult:
        import highspy

        t0 = time.perf_counter()
        h = _new_highs(highspy)
        h.setOptionValue("output_flag", bool(options.verbose))
        if options.time_limit is not None:
            h.setOptionValue("time_limit", max(float(options.time_limit), 1e-3))
        if options.mip_rel_gap is not None:
            h.setOptionValue("mip_rel_gap", float(options.mip_rel_gap))
        if options.mip_abs_gap is not None:
            h.setOptionValue("mip_abs_gap", float(options.mip_abs_gap))
        if options.tolerance is not None:
            tol = max(float(options.tolerance), 1e-10)
            h.setOptionValue("primal_feasibility_tolerance", tol)
            h.setOptionValue("mip_feasibility_tolerance", tol)
            h.setOptionValue("dual_feasibility_tolerance", tol)
        if options.threads and options.threads > 1:
            h.setOptionValue("threads", int(options.threads))
        inf = highspy.kHighsInf
        A = model.A.tocsr()

        def clip(a):
            return np.clip(a, -inf, inf)

        integrality = model.integrality.astype(np.int32)
        has_int = bool(integrality.any())
        status = h.passModel(
            model.n_vars, model.n_rows, int(A.nnz), 2,  # a_format 2 = row-wise
            1 if model.sense == "min" else -1, float(model.objective_offset),
            model.c, clip(model.col_lower), clip(model.col_upper),
            clip(model.row_lower), clip(model.row_upper),
            A.indptr.astype(np.int32), A.indices.astype(np.int32), A.data.astype(np.float64),
            integrality)
        if status == highspy.HighsStatus.kError:
            return MipResult(MipStatus.ERROR, backend=self.name, message="HiGHS rejected the model",
                             wall_time=time.perf_counter() - t0)
        if options.warm_start is not None and has_int:
            sol = highspy.HighsSolution()
            sol.col_value = np.asarray(options.warm_start, dtype=np.float64).tolist()
            sol.value_valid = True
            h.setSolution(sol)
        try:
            h.run()
        except KeyboardInterrupt:
            h.cancelSolve()
            raise
        ms = h.getModelStatus()
        info = h.getInfo()
        M = highspy.HighsModelStatus
        minimize = model.sense == "min"
        if ms == M.kOptimal:
            st = MipStatus.OPTIMAL
        elif ms == M.kInfeasible:
            st = MipStatus.INFEASIBLE
        elif ms in (M.kUnbounded, M.kUnboundedOrInfeasible):
            st = MipStatus.UNBOUNDED
        elif ms == M.kTimeLimit:
            st = MipStatus.TIME_LIMIT
        elif ms in (M.kInterrupt, M.kHighsInterrupt):
            st = MipStatus.INTERRUPTED
        elif ms in (M.kIterationLimit, M.kSolutionLimit, M.kMemoryLimit, M.kObjectiveBound,
                    M.kObjectiveTarget):
            st = MipStatus.LIMIT
        else:
            st = MipStatus.ERROR
        x = None
        obj = math.nan
        if int(info.primal_solution_status) == 2:  # kSolutionStatusFeasible
            x = np.asarray(h.getSolution().col_value, dtype=np.float64)
            obj = _finite_or_nan(info.objective_function_value)
        if has_int:
            bound = _finite_or_nan(info.mip_dual_bound)
        else:
            # an LP: the optimal objective is a (dual-feasible) bound; anything else is not
            bound = obj if st == MipStatus.OPTIMAL else math.nan
        if st == MipStatus.INFEASIBLE:
            bound = math.inf if minimize else -math.inf
        return MipResult(st, x=x, objective=obj, dual_bound=bound, backend=self.name,
                         wall_time=time.perf_counter() - t0,
                         message=h.modelStatusToString(ms),
                         stats={"nodes": int(getattr(info, "mip_node_count", 0) or 0)})


class GurobiSizeLimitError(errors.SolverError):
    """Gurobi refused the model: the size-limited (pip) licence allows at most 2,000 vars/rows."""


class GurobiBackend(Backend):
    """Gurobi through ``gurobipy``'s matrix API (``addMVar`` / ``addMConstr``)."""

    name = "gurobi"
    module = "gurobipy"
    _local = threading.local()  # Gurobi environments are not thread-safe: one per thread
    size_limited: Optional[bool] = None  # learnt from error 10010

    def _get_env(self):
        import gurobipy as gp

        env = getattr(self._local, "env", None)
        if env is None:
            env = gp.Env(empty=True)
            env.setParam("OutputFlag", 0)
            env.start()
            self._local.env = env
        return env

    def usable(self) -> bool:
        """Installed and a licence starts (imports gurobipy; call lazily)."""
        if not self.available():
            return False
        try:
            self._get_env()
            return True
        except Exception:  # no licence, broken install
            return False

    def solve(self, model: MipModel, options: SolverOptions) -> MipResult:
        import gurobipy as gp
        from gurobipy import GRB

        t0 = time.perf_counter()
        env = self._get_env()
        m = gp.Model(env=env)
        try:
            m.Params.OutputFlag = 1 if options.verbose else 0
            if options.time_limit is not None:
                m.Params.TimeLimit = max(float(options.time_limit), 1e-3)
            if options.mip_rel_gap is not None:
                m.Params.MIPGap = float(options.mip_rel_gap)
            m.Params.Threads = max(int(options.threads or 1), 1)
            if options.mip_abs_gap is not None:
                m.Params.MIPGapAbs = float(options.mip_abs_gap)
            if options.tolerance is not None:
                tol = max(float(options.tolerance), 1e-9)
                m.Params.FeasibilityTol = tol
                m.Params.IntFeasTol = tol
            vtype = np.where(model.integrality, GRB.INTEGER, GRB.CONTINUOUS)
            lb = np.where(np.isinf(model.col_lower), -GRB.INFINITY, model.col_lower)
            ub = np.where(np.isinf(model.col_upper), GRB.INFINITY, model.col_upper)
            x = m.addMVar(model.n_vars, lb=lb, ub=ub, vtype=vtype)
            A = model.A.tocsr()
            lo, up = model.row_lower, model.row_upper
            eq = np.isfinite(lo) & np.isfinite(up) & (lo == up)
            le = np.isfinite(up) & ~eq
            ge = np.isfinite(lo) & ~eq
            for mask, sense, rhs in ((eq, "=", lo), (le, "<", up), (ge, ">", lo)):
                if mask.any():
                    m.addMConstr(A[mask], x, sense, rhs[mask])
            m.setMObjective(None, model.c, float(model.objective_offset),
                            sense=GRB.MINIMIZE if model.sense == "min" else GRB.MAXIMIZE)
            if options.warm_start is not None:
                x.Start = np.asarray(options.warm_start, dtype=np.float64)
            try:
                m.optimize()
            except gp.GurobiError as exc:
                if getattr(exc, "errno", None) == _GUROBI_SIZE_LIMITED_ERRNO:
                    GurobiBackend.size_limited = True
                    raise GurobiSizeLimitError(str(exc)) from None
                raise errors.SolverError(f"Gurobi error {getattr(exc, 'errno', '?')}: {exc}") from None
            s = m.Status
            st = {GRB.OPTIMAL: MipStatus.OPTIMAL, GRB.INFEASIBLE: MipStatus.INFEASIBLE,
                  GRB.INF_OR_UNBD: MipStatus.UNBOUNDED, GRB.UNBOUNDED: MipStatus.UNBOUNDED,
                  GRB.TIME_LIMIT: MipStatus.TIME_LIMIT, GRB.INTERRUPTED: MipStatus.INTERRUPTED,
                  GRB.NODE_LIMIT: MipStatus.LIMIT, GRB.ITERATION_LIMIT: MipStatus.LIMIT,
                  GRB.SOLUTION_LIMIT: MipStatus.LIMIT, GRB.MEM_LIMIT: MipStatus.LIMIT,
                  }.get(s, MipStatus.ERROR)
            xv, obj = None, math.nan
            if m.SolCount > 0:
                xv = np.asarray(x.X, dtype=np.float64)
                obj = _finite_or_nan(m.ObjVal)
            if model.integrality.any():
                try:
                    bound = _finite_or_nan(m.ObjBound)
                except (AttributeError, gp.GurobiError):
                    bound = math.nan
            else:
                bound = obj if st == MipStatus.OPTIMAL else math.nan
            if st == MipStatus.INFEASIBLE:
                bound = math.inf if model.sense == "min" else -math.inf
            nodes = int(m.NodeCount) if model.integrality.any() else 0
            return MipResult(st, x=xv, objective=obj, dual_bound=bound, backend=self.name,
                             wall_time=time.perf_counter() - t0, message=f"gurobi status {s}",
                             stats={"nodes": nodes})
        finally:
            m.dispose()


BACKENDS: dict[str, Backend] = {"highs": HighsBackend(), "gurobi": GurobiBackend()}


def available_backends() -> list[str]:
    """Names of installed backends (checked without importing the solver modules)."""
    return [name for name, b in BACKENDS.items() if b.available()]


def _fits_gurobi(model: MipModel) -> bool:
    if not GurobiBackend.size_limited:
        return True
    return model.n_vars <= GUROBI_SIZE_LIMIT and model.n_rows <= GUROBI_SIZE_LIMIT


def solve_model(model: MipModel, backend: str = "auto", *, time_limit: float | None = None,
                mip_rel_gap: float | None = None, threads: int = 1, verbose: bool = False,
                warm_start: np.ndarray | None = None, mip_abs_gap: float | None = None,
                tolerance: float | None = None) -> MipResult:
    """Solve ``model`` with a backend: ``"auto"`` (Gurobi if usable, else HiGHS), ``"highs"``
    or ``"gurobi"``.

    A Gurobi size-limit failure (licence error 10010) falls back to HiGHS with a
    logged notice; the result's ``backend`` names the solver that actually ran and
    ``message`` mentions the fallback. ``time_limit`` is the wall-clock budget of the
    whole call (a fallback gets what is left). ``mip_abs_gap`` and ``tolerance``
    (primal feasibility and integrality tolerance, default: the solver's, 1e-6) are
    extensions used when a dual bound becomes a certificate.
    """
    if backend not in ("auto", *BACKENDS):
        raise ValueError(f"unknown MIP backend {backend!r}; choose from auto, {', '.join(BACKENDS)}")
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"time_limit must be > 0, got {time_limit!r}")
    if warm_start is not None:
        warm_start = np.asarray(warm_start, dtype=np.float64).ravel()
        if warm_start.shape != (model.n_vars,):
            raise ValueError(f"warm_start: expected {model.n_vars} values, got {warm_start.size}")
    opts = SolverOptions(time_limit=time_limit, mip_rel_gap=mip_rel_gap, threads=threads,
                         verbose=verbose, warm_start=warm_start, mip_abs_gap=mip_abs_gap,
                         tolerance=tolerance)
    t0 = time.perf_counter()
    gurobi = BACKENDS["gurobi"]
    if backend == "gurobi":
        if not gurobi.available():
            raise errors.SolverError("backend 'gurobi' requested but gurobipy is not installed "
                                     "(pip install gurobipy, or use backend='highs')")
        use_gurobi = True
    elif backend == "auto":
        use_gurobi = gurobi.available() and _fits_gurobi(model) and gurobi.usable()
    else:
        use_gurobi = False
    if use_gurobi:
        try:
            return gurobi.solve(model, opts)
        except GurobiSizeLimitError as exc:
            log.warning("Gurobi's size-limited licence refused a model with %d variables and "
                        "%d constraints (error 10010); falling back to HiGHS", model.n_vars,
                        model.n_rows)
            note = f"fell back to HiGHS: {exc}"
        if time_limit is not None:
            opts.time_limit = max(time_limit - (time.perf_counter() - t0), 1e-3)
        res = BACKENDS["highs"].solve(model, opts)
        res.message = f"{note}; {res.message}"
        res.stats["fallback_from"] = "gurobi"
        res.wall_time = time.perf_counter() - t0
        return res
    return BACKENDS["highs"].solve(model, opts)
