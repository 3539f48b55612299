"""Local search, simulated annealing, and the polish step applied to every solver's output.

Moves keep every edge forward and colocation classes whole (see
:mod:`pipecore._native._local`): a class to an adjacent stage, a swap between
adjacent stages, and a local boundary shift (a class with its in-stage
descendants or ancestors). Cost changes are O(degree) incremental updates plus
O(k) to read the new maximum.

* ``solve_local``: first-improvement descent on (bottleneck, sum of squared stage
  costs) from the better of the 1-D baselines.
* ``solve_anneal``: Metropolis annealing with a geometric temperature schedule on
  ``max + lam * rms`` of the stage costs, then descent from the best state.
* ``polish_result``: descent on any result's partition with a small share of the
  remaining budget; it keeps the partition valid and never returns a worse one.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .._native import _local
from .._runtime import Budget, no_progress
from ..graph import Graph, check_k
from ..partition import Partition
from ..result import SolveResult, Status

__all__ = ["solve_local", "solve_anneal", "polish_result", "polish_partition"]


def _start_partition(graph: Graph, con, k: int, mem_cap) -> Partition | None:
    """The best valid baseline (balanced / uniform, memory-aware), else the optimal slicing of
    the BFS order (which respects the cap whenever any slicing of it does), else None."""
    from .baselines import balanced_split, uniform_split

    best = None
    for fn in (balanced_split, uniform_split):
        p = fn(graph, k, mem_cap=mem_cap)
        if p is not None and p.is_valid(mem_cap) and (best is None or p.bottleneck < best.bottleneck):
            best = p
    if best is None:
        from .slicegraph import _make_slicer, expand_order

        order = expand_order(con, con.graph.topological_order())
        val, stage, _ = _make_slicer(graph, con, k, mem_cap).slice_order(order)
        if math.isfinite(val):
            best = Partition(graph, stage, k)
    return best


def _deadline(budget: Budget, share: float = 1.0) -> float:
    rem = budget.remaining()
    return _local.clock() + rem * share if math.isfinite(rem) else math.inf


def polish_partition(part: Partition, mem_cap=None, *, deadline: float = math.inf, seed=0,
                     max_sweeps: int = 200) -> Partition:
    """Descent from ``part``; returns a valid partition no worse than ``part``."""
    graph, k = part.graph, part.k
    if k < 2 or not part.is_valid(mem_cap):
        return part
    con = graph.contract()
    st = _local.LocalState(graph, con, k, mem_cap, part.stage, _seed64(seed))
    st.deadline = deadline
    st.descent(max_sweeps)
    val, stage = st.best()
    cand = Partition(graph, stage, k)
    if cand.bottleneck < part.bottleneck and cand.is_valid(mem_cap):
        return cand
    return part


def _seed64(seed) -> int:
    return int(np.random.default_rng(seed).integers(1, 2**63 - 1))


def polish_result(result: SolveResult, *, mem_cap=None, budget: Budget | None = None, seed=0,
                  share: float = 0.15) -> SolveResult:
    """Polish a solver's partition by descent, using ``share`` of the remaining budget.

    Skipped when there is no partition, it is proven optimal, or the user interrupted
    the solve (Ctrl-C asks for an answer now). The result keeps its
    status and method; ``upper_bound`` only ever decreases, and ``stats["polish_gain"]``
    records the improvement.
    """
    if result.partition is None or result.status in (Status.OPTIMAL, Status.INTERRUPTED):
        return result
    budget = budget or Budget(None)
    t0 = time.perf_counter()
    before = result.partition.bottleneck
    try:
        part = polish_partition(result.partition, mem_cap, deadline=_deadline(budget, share),
                                seed=seed)
    except KeyboardInterrupt:
        return result
    gain = before - part.bottleneck
    result.timings["polish"] = time.perf_counter() - t0
    result.stats["polish_gain"] = float(gain)
    if gain > 0:
        result.partition = part
        result.upper_bound = part.bottleneck
    return result


def _prepare(graph, k, mem_cap, name):
    k = check_k(k)
    con = graph.contract()
    start = _start_partition(graph, con, k, mem_cap)
    if start is None:
        return k, con, None, SolveResult(None, status=Status.NO_SOLUTION, method=name,
                                         message="no valid starting partition under the memory cap")
    return k, con, start, None


def solve_local(graph: Graph, k: int, *, mem_cap=None, budget: Budget | None = None, seed=0,
                progress=None, max_sweeps: int = 1000, **_) -> SolveResult:
    """Descent from the better 1-D baseline until a local optimum, ``max_sweeps`` or the budget."""
    budget = budget or Budget(None)
    progress = progress or no_progress
    t0 = time.perf_counter()
    k, con, start, fail = _prepare(graph, k, mem_cap, "local")
    if fail is not None:
        return fail
    status = Status.FEASIBLE
    st = _local.LocalState(graph, con, k, mem_cap, start.stage, _seed64(seed))
    st.deadline = _deadline(budget, 0.9)
    sweeps = 0
    try:
        while sweeps < max_sweeps:
            improved = st.descent(5)
            sweeps += 5
            progress(budget.fraction() if budget.time_limit else min(1.0, sweeps / max_sweeps),
                     st.best()[0])
            if improved == 0:
                break
            if budget.expired() or _local.clock() > st.deadline:
                status = Status.TIME_LIMIT
                break
    except KeyboardInterrupt:
        status = Status.INTERRUPTED
    part = _best_of(graph, k, st, start, mem_cap)
    return SolveResult(part, upper_bound=part.bottleneck, status=status, method="local",
                       stats={"sweeps": sweeps, "moves": int(st.moves_done)},
                       timings={"local": time.perf_counter() - t0})


def _best_of(graph, k, st, start: Partition, mem_cap) -> Partition:
    val, stage = st.best()
    cand = Partition(graph, stage, k)
    if cand.is_valid(mem_cap) and cand.bottleneck <= start.bottleneck:
        return cand
    return start


def solve_anneal(graph: Graph, k: int, *, mem_cap=None, budget: Budget | None = None, seed=0,
                 progress=None, steps: int | None = None, t_start: float = 0.03,
                 t_end: float = 1e-4, lam: float = 0.1, p_swap: float = 0.15,
                 p_shift: float = 0.15, max_shift: int = 16, **_) -> SolveResult:
    """Simulated annealing from the better 1-D baseline, then descent.

    Temperatures are relative to the starting bottleneck (``t_start``, ``t_end``) and
    decay geometrically over ``steps`` moves (default ``max(200_000, 200 q)``; with a
    time limit and no ``steps`` the schedule follows the clock instead). Deterministic
    for a seed when no time limit cuts the run short.
    """
    budget = budget or Budget(None)
    progress = progress or no_progress
    t0 = time.perf_counter()
    k, con, start, fail = _prepare(graph, k, mem_cap, "anneal")
    if fail is not None:
        return fail
    scale = max(start.bottleneck, 1e-300)
    T0, T1 = t_start * scale, t_end * scale
    st = _local.LocalState(graph, con, k, mem_cap, start.stage, _seed64(seed))
    by_clock = steps is None and budget.time_limit is not None
    total = int(steps or max(200_000, 200 * con.graph.n))
    st.deadline = _deadline(budget, 0.85)
    anneal_end = st.deadline
    status = Status.FEASIBLE
    done = 0
    chunk = 50_000
    try:
        if by_clock:
            t_begin = _local.clock()
            span = max(anneal_end - t_begin, 1e-6)
            while True:
                f0 = min(1.0, (_local.clock() - t_begin) / span)
                if f0 >= 1.0:
                    break
                c0 = _local.clock()
                f1 = min(1.0, f0 + 0.02)
                st.anneal(chunk, T0 * (T1 / T0) ** f0, T0 * (T1 / T0) ** f1, lam, p_swap,
                          p_shift, max_shift)
                done += chunk
                dt = _local.clock() - c0
                # size chunks to ~2% of the anneal span each
                chunk = int(max(1000, min(5_000_000, chunk * (0.02 * span) / max(dt, 1e-6))))
                progress(budget.fraction(), st.best()[0])
        else:
            while done < total:
                n_now = min(chunk, total - done)
                f0, f1 = done / total, (done + n_now) / total
                st.anneal(n_now, T0 * (T1 / T0) ** f0, T0 * (T1 / T0) ** f1, lam, p_swap,
                          p_shift, max_shift)
                done += n_now
                progress(budget.fraction() if budget.time_limit else done / total, st.best()[0])
                if _local.clock() > st.deadline:
                    status = Status.TIME_LIMIT
                    break
        st.restore_best()
        st.deadline = _deadline(budget, 0.9)
        st.descent(200)
    except KeyboardInterrupt:
        status = Status.INTERRUPTED
    part = _best_of(graph, k, st, start, mem_cap)
    return SolveResult(part, upper_bound=part.bottleneck, status=status, method="anneal",
                       stats={"steps": done, "moves": int(st.moves_done)},
                       timings={"anneal": time.perf_counter() - t0})
