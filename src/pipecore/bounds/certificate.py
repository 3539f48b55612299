"""The certificate step of ``solve()``: the best lower bound provable in the budget left.

:func:`quick_bound` (combinatorial, microseconds to milliseconds) runs first in every
solve, so the search can stop as soon as it meets it. :func:`certify` then runs the
destructive bounds that scale (the component bound of :mod:`.components`, the station
bound of :mod:`.stations`) and adds MIP bounds (:mod:`.mip`) within what is left of the
solve's budget: the exact MIP when it is small enough (its incumbent may also improve the
partition), else the guess-the-position relaxations, one small MIP per position, in
parallel threads where cores allow. A MIP lower bound is the solver's *dual bound*, never its
incumbent, rounded down by :func:`safe_floor`. The gap is never reported smaller
than proven.
"""
from __future__ import annotations

import logging
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._runtime import FLOORS, Budget, ProgressFn, clock, no_progress
from ..options import Option, OptionSet
from ..partition import Partition
from ..problem import ROUND_RTOL, Problem
from ..result import Phase, Quality, Termination, worst_termination
from .combinatorial import combinatorial_bound

__all__ = ["certify", "quick_bound", "safe_floor", "mip_bounds", "Certificate",
           "CERTIFICATE_OPTIONS", "CERT_TOLERANCE", "MIP_MAX_CLASSES"]

log = logging.getLogger("pipecore.bounds")

#: primal feasibility / integrality tolerance asked of the solver for certificate MIPs.
CERT_TOLERANCE = 1e-9
#: longest the local min-cut scan of :func:`quick_bound` may run (ms on every graph measured).
QUICK_CUT_SECONDS = 2.0
#: largest share of the remaining budget the component bound (:mod:`.components`) may use.
COMPONENT_SHARE = 0.2
#: largest share of the remaining budget the station bound (:mod:`.stations`) may use.
STATION_SHARE = 0.3
#: exact MIP is tried when (classes x k) binaries are at most this many.
EXACT_MAX_BINARIES = 4000
#: MIP bounds are skipped on graphs with more colocation classes than this: their LP
#: relaxations do not solve within practical budgets there; the other bounds are reported.
MIP_MAX_CLASSES = 20_000

CERTIFICATE_OPTIONS = OptionSet("the certificate", [
    Option("mip", bool, True, help="prove bounds with MIP relaxations (else combinatorial only)"),
    Option("mip_backend", str, "auto", choices=("auto", "highs", "gurobi"),
           help="MIP solver (auto: Gurobi when installed and licensed, else HiGHS)"),
    Option("jobs", int, None, minimum=1, maximum=256, nullable=True,
           help="MIPs solved in parallel (default: the number of CPUs)"),
])


def safe_floor(bound: float, problem: Problem, tolerance: float = CERT_TOLERANCE) -> float:
    """Round a solver dual bound down so tolerance effects cannot make it exceed the optimum.

    A solver accepts rows violated by up to ``tolerance`` and binaries off by up to
    ``tolerance``. In our chain models a stage-cost row has coefficients ``work``
    on ``x = y_j - y_{j-1}`` and ``comm`` on ``r, s`` whose defining rows involve
    two such x's, so the value of T can be underestimated by at most about
    ``tolerance * (1 + |T| + 3 (W + 2 C))`` with W the total work and C the total
    comm. We subtract twice that plus a relative ``ROUND_RTOL`` for the rounding of
    the bound itself. Non-finite bounds give 0 (no bound).
    """
    if not math.isfinite(bound) or bound <= 0:
        return 0.0
    g = problem.graph
    scale = float(g.work.sum()) + 2.0 * float(g.comm.sum())
    eps = 2.0 * tolerance * (1.0 + abs(bound) + 3.0 * scale) + ROUND_RTOL * abs(bound)
    return max(0.0, bound - eps)


def quick_bound(problem: Problem, deadline: float = math.inf) -> tuple[float, str]:
    """The combinatorial bounds and the local min-cut bound (:mod:`.cuts`), the best with its
    name. O(n + m log m) plus one small max flow per class that could beat the rest; the
    flows stop at ``deadline`` (monotonic clock) or after ``QUICK_CUT_SECONDS``."""
    from .cuts import local_cut_bound

    comb = combinatorial_bound(problem.graph, problem.k_eff, problem.mem_cap)
    cut, _ = local_cut_bound(problem, comb.value,
                             deadline=min(deadline, clock() + QUICK_CUT_SECONDS))
    if cut > comb.value:
        return cut, "cut:local"
    return comb.value, comb.method


def mip_bounds_apply(problem: Problem) -> bool:
    """Whether the certificate will try MIP bounds on this problem."""
    return problem.n_classes <= MIP_MAX_CLASSES


def exact_mip_applies(problem: Problem) -> bool:
    """Whether the certificate will try the exact MIP (which also searches partitions)."""
    return mip_bounds_apply(problem) and problem.n_classes * problem.k_eff <= EXACT_MAX_BINARIES


@dataclass
class Certificate:
    """Outcome of :func:`certify`: the best proven bound, its source and the phases run."""

    lower_bound: float = 0.0
    source: str = ""
    phases: list[Phase] = field(default_factory=list)
    partition: Partition | None = None     # a better partition found by the exact MIP
    infeasible: bool = False               # the exact MIP proved no partition exists
    details: dict[str, Any] = field(default_factory=dict)


def _position_order(k: int, window: int = 1, limit: int | None = None) -> list[int]:
    """Positions 0..k-window: both ends first (one side empty: the most structure),
    then bisection order (middle, quarters, ...) so any prefix is spread evenly.
    Stops after ``limit`` positions (O(limit) time and memory, whatever k is)."""
    last = max(k - window, 0)
    limit = last + 1 if limit is None else min(limit, last + 1)
    out = [0] + ([last] if last > 0 else [])
    seen = set(out)
    queue = [(0, last)]
    while queue and len(out) < limit:
        nxt = []
        for lo, hi in queue:
            if hi - lo < 2:
                continue
            mid = (lo + hi) // 2
            if mid not in seen:
                seen.add(mid)
                out.append(mid)
            nxt += [(lo, mid), (mid, hi)]
        queue = nxt
    i = 0
    while len(out) < limit:  # only reached when bisection missed some (k small)
        if i not in seen:
            out.append(i)
            seen.add(i)
        i += 1
    return out[:limit]


def _max_positions(q: int, k: int, seconds: float, jobs: int) -> int:
    """How many position MIPs fit: each needs at least ~max(0.5 s, q / 1000 s) to get
    past its root LP on q classes, so a short budget solves fewer positions, each
    long enough to produce a bound (every position is valid on its own)."""
    if math.isinf(seconds):
        return k
    per = max(FLOORS["mip"], q / 1000.0)
    return max(min(k, jobs), min(k, int(seconds * jobs / per)))


class _MipRunner:
    """The MIP part of a certificate: exact MIP, then positions, sharing one deadline."""

    def __init__(self, problem: Problem, partition: Partition | None, budget: Budget,
                 comb: float, backend: str, jobs: int | None):
        from .mip import SolverSession
        from .mip.formulations import PipelineInstance

        self.problem, self.budget, self.comb, self.backend = problem, budget, comb, backend
        self.inst = PipelineInstance.build(problem)
        self.k = self.inst.k
        self.ub = partition.bottleneck if partition is not None else math.inf
        self.t_upper = self.ub * (1 + 1e-9) + 1e-12 if math.isfinite(self.ub) else math.inf
        self.stage_c = (self.inst.class_stage(_compact(partition.stage))
                        if partition is not None else None)
        self.jobs = max(1, jobs or int(os.environ.get("PIPECORE_THREADS") or 0)
                        or os.cpu_count() or 1)
        self.session = SolverSession()
        self.cancel = threading.Event()
        self.best, self.best_src = 0.0, ""
        self.details: dict[str, Any] = {}
        self.better: Partition | None = None
        self.infeasible = False
        self.termination = Termination.COMPLETED

    def solve(self, cm: Any, warm: np.ndarray | None, deadline: float) -> Any:
        from .mip import solve_model

        return solve_model(cm.model, backend=self.backend, warm_start=warm, threads=1,
                           tolerance=CERT_TOLERANCE, mip_abs_gap=1e-10, mip_rel_gap=1e-9,
                           deadline=deadline, cancel=self.cancel, session=self.session)

    def _note(self, name: str, res: Any) -> None:
        lb = safe_floor(res.dual_bound, self.problem) if res.quality is not Quality.INFEASIBLE \
            else 0.0
        self.details[name] = {"termination": res.termination.value,
                              "quality": res.quality.value, "dual_bound": res.dual_bound,
                              "lb": lb, "time": res.wall_time, "backend": res.backend}
        if res.termination is not Termination.COMPLETED:
            self.termination = worst_termination(self.termination, res.termination)
        if lb > self.best:
            self.best, self.best_src = lb, f"mip:{name}"

    def closed(self) -> bool:
        return self.best >= self.ub * (1 - ROUND_RTOL)

    def exact(self) -> None:
        from .mip.formulations import exact_model, part_of_stage

        if self.budget.remaining() < FLOORS["mip"]:
            return
        cm = exact_model(self.inst, t_lower=self.comb, t_upper=self.t_upper)
        warm = (cm.warm_start(part_of_stage("exact", self.k, self.stage_c))
                if self.stage_c is not None else None)
        share = 0.6 if self.k > 1 else 1.0
        deadline = clock() + self.budget.remaining() * share if self.budget.limited else math.inf
        res = self.solve(cm, warm, deadline)
        self._note("exact", res)
        if res.quality is Quality.INFEASIBLE and not math.isfinite(self.ub):
            self.infeasible = True
        if res.x is not None:
            cand = self.problem.expand(cm.decode_stage(res.x))
            if self.problem.is_valid(cand) and cand.bottleneck < self.ub:
                self.better, self.ub = cand, cand.bottleneck

    def positions(self) -> None:
        """One MIP per position, ``jobs`` at a time, each with a fair share of the time."""
        from .mip.formulations import part_of_stage, position_model

        rem = self.budget.remaining()
        count = _max_positions(self.inst.q, self.k, rem, self.jobs)
        todo = _position_order(self.k, 1, count) if self.k > 1 else [0]

        def run(i: int, deadline: float) -> tuple[int, Any]:
            cm = position_model(self.inst, i, t_lower=self.comb, t_upper=self.t_upper)
            warm = (cm.warm_start(part_of_stage("position", self.k, self.stage_c, i))
                    if self.stage_c is not None else None)
            return i, self.solve(cm, warm, deadline)

        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            try:
                self._drive(pool, todo, run)
            except BaseException:
                self.cancel.set()   # running MIPs stop within ~50 ms; then the pool exits
                raise

    def _drive(self, pool: ThreadPoolExecutor, todo: list[int], run: Any) -> None:
        pending: list[Any] = []
        it = iter(todo)
        left = len(todo)
        while True:
            while len(pending) < self.jobs and self.budget.remaining() > FLOORS["mip"]:
                i = next(it, None)
                if i is None:
                    break
                rem = self.budget.remaining()
                per = rem * self.jobs / max(left, 1) if self.budget.limited else math.inf
                deadline = clock() + min(max(per, FLOORS["mip"]), rem)
                pending.append(pool.submit(run, i, deadline))
                left -= 1
            if not pending:
                break
            i, res = _wait_first(pending)
            self._note(f"position[{i}]", res)
            if self.closed():
                self.cancel.set()
                break


def _wait_first(pending: list[Any]) -> tuple[int, Any]:
    """Pop the oldest future and return its result, staying responsive to Ctrl-C."""
    fut = pending.pop(0)
    while True:
        try:
            return fut.result(timeout=0.1)
        except FutureTimeout:
            continue


def _compact(stage: np.ndarray) -> np.ndarray:
    """A stage vector with empty stages dropped (the models have k_eff parts)."""
    return np.unique(stage, return_inverse=True)[1]


def mip_bounds(problem: Problem, partition: Partition | None = None, *,
               budget: Budget | None = None, comb: float = 0.0, backend: str = "auto",
               jobs: int | None = None, exact: bool | None = None) -> Certificate:
    """MIP lower bounds within ``budget`` (default: unlimited): the exact MIP when it is
    small (``exact=None``: at most ``EXACT_MAX_BINARIES`` binaries), then the
    guess-the-position relaxations. Returns the best safe bound; skips every MIP when
    ``comb`` already reaches the partition's bottleneck."""
    budget = budget or Budget(None)
    started = clock()
    cert = Certificate()
    if problem.n_classes > MIP_MAX_CLASSES:
        cert.details["skipped"] = f"{problem.n_classes} classes > MIP_MAX_CLASSES"
        return cert
    runner = _MipRunner(problem, partition, budget, comb, backend, jobs)
    if comb >= runner.ub * (1 - ROUND_RTOL):
        cert.details["skipped"] = "the combinatorial bound meets the partition"
        return cert
    term = Termination.COMPLETED
    try:
        if exact if exact is not None else exact_mip_applies(problem):
            runner.exact()
        if not runner.closed() and not runner.infeasible and runner.k > 1:
            runner.positions()
    except KeyboardInterrupt:
        runner.cancel.set()
        term = Termination.INTERRUPTED
    term = worst_termination(term, runner.termination)
    if budget.limited and budget.expired() and term is Termination.COMPLETED:
        term = Termination.TIME_LIMIT
    cert.lower_bound, cert.source = runner.best, runner.best_src
    cert.partition, cert.infeasible, cert.details = runner.better, runner.infeasible, runner.details
    cert.phases.append(Phase("bound:mip", clock() - started, term,
                             runner.ub, runner.best, {"mips": len(runner.details)}))
    return cert


def certify(problem: Problem, partition: Partition | None, *, budget: Budget,
            lower_bound: float = 0.0, progress: ProgressFn = no_progress, mip: bool = True,
            mip_backend: str = "auto", jobs: int | None = None) -> Certificate:
    """Prove the best lower bound possible in what is left of ``budget``.

    ``lower_bound`` is what is already proven (the combinatorial bound, an exact
    method's own bound); the certificate only ever raises it. Without time left or
    when the bound already meets the partition, nothing runs.
    """
    cert = Certificate(lower_bound=lower_bound)
    ub = partition.bottleneck if partition is not None else math.inf
    if lower_bound >= ub * (1 - ROUND_RTOL) or budget.expired():
        return cert
    progress(budget.fraction(), ub)
    mips = mip and mip_bounds_apply(problem)
    from .components import component_bound
    from .stations import station_bound

    lower = _bound_phase(component_bound, "components", problem, lower_bound, ub, budget,
                         cert, COMPONENT_SHARE)
    station = _bound_phase(station_bound, "station", problem, lower, ub, budget, cert,
                           STATION_SHARE if mips else 1.0)
    if not mip or station >= ub * (1 - ROUND_RTOL):
        return cert
    got = mip_bounds(problem, partition, budget=budget, comb=station, backend=mip_backend,
                     jobs=jobs)
    got.phases[:0] = cert.phases
    for name in ("components", "station"):
        got.details[name] = cert.details.get(name)
    if got.lower_bound <= station:
        got.lower_bound, got.source = cert.lower_bound, cert.source
    progress(1.0, ub)
    return got


def _bound_phase(bound: Any, source: str, problem: Problem, lower: float, ub: float,
                 budget: Budget, cert: Certificate, share: float) -> float:
    """One destructive bound (``bound(problem, lower, ub, deadline=...)``: the component
    bound of :mod:`.components` or the station bound of :mod:`.stations`) with at most
    ``share`` of the budget left; raises ``cert`` (source ``source``) when it beats
    ``lower`` and returns the best bound so far."""
    started = clock()
    deadline = clock() + budget.remaining() * share if budget.limited else math.inf
    value, details = bound(problem, lower, ub, deadline=deadline)
    cert.details[source] = details
    if "skipped" in details:
        return lower
    cert.phases.append(Phase(f"bound:{source}", clock() - started, Termination.COMPLETED,
                             ub, value, {"steps": details.get("steps", 0)}))
    if value > lower:
        cert.lower_bound, cert.source = value, source
    return max(value, lower)
