"""Certified lower bounds (DESIGN.md section 3) and the certificate step of ``solve()``.

:func:`certify` takes a method's result and attaches the best lower bound it can
prove within the remaining time budget: the combinatorial bounds
(:mod:`.combinatorial`), then MIP bounds (:mod:`.mip`): the exact MIP when it is
small enough (its incumbent may also improve the partition), else the
bottleneck-block relaxation and the guess-the-position relaxations, one small MIP
per position, solved in parallel threads where cores allow.

A MIP lower bound is the solver's *dual bound*, never its incumbent, rounded down
by :func:`safe_floor`. The gap is never reported smaller than proven.
"""
from __future__ import annotations

import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._runtime import Budget
from ..graph import Graph
from ..partition import Partition
from ..result import SolveResult, Status
from .combinatorial import CombinatorialBound, combinatorial_bound

__all__ = ["certify", "lower_bound", "safe_floor", "combinatorial_bound", "CombinatorialBound",
           "BoundReport",
           "mip_bounds", "CERT_TOLERANCE", "OPTIMAL_RTOL"]

log = logging.getLogger("pipecore.bounds")

#: primal feasibility / integrality tolerance asked of the solver for certificate MIPs.
CERT_TOLERANCE = 1e-9
#: UB <= LB * (1 + OPTIMAL_RTOL) counts as proven optimal (status "optimal"). It is
#: larger than the safe rounding of :func:`safe_floor` (relative ~1e-7 at most on
#: realistic costs), so a MIP that closed its gap is reported optimal; the reported
#: ``gap`` itself is always the honest UB/LB - 1.
OPTIMAL_RTOL = 1e-6
#: exact MIP is tried when (classes x k) binaries are at most this many.
EXACT_MAX_BINARIES = 4000
#: bounds phase budget when solve() runs without a time limit (seconds).
DEFAULT_BOUND_TIME = 30.0
#: MIP bounds are skipped on graphs with more colocation classes than this: the models'
#: LP relaxations do not solve within practical budgets there (a position MIP on 100k
#: nodes, k=64 overran a 5 s limit by 2 s and returned no dual bound), and HiGHS cannot
#: be interrupted while loading/presolving them. The combinatorial bound is reported.
MIP_MAX_CLASSES = 20_000
#: no new MIP is started with less than this many seconds left (loading one is not
#: interruptible, so a tiny budget would only overrun).
MIP_MIN_SECONDS = 0.5


def safe_floor(bound: float, graph: Graph, tolerance: float = CERT_TOLERANCE) -> float:
    """Round a solver dual bound down so tolerance effects cannot make it exceed the optimum.

    A solver accepts rows violated by up to ``tolerance`` and binaries off by up to
    ``tolerance``. In our chain models a stage-cost row has coefficients ``work``
    on ``x = y_j - y_{j-1}`` and ``comm`` on ``r, s`` whose defining rows involve
    two such x's, so the value of T can be underestimated by at most about
    ``tolerance * (1 + |T| + 3 (W + 2 C))`` with W the total work and C the total
    comm. We subtract twice that plus a relative 1e-12 for the rounding of the
    bound itself. Non-finite bounds give 0 (no bound).
    """
    if not math.isfinite(bound) or bound <= 0:
        return 0.0
    scale = float(graph.work.sum()) + 2.0 * float(graph.comm.sum())
    eps = 2.0 * tolerance * (1.0 + abs(bound) + 3.0 * scale) + 1e-12 * abs(bound)
    return max(0.0, bound - eps)


@dataclass
class BoundReport:
    """Outcome of the bounds phase: best proven LB, its source, and what each bound gave."""

    lower_bound: float
    method: str
    combinatorial: float
    mip: float = 0.0
    mip_method: str = ""
    details: dict = field(default_factory=dict)
    partition: Partition | None = None     # a better partition found by the exact MIP
    timings: dict = field(default_factory=dict)


def _instance(graph, k, mem_cap):
    from .mip.formulations import PipelineInstance

    return PipelineInstance.build(graph, k, mem_cap)


def _solve_chain(cm, *, time_limit, backend, ub, warm, threads=1, gap=None):
    from .mip import solve_model

    kwargs: dict[str, Any] = dict(time_limit=time_limit, threads=threads,
                                  tolerance=CERT_TOLERANCE, mip_abs_gap=1e-10,
                                  mip_rel_gap=1e-9 if gap is None else gap)
    res = solve_model(cm.model, backend=backend, warm_start=warm, **kwargs)
    return res


def mip_bounds(graph: Graph, k: int, mem_cap: float | None = None, *,
               partition: Partition | None = None, time_limit: float | None = 30.0,
               backend: str = "auto", comb: float = 0.0, jobs: int | None = None,
               exact: bool | None = None, positions=None, window: int = 1,
               block: bool = False, inst=None) -> BoundReport:
    """MIP lower bounds within ``time_limit`` seconds (see module docstring).

    ``exact``: None = try the exact MIP when it is small (<= EXACT_MAX_BINARIES
    binaries); ``positions``: which positions to solve (default: ends first, then
    bisection order, as many as the budget allows); ``window``: stages modelled
    exactly per position; ``block``: also solve the bottleneck-block relaxation
    (never stronger than a solved position, so off by default); ``jobs``: parallel
    MIPs (default: number of CPUs). Returns the best safe bound. Skips every MIP
    when ``comb`` already reaches the partition's bottleneck.
    """
    from .mip.formulations import block_model, exact_model, part_of_stage, position_model

    t0 = time.perf_counter()
    budget = Budget(time_limit)
    inst = inst or _instance(graph, k, mem_cap)
    ub = partition.bottleneck if partition is not None else math.inf
    t_upper = ub * (1 + 1e-9) + 1e-12 if math.isfinite(ub) else math.inf
    stage_c = inst.class_stage(partition.stage) if partition is not None else None
    best, best_m = 0.0, ""
    details: dict[str, Any] = {}
    better: Partition | None = None
    jobs = max(1, jobs or int(os.environ.get("PIPECORE_THREADS") or 0) or os.cpu_count() or 1)
    if comb >= ub * (1 - 1e-12):
        return BoundReport(comb, "combinatorial", comb, 0.0, "", {"skipped": "comb >= UB"},
                           None, {"mip": 0.0})
    if inst.q > MIP_MAX_CLASSES:
        return BoundReport(comb, "combinatorial", comb, 0.0, "",
                           {"skipped": f"{inst.q} classes > MIP_MAX_CLASSES={MIP_MAX_CLASSES}"},
                           None, {"mip": time.perf_counter() - t0})

    def share(frac):
        rem = budget.remaining()
        return None if math.isinf(rem) else max(rem * frac, 0.05)

    # 1. exact MIP when small
    if exact is None:
        exact = inst.q * k <= EXACT_MAX_BINARIES
    if exact and not budget.expired():
        cm = exact_model(inst, t_lower=comb, t_upper=t_upper)
        warm = cm.warm_start(part_of_stage("exact", k, stage_c)) if stage_c is not None else None
        res = _solve_chain(cm, time_limit=share(0.6 if k > 1 else 1.0), backend=backend, ub=ub,
                           warm=warm, threads=1)
        lb = safe_floor(res.dual_bound, graph) if res.status != "infeasible" else 0.0
        details["exact"] = {"status": res.status, "dual_bound": res.dual_bound, "lb": lb,
                            "objective": res.objective, "time": res.wall_time, "backend": res.backend}
        if lb > best:
            best, best_m = lb, "mip:exact"
        if res.x is not None:
            st = cm.decode_stage(res.x)
            cand = Partition(graph, st, k)
            if cand.is_valid(mem_cap) and cand.bottleneck < ub:
                better, ub = cand, cand.bottleneck
        if res.status == "optimal" or best >= ub * (1 - 1e-12):
            return BoundReport(best, best_m, comb, best, best_m, details, better,
                               {"mip": time.perf_counter() - t0})
    # 2. bottleneck-block relaxation (one MIP, fast) then positions (one MIP each)
    tasks = []
    if block and k > 1:
        tasks.append(("block", None))
    if k > 1:
        if positions is None:
            positions = _position_order(k, window)[:_max_positions(inst, k, budget.remaining(), jobs)]
        tasks += [("position", i) for i in positions]
    else:
        tasks.append(("position", 0))

    def run(task, tl):
        kind, i = task
        if kind == "block":
            cm = block_model(inst, t_lower=comb, t_upper=t_upper)
            warm = None
            if stage_c is not None and partition is not None:
                b = int(np.argmax(partition.stage_costs()))
                warm = cm.warm_start(np.where(stage_c < b, 0, np.where(stage_c == b, 1, 2)))
        else:
            cm = position_model(inst, i, window=window, t_lower=comb, t_upper=t_upper)
            warm = (cm.warm_start(part_of_stage("position", k, stage_c, i, window))
                    if stage_c is not None else None)
        res = _solve_chain(cm, time_limit=tl, backend=backend, ub=ub, warm=warm)
        return task, res

    n_tasks = len(tasks)
    done = 0
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending = []
        it = iter(tasks)
        while True:
            while len(pending) < jobs and budget.remaining() > MIP_MIN_SECONDS:
                task = next(it, None)
                if task is None:
                    break
                left = n_tasks - done - len(pending)
                rem = budget.remaining()
                tl = None if math.isinf(rem) else max(rem * jobs / max(left, 1), 0.2)
                if tl is not None:
                    tl = min(tl, rem)
                pending.append(pool.submit(run, task, tl))
            if not pending:
                break
            fut = pending.pop(0)
            (kind, i), res = fut.result()
            done += 1
            lb = safe_floor(res.dual_bound, graph) if res.status != "infeasible" else 0.0
            name = "block" if kind == "block" else f"position[{i}]"
            details[name] = {"status": res.status, "dual_bound": res.dual_bound, "lb": lb,
                             "time": res.wall_time, "backend": res.backend}
            if lb > best:
                best, best_m = lb, f"mip:{name}"
            if best >= ub * (1 - 1e-12):
                for f in pending:
                    f.cancel()
                break
    return BoundReport(best, best_m, comb, best, best_m, details, better,
                       {"mip": time.perf_counter() - t0})


def _position_order(k: int, window: int = 1) -> list[int]:
    """Positions 0..k-window: both ends first (one side empty: the most structure),
    then bisection order (middle, quarters, ...) so any prefix is spread evenly."""
    last = max(k - window, 0)
    out = [0] + ([last] if last > 0 else [])
    seen = set(out)
    queue = [(0, last)]
    while queue:
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
    out += [i for i in range(last + 1) if i not in seen]
    return out


def _max_positions(inst, k: int, time_limit: float | None, jobs: int) -> int:
    """How many position MIPs fit: each needs at least ~max(0.5 s, q / 1000 s) to get
    past its root LP on q classes, so a short budget solves fewer positions, each
    long enough to produce a bound (every position is valid on its own)."""
    if time_limit is None or math.isinf(time_limit):
        return k
    per = max(0.5, inst.q / 1000.0)
    return max(min(k, jobs), min(k, int(time_limit * jobs / per)))


def lower_bound(graph: Graph, k: int, mem_cap: float | None = None, *,
                time_limit: float | None = 30.0, partition: Partition | None = None,
                mip: bool = True, **mip_options) -> BoundReport:
    """The best lower bound provable in ``time_limit``: combinatorial, then MIP bounds."""
    t0 = time.perf_counter()
    comb = combinatorial_bound(graph, k, mem_cap)
    t_comb = time.perf_counter() - t0
    rep = BoundReport(comb.value, comb.method, comb.value, timings={"combinatorial": t_comb})
    if mip:
        rem = None if time_limit is None else max(time_limit - t_comb, 0.05)
        m = mip_bounds(graph, k, mem_cap, partition=partition, time_limit=rem,
                       comb=comb.value, **mip_options)
        rep.mip, rep.mip_method, rep.details, rep.partition = m.mip, m.mip_method, m.details, m.partition
        rep.timings.update(m.timings)
        if m.mip > rep.lower_bound:
            rep.lower_bound, rep.method = m.mip, m.mip_method
    rep.details["combinatorial_parts"] = comb.parts
    return rep


def _jsonable(obj):
    """Details with non-finite floats as None (strict JSON) and numpy scalars as floats."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def certify(result: SolveResult, *, graph: Graph, k: int, mem_cap: float | None = None,
            budget: Budget | None = None, method: str = "", mip: bool = True,
            mip_backend: str = "auto", jobs: int | None = None, **_) -> SolveResult:
    """Attach a proven lower bound to ``result`` (the post-step ``solve()`` calls).

    Uses what is left of ``budget`` (or :data:`DEFAULT_BOUND_TIME` seconds when it is
    unlimited). Keeps a method's own bound when it is better (an exact method's),
    swaps in a better partition found by the exact MIP, and sets status ``optimal``
    when UB <= LB (1 + OPTIMAL_RTOL).
    """
    t0 = time.perf_counter()
    part = result.partition
    ub = result.upper_bound if part is not None else math.inf
    own_lb = result.lower_bound if result.lower_bound and math.isfinite(result.lower_bound) else 0.0
    if part is not None and own_lb >= ub * (1 - OPTIMAL_RTOL):
        # the method proved optimality itself (exact DP); still record the combinatorial bound
        comb = combinatorial_bound(graph, k, mem_cap)
        result.stats.setdefault("lb_combinatorial", comb.value)
        result.timings["bounds"] = time.perf_counter() - t0
        result.status = Status.OPTIMAL
        result.lower_bound_method = result.lower_bound_method or method
        return result
    rem = budget.remaining() if budget is not None else math.inf
    tl = DEFAULT_BOUND_TIME if math.isinf(rem) else max(rem, 0.05)
    try:
        rep = lower_bound(graph, k, mem_cap, time_limit=tl, partition=part, mip=mip,
                          backend=mip_backend, jobs=jobs)
    except KeyboardInterrupt:
        rep = BoundReport(combinatorial_bound(graph, k, mem_cap).value, "combinatorial",
                          0.0)
        result.status = Status.INTERRUPTED
    if rep.partition is not None and rep.partition.bottleneck < ub:
        if part is None and result.status in (Status.NO_SOLUTION, Status.CAPPED):
            result.status = Status.FEASIBLE
        result.partition = part = rep.partition
        result.upper_bound = ub = rep.partition.bottleneck
        result.method = f"{result.method}+mip" if result.method else "mip"
    exact = rep.details.get("exact")
    if part is None and isinstance(exact, dict) and exact.get("status") == "infeasible":
        result.status = Status.INFEASIBLE
        result.message = (result.message + " " if result.message else "") + \
            "The exact MIP proves that no partition meets the memory cap."
    if rep.lower_bound > own_lb:
        result.lower_bound, result.lower_bound_method = rep.lower_bound, rep.method
    elif own_lb > 0:
        result.lower_bound_method = result.lower_bound_method or method
    if math.isfinite(ub) and result.lower_bound > ub:
        result.lower_bound = ub  # tolerance noise only: the optimum is at most UB
    result.stats["lb_combinatorial"] = rep.combinatorial
    result.stats["lb_mip"] = rep.mip
    result.stats["lb_mip_method"] = rep.mip_method
    result.stats["bounds"] = _jsonable(rep.details)
    for key, val in rep.timings.items():
        result.timings[f"lb_{key}"] = val
    result.timings["bounds"] = time.perf_counter() - t0
    if part is not None and ub <= result.lower_bound * (1 + OPTIMAL_RTOL):
        result.status = Status.OPTIMAL
    return result
