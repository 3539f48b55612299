"""MIP backends: HiGHS (``highspy``, always installed) and Gurobi (``gurobipy``, optional).

One interface in the style of Pyomo's / cvxpy's solver layers: each backend is a
:class:`Backend` with a ``name``, an ``available()`` check that looks for the
module *without importing it* (solver modules are imported only when a model is
solved), a table from the solver's status codes to pipecore's
:class:`~pipecore.result.Termination` / :class:`~pipecore.result.Quality`, and
``solve(model, options) -> MipResult`` with the same fields for all.

Gurobi's pip wheel ships a size-limited licence (2,000 variables / 2,000
constraints); a bigger model fails with error 10010. :func:`solve_model` then
falls back to HiGHS and logs a notice. What one call learns (the licence is
size-limited) is kept in the :class:`SolverSession` the caller passes, never in
process-wide state, so later models of the same certificate go straight to HiGHS.
"""
from __future__ import annotations

import abc
import contextlib
import importlib.util
import logging
import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import numpy as np

from ... import errors
from ...result import Quality, Termination
from .model import MipModel, MipResult

__all__ = ["SolverOptions", "SolverSession", "Backend", "HighsBackend", "GurobiBackend",
           "BACKENDS", "available_backends", "solve_model", "GUROBI_SIZE_LIMIT"]

log = logging.getLogger("pipecore.mip")

#: variables / constraints allowed by Gurobi's size-limited (pip) licence.
GUROBI_SIZE_LIMIT = 2000
_GUROBI_SIZE_LIMITED_ERRNO = 10010
#: seconds HiGHS gets to stop after it was asked to; then the call returns without it.
ABANDON_GRACE = 0.3
#: nonzeros per second HiGHS loads and presolves (measured on one idle core: ~400,000 for
#: the chain models); a MIP is not started when its deadline leaves less than that time.
LOAD_NNZ_PER_SECOND = 400_000


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
    deadline: float = math.inf           # absolute (time.monotonic) time to stop at
    cancel: Optional[threading.Event] = None  # set it to stop the solve (Ctrl-C)


@dataclass
class SolverSession:
    """What the backends learn during one certificate (or repair): passed per call."""

    gurobi_size_limited: bool = False
    notes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Backend(abc.ABC):
    """Interface of a MIP backend."""

    name: str = "?"
    module: str = "?"
    #: solver status -> (termination, quality when an incumbent exists)
    STATUS: dict[Any, tuple[Termination, Quality]] = {}

    def available(self) -> bool:
        """True if the solver module is installed (checked without importing it)."""
        return importlib.util.find_spec(self.module) is not None

    def usable(self) -> bool:
        """Installed and able to solve (e.g. a licence starts); may import the module."""
        return self.available()

    @abc.abstractmethod
    def solve(self, model: MipModel, options: SolverOptions) -> MipResult:
        """Solve ``model``; never raises for solver-side failures (termination ERROR)."""

    @staticmethod
    def outcome(entry: tuple[Termination, Quality] | None,
                has_x: bool) -> tuple[Termination, Quality]:
        """(termination, quality) from a status-table entry and whether an incumbent exists."""
        term, qual = entry if entry is not None else (Termination.ERROR, Quality.NO_SOLUTION)
        if qual in (Quality.OPTIMAL, Quality.FEASIBLE) and not has_x:
            qual = Quality.NO_SOLUTION
        return term, qual


def _finite_or_nan(v: Any) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) and abs(v) < 1e29 else math.nan


_STDOUT_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence C-level stdout (HiGHS prints a banner when an instance is created, which
    would corrupt ``--json`` output). Serialised by a lock; a no-op where stdout has no
    file descriptor."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    with _STDOUT_LOCK:
        sys.stdout.flush()
        saved = os.dup(fd)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
            yield
        finally:
            os.dup2(saved, fd)
            os.close(devnull)
            os.close(saved)


class HighsBackend(Backend):
    """HiGHS through ``highspy``'s public ``Highs`` class (model passed as CSR arrays).

    The solve runs in a worker thread; HiGHS's interrupt callbacks stop it when
    ``options.deadline`` passes, ``options.cancel`` is set or Ctrl-C reaches the calling
    thread, and its own ``time_limit`` (set from the deadline) covers presolve.
    """

    name = "highs"
    module = "highspy"

    def _status_table(self, highspy: Any) -> dict[Any, tuple[Termination, Quality]]:
        M = highspy.HighsModelStatus
        T, Q = Termination, Quality
        table = {M.kOptimal: (T.COMPLETED, Q.OPTIMAL),
                 M.kInfeasible: (T.COMPLETED, Q.INFEASIBLE),
                 M.kUnbounded: (T.ERROR, Q.NO_SOLUTION),
                 M.kUnboundedOrInfeasible: (T.ERROR, Q.NO_SOLUTION),
                 M.kTimeLimit: (T.TIME_LIMIT, Q.FEASIBLE),
                 M.kInterrupt: (T.INTERRUPTED, Q.FEASIBLE),
                 M.kIterationLimit: (T.CAPPED, Q.FEASIBLE),
                 M.kSolutionLimit: (T.CAPPED, Q.FEASIBLE),
                 M.kMemoryLimit: (T.CAPPED, Q.FEASIBLE),
                 M.kObjectiveBound: (T.CAPPED, Q.FEASIBLE),
                 M.kObjectiveTarget: (T.CAPPED, Q.FEASIBLE)}
        if hasattr(M, "kHighsInterrupt"):
            table[M.kHighsInterrupt] = (T.INTERRUPTED, Q.FEASIBLE)
        return table

    def _configure(self, h: Any, options: SolverOptions) -> None:
        h.setOptionValue("output_flag", bool(options.verbose))
        limit = options.time_limit
        if math.isfinite(options.deadline):
            left = options.deadline - time.monotonic()
            limit = left if limit is None else min(limit, left)
        if limit is not None:
            h.setOptionValue("time_limit", max(float(limit), 1e-3))
        if options.mip_rel_gap is not None:
            h.setOptionValue("mip_rel_gap", float(options.mip_rel_gap))
        if options.mip_abs_gap is not None:
            h.setOptionValue("mip_abs_gap", float(options.mip_abs_gap))
        if options.tolerance is not None:
            tol = max(float(options.tolerance), 1e-10)
            h.setOptionValue("primal_feasibility_tolerance", tol)
            h.setOptionValue("mip_feasibility_tolerance", tol)
            h.setOptionValue("dual_feasibility_tolerance", tol)
        # Always set: HiGHS's default (threads=0) shares one global task scheduler
        # between the instances that pipecore runs in parallel threads, and two MIPs
        # presolving at once could then deadlock (seen with HiGHS 1.16: one never
        # returned, and its thread kept the process alive long after the time limit).
        h.setOptionValue("threads", max(int(options.threads or 1), 1))

    def _pass_model(self, h: Any, highspy: Any, model: MipModel) -> bool:
        inf = highspy.kHighsInf
        A = model.A.tocsr()

        def clip(a: np.ndarray) -> np.ndarray:
            return np.clip(a, -inf, inf)

        status = h.passModel(
            model.n_vars, model.n_rows, int(A.nnz), 2,  # a_format 2 = row-wise
            1 if model.sense == "min" else -1, float(model.objective_offset),
            model.c, clip(model.col_lower), clip(model.col_upper),
            clip(model.row_lower), clip(model.row_upper),
            A.indptr.astype(np.int32), A.indices.astype(np.int32), A.data.astype(np.float64),
            model.integrality.astype(np.int32))
        return status != highspy.HighsStatus.kError

    def _run(self, h: Any, options: SolverOptions) -> str:
        """Run ``h`` in a worker thread; interrupt it (through HiGHS's public interrupt
        callbacks) at the deadline, when ``options.cancel`` is set, or on Ctrl-C in this
        thread (re-raised once HiGHS has stopped). Returns "" (ran to its end), "stopped"
        (interrupted) or "abandoned": some HiGHS steps (MIP presolve, probing, root
        set-up) run for seconds without calling back, so when the solver has not stopped
        :data:`ABANDON_GRACE` seconds after it was asked to, this call returns without it
        (no result); the thread stops by itself at HiGHS's next check, and as a daemon
        thread it never holds the process open at exit."""
        stop = threading.Event()

        def due() -> bool:
            return stop.is_set() or time.monotonic() > options.deadline or (
                options.cancel is not None and options.cancel.is_set())

        def check(event: Any) -> None:
            if due():
                stop.set()
                event.interrupt()

        for hook in (h.cbSimplexInterrupt, h.cbIpmInterrupt, h.cbMipInterrupt):
            hook += check
        # daemon: an abandoned solve must not keep the process alive at exit (HiGHS's MIP
        # presolve has been seen looping for minutes without a check on CLIP at k = 64)
        worker = threading.Thread(target=h.run, name="pipecore-highs", daemon=True)
        worker.start()
        interrupted, give_up = False, math.inf
        while worker.is_alive():
            try:
                worker.join(0.05)
            except KeyboardInterrupt:
                interrupted = True
                stop.set()
            if due():
                stop.set()
                give_up = min(give_up, time.monotonic() + ABANDON_GRACE)
                if time.monotonic() > give_up and worker.is_alive():
                    if interrupted:
                        raise KeyboardInterrupt
                    return "abandoned"
        if interrupted:
            raise KeyboardInterrupt
        return "stopped" if stop.is_set() else ""

    def solve(self, model: MipModel, options: SolverOptions) -> MipResult:
        import highspy

        t0 = time.perf_counter()
        left = options.deadline - time.monotonic()
        if model.A.nnz / LOAD_NNZ_PER_SECOND > left:
            return MipResult(Termination.TIME_LIMIT, Quality.NO_SOLUTION, backend=self.name,
                             message=f"no time to load and presolve {model.A.nnz:,} nonzeros "
                                     f"in {max(left, 0.0):.2g} s", wall_time=0.0)
        with _quiet_stdout():
            h = highspy.Highs()
        self._configure(h, options)
        if not self._pass_model(h, highspy, model):
            return MipResult(Termination.ERROR, Quality.NO_SOLUTION, backend=self.name,
                             message="HiGHS rejected the model (coefficients out of range?)",
                             wall_time=time.perf_counter() - t0)
        has_int = bool(model.integrality.any())
        if options.warm_start is not None and has_int:
            sol = highspy.HighsSolution()
            sol.col_value = np.asarray(options.warm_start, dtype=np.float64).tolist()
            sol.value_valid = True
            h.setSolution(sol)
        if time.monotonic() >= options.deadline:
            return MipResult(Termination.TIME_LIMIT, Quality.NO_SOLUTION, backend=self.name,
                             message="no time left", wall_time=time.perf_counter() - t0)
        how = self._run(h, options)
        if how == "abandoned":
            return MipResult(Termination.TIME_LIMIT, Quality.NO_SOLUTION, backend=self.name,
                             message="HiGHS did not stop in time (left to stop by itself)",
                             wall_time=time.perf_counter() - t0)
        return self._result(h, highspy, model, how == "stopped", t0)

    def _result(self, h: Any, highspy: Any, model: MipModel, cancelled: bool,
                t0: float) -> MipResult:
        ms = h.getModelStatus()
        info = h.getInfo()
        x, obj = None, math.nan
        if int(info.primal_solution_status) == 2:  # kSolutionStatusFeasible
            x = np.asarray(h.getSolution().col_value, dtype=np.float64)
            obj = _finite_or_nan(info.objective_function_value)
        has_int = bool(model.integrality.any())
        term, qual = self.outcome(self._status_table(highspy).get(ms), x is not None)
        if cancelled and term is Termination.INTERRUPTED:
            term = Termination.TIME_LIMIT
        if has_int:
            bound = _finite_or_nan(info.mip_dual_bound)
        else:  # an LP: the optimal objective is a (dual-feasible) bound; nothing else is
            bound = obj if qual is Quality.OPTIMAL else math.nan
        if qual is Quality.INFEASIBLE:
            bound = math.inf if model.sense == "min" else -math.inf
        return MipResult(term, qual, x=x, objective=obj, dual_bound=bound, backend=self.name,
                         wall_time=time.perf_counter() - t0, message=h.modelStatusToString(ms),
                         stats={"nodes": int(getattr(info, "mip_node_count", 0) or 0)})


class GurobiSizeLimitError(errors.SolverError):
    """Gurobi refused the model: the size-limited (pip) licence allows at most 2,000 vars/rows."""


class GurobiBackend(Backend):
    """Gurobi through ``gurobipy``'s matrix API (``addMVar`` / ``addMConstr``); a callback
    terminates the solve at ``options.deadline`` or when ``options.cancel`` is set."""

    name = "gurobi"
    module = "gurobipy"
    _local = threading.local()  # Gurobi environments are not thread-safe: one per thread

    def _status_table(self, GRB: Any) -> dict[Any, tuple[Termination, Quality]]:
        T, Q = Termination, Quality
        return {GRB.OPTIMAL: (T.COMPLETED, Q.OPTIMAL),
                GRB.INFEASIBLE: (T.COMPLETED, Q.INFEASIBLE),
                GRB.INF_OR_UNBD: (T.ERROR, Q.NO_SOLUTION),
                GRB.UNBOUNDED: (T.ERROR, Q.NO_SOLUTION),
                GRB.TIME_LIMIT: (T.TIME_LIMIT, Q.FEASIBLE),
                GRB.INTERRUPTED: (T.INTERRUPTED, Q.FEASIBLE),
                GRB.NODE_LIMIT: (T.CAPPED, Q.FEASIBLE),
                GRB.ITERATION_LIMIT: (T.CAPPED, Q.FEASIBLE),
                GRB.SOLUTION_LIMIT: (T.CAPPED, Q.FEASIBLE),
                GRB.MEM_LIMIT: (T.CAPPED, Q.FEASIBLE)}

    def _get_env(self) -> Any:
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

    def _size_limited(self) -> bool:
        """Whether this thread's licence is the size-limited one: a model one variable over
        the limit is refused at once (milliseconds), so a big model is never loaded in
        vain (loading is not interruptible). Cached with the thread's environment."""
        import gurobipy as gp

        known = getattr(self._local, "size_limited", None)
        if known is None:
            m = gp.Model(env=self._get_env())
            try:
                m.addMVar(GUROBI_SIZE_LIMIT + 1)
                m.Params.TimeLimit = 1.0
                m.optimize()
                known = False
            except gp.GurobiError as exc:
                known = getattr(exc, "errno", None) == _GUROBI_SIZE_LIMITED_ERRNO
            finally:
                m.dispose()
            self._local.size_limited = known
        return known

    def _configure(self, m: Any, options: SolverOptions) -> None:
        m.Params.OutputFlag = 1 if options.verbose else 0
        limit = options.time_limit
        if math.isfinite(options.deadline):
            left = options.deadline - time.monotonic()
            limit = left if limit is None else min(limit, left)
        if limit is not None:
            m.Params.TimeLimit = max(float(limit), 1e-3)
        if options.mip_rel_gap is not None:
            m.Params.MIPGap = float(options.mip_rel_gap)
        m.Params.Threads = max(int(options.threads or 1), 1)
        if options.mip_abs_gap is not None:
            m.Params.MIPGapAbs = float(options.mip_abs_gap)
        if options.tolerance is not None:
            tol = max(float(options.tolerance), 1e-9)
            m.Params.FeasibilityTol = tol
            m.Params.IntFeasTol = tol

    def _load(self, m: Any, model: MipModel, GRB: Any) -> Any:
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
        return x

    def solve(self, model: MipModel, options: SolverOptions) -> MipResult:
        import gurobipy as gp
        from gurobipy import GRB

        t0 = time.perf_counter()
        if max(model.n_vars, model.n_rows) > GUROBI_SIZE_LIMIT and self._size_limited():
            raise GurobiSizeLimitError(f"model with {model.n_vars} variables and "
                                       f"{model.n_rows} rows (licence probed)")
        m = gp.Model(env=self._get_env())
        try:
            self._configure(m, options)
            x = self._load(m, model, GRB)
            if options.warm_start is not None:
                x.Start = np.asarray(options.warm_start, dtype=np.float64)

            def stop_when_due(mdl: Any, where: int) -> None:
                if time.monotonic() > options.deadline or (
                        options.cancel is not None and options.cancel.is_set()):
                    mdl.terminate()

            try:
                m.optimize(stop_when_due)
            except gp.GurobiError as exc:
                if getattr(exc, "errno", None) == _GUROBI_SIZE_LIMITED_ERRNO:
                    raise GurobiSizeLimitError(str(exc)) from None
                return MipResult(Termination.ERROR, Quality.NO_SOLUTION, backend=self.name,
                                 message=f"Gurobi error {getattr(exc, 'errno', '?')}: {exc}",
                                 wall_time=time.perf_counter() - t0)
            return self._result(m, x, model, GRB, gp, t0)
        finally:
            m.dispose()

    def _result(self, m: Any, x: Any, model: MipModel, GRB: Any, gp: Any,
                t0: float) -> MipResult:
        xv, obj = None, math.nan
        if m.SolCount > 0:
            xv = np.asarray(x.X, dtype=np.float64)
            obj = _finite_or_nan(m.ObjVal)
        has_int = bool(model.integrality.any())
        term, qual = self.outcome(self._status_table(GRB).get(m.Status), xv is not None)
        if has_int:
            try:
                bound = _finite_or_nan(m.ObjBound)
            except (AttributeError, gp.GurobiError):
                bound = math.nan
        else:
            bound = obj if qual is Quality.OPTIMAL else math.nan
        if qual is Quality.INFEASIBLE:
            bound = math.inf if model.sense == "min" else -math.inf
        return MipResult(term, qual, x=xv, objective=obj, dual_bound=bound, backend=self.name,
                         wall_time=time.perf_counter() - t0,
                         message=f"gurobi status {m.Status}",
                         stats={"nodes": int(m.NodeCount) if has_int else 0})


BACKENDS: dict[str, Backend] = {"highs": HighsBackend(), "gurobi": GurobiBackend()}


def available_backends() -> list[str]:
    """Names of installed backends (checked without importing the solver modules)."""
    return [name for name, b in BACKENDS.items() if b.available()]


def _pick(backend: str, model: MipModel, session: SolverSession,
          backends: dict[str, Backend]) -> list[Backend]:
    """Backends to try, in order."""
    if backend not in ("auto", *backends):
        raise errors.InvalidOptionError(
            f"unknown MIP backend {backend!r}; choose from auto, {', '.join(backends)}")
    gurobi, highs = backends.get("gurobi"), backends["highs"]
    if backend == "highs":
        return [highs]
    if backend == "gurobi":
        if gurobi is None or not gurobi.available():
            raise errors.SolverError("backend 'gurobi' requested but gurobipy is not installed "
                                     "(pip install gurobipy, or use backend='highs')")
        return [gurobi, highs]
    too_big = session.gurobi_size_limited and (
        model.n_vars > GUROBI_SIZE_LIMIT or model.n_rows > GUROBI_SIZE_LIMIT)
    if gurobi is not None and not too_big and gurobi.available() and gurobi.usable():
        return [gurobi, highs]
    return [highs]


def solve_model(model: MipModel, backend: str = "auto", *, time_limit: float | None = None,
                mip_rel_gap: float | None = None, threads: int = 1, verbose: bool = False,
                warm_start: np.ndarray | None = None, mip_abs_gap: float | None = None,
                tolerance: float | None = None, deadline: float = math.inf,
                cancel: threading.Event | None = None, session: SolverSession | None = None,
                backends: dict[str, Backend] | None = None) -> MipResult:
    """Solve ``model`` with a backend: ``"auto"`` (Gurobi if usable, else HiGHS), ``"highs"``
    or ``"gurobi"``.

    A Gurobi size-limit failure (licence error 10010) falls back to HiGHS with a logged
    notice and is remembered in ``session`` (per call chain, not per process); the
    result's ``backend`` names the solver that actually ran. ``time_limit`` (seconds)
    and ``deadline`` (absolute ``time.monotonic()``) bound the whole call, a fallback
    included; ``cancel`` stops it from another thread. ``mip_abs_gap`` and ``tolerance``
    (primal feasibility and integrality tolerance) are used when a dual bound becomes a
    certificate. ``backends`` replaces the registry (tests use a fake backend).
    """
    backends = BACKENDS if backends is None else backends
    session = session if session is not None else SolverSession()
    if time_limit is not None:
        if not time_limit > 0:
            raise errors.InvalidOptionError(f"time_limit must be > 0, got {time_limit!r}")
        deadline = min(deadline, time.monotonic() + time_limit)
    if warm_start is not None:
        warm_start = np.asarray(warm_start, dtype=np.float64).ravel()
        if warm_start.shape != (model.n_vars,):
            raise errors.InvalidOptionError(
                f"warm_start: expected {model.n_vars} values, got {warm_start.size}")
    opts = SolverOptions(mip_rel_gap=mip_rel_gap, threads=threads, verbose=verbose,
                         warm_start=warm_start, mip_abs_gap=mip_abs_gap, tolerance=tolerance,
                         deadline=deadline, cancel=cancel)
    t0 = time.perf_counter()
    note = ""
    for b in _pick(backend, model, session, backends):
        try:
            res = b.solve(model, opts)
        except GurobiSizeLimitError as exc:
            with session.lock:
                first = not session.gurobi_size_limited
                session.gurobi_size_limited = True
            if first:  # one notice per session, not one per parallel MIP
                log.warning("Gurobi's size-limited licence refused a model with %d variables "
                            "and %d constraints (error 10010); falling back to HiGHS",
                            model.n_vars, model.n_rows)
            note = f"fell back to HiGHS: {exc}"
            session.notes.append(note)
            continue
        if note:
            res.message = f"{note}; {res.message}"
            res.stats["fallback_from"] = "gurobi"
            res.wall_time = time.perf_counter() - t0
        return res
    raise errors.SolverError("no MIP backend could solve the model")  # pragma: no cover
