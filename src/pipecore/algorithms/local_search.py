"""Local search, simulated annealing, and the polish step applied to every solver's output.

Moves keep every precedence edge forward and colocation classes whole (see
:mod:`pipecore._native._local`): a class to an adjacent stage, a swap between
adjacent stages, and a local boundary shift (a class with its in-stage
descendants or ancestors). Cost changes are O(degree) incremental updates plus
O(k) to read the new maximum.

* ``solve_local``: first-improvement descent on (bottleneck, sum of squared stage
  costs) from the better of the 1-D baselines.
* ``solve_anneal``: Metropolis annealing with a geometric temperature schedule on
  ``max + lam * rms`` of the stage costs, then descent from the best state.
* :func:`polish_partition`: descent on any partition within a budget; it keeps the
  partition valid and never returns a worse one (``solve()`` polishes every result).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._native import _local
from .._runtime import SHARES, Budget, ProgressFn, clock, no_progress
from ..options import Option, method
from ..partition import Partition
from ..problem import Problem, Schedule
from ..result import Quality, SolveResult, Termination

__all__ = ["solve_local", "solve_anneal", "polish_partition"]

#: seconds of native descent between two returns to Python, where Ctrl-C is seen (a
#: sweep over 200,000 classes takes about 0.25 s; the kernel runs without the GIL).
DESCENT_SLICE = 0.2


def _descend(st: Any, max_sweeps: int, deadline: float) -> int:
    """``st.descent`` in time slices of :data:`DESCENT_SLICE` until a local optimum,
    ``max_sweeps`` sweeps in one slice, or ``deadline``; returns the improvements.
    KeyboardInterrupt (raised only while Python code runs) thus ends it within a slice."""
    total = 0
    while True:
        st.deadline = min(deadline, clock() + DESCENT_SLICE)
        got = st.descent(max_sweeps)
        total += got
        if clock() < st.deadline or clock() >= deadline or got == 0:
            break  # finished within the slice (optimum or sweep cap), or out of time
    st.deadline = deadline
    return total


def _state(problem: Problem, stage: np.ndarray, seed: int | None) -> Any:
    g = problem.graph
    onef = problem.schedule is Schedule.ONE_F_ONE_B and g.act_mem.any()
    return _local.LocalState(g, g.contract(), problem.k_eff, problem.stage_mem,
                             problem.cap_limit, stage, _seed64(seed),
                             act=g.act_mem if onef else None)


def _compact(problem: Problem, part: Partition) -> np.ndarray | None:
    """The partition's stage vector over ``k_eff`` stages (empty stages dropped), or None
    if it uses more stages than that (cannot happen for valid partitions)."""
    used, local = np.unique(part.stage, return_inverse=True)
    if used.size > problem.k_eff:
        return None
    if problem.schedule is Schedule.ONE_F_ONE_B:   # empty stages first (Schedule docs)
        local = local + (problem.k_eff - used.size)
    return local.astype(np.int32)


def _start_partition(problem: Problem) -> Partition | None:
    """The best valid baseline (balanced / uniform, memory-aware), else the optimal slicing
    of the BFS order (which respects the cap whenever any slicing of it does), else None."""
    from .baselines import _balanced, _uniform
    from .slicegraph import expand_order, make_slicer

    best = None
    for fn in (_balanced, _uniform):
        p = fn(problem)
        if p is not None and problem.is_valid(p) and (best is None or p.bottleneck < best.bottleneck):
            best = p
    if best is None:
        con = problem.graph.contract()
        order = expand_order(con, con.graph.topological_order())
        val, stage, _ = make_slicer(problem).slice_order(order)
        if math.isfinite(val):
            best = problem.expand(stage)
    return best


def polish_partition(problem: Problem, part: Partition, *, budget: Budget | None = None,
                     seed: int | None = 0, max_sweeps: int = 200,
                     stop_at: float = 0.0) -> Partition:
    """Descent from ``part`` until a local optimum, ``max_sweeps`` or the budget; returns a
    valid partition no worse than ``part`` (``part`` itself when nothing improves)."""
    budget = budget or Budget(None)
    stage = _compact(problem, part)
    if problem.k_eff < 2 or stage is None or not problem.is_valid(part) \
            or part.bottleneck <= stop_at:
        return part
    st = _state(problem, stage, seed)
    _descend(st, max_sweeps, budget.deadline)
    return _best_of(problem, st, part)


def _seed64(seed: int | None) -> int:
    return int(np.random.default_rng(seed).integers(1, 2**63 - 1))


def _best_of(problem: Problem, st: Any, start: Partition) -> Partition:
    val, stage = st.best()
    cand = problem.expand(stage)
    if problem.is_valid(cand) and cand.bottleneck < start.bottleneck:
        return cand
    return start


def _no_start(name: str) -> SolveResult:
    return SolveResult(None, quality=Quality.NO_SOLUTION, method=name,
                       message="no valid starting partition under the memory cap")


@method("local", (Option("max_sweeps", int, 1000, minimum=1,
                         help="descent sweeps over all classes"),))
def solve_local(problem: Problem, budget: Budget, *, seed: int | None = 0,
                progress: ProgressFn = no_progress, stop_at: float = 0.0,
                max_sweeps: int = 1000) -> SolveResult:
    """Descent from the better 1-D baseline until a local optimum, ``max_sweeps`` or the
    budget. O(sweeps * sum of degrees)."""
    start = _start_partition(problem)
    if start is None:
        return _no_start("local")
    stage = _compact(problem, start)
    assert stage is not None, "a valid start uses at most k_eff stages"
    st = _state(problem, stage, seed)
    st.deadline = budget.deadline
    term, sweeps = Termination.COMPLETED, 0
    try:
        while sweeps < max_sweeps and st.best()[0] > stop_at:
            improved = _descend(st, 5, budget.deadline)
            sweeps += 5
            progress(budget.fraction() if budget.limited else min(1.0, sweeps / max_sweeps),
                     st.best()[0])
            if improved == 0:
                break
            if budget.expired():
                term = Termination.TIME_LIMIT
                break
    except KeyboardInterrupt:
        term = Termination.INTERRUPTED
    part = _best_of(problem, st, start)
    return SolveResult(part, upper_bound=part.bottleneck, quality=Quality.FEASIBLE,
                       termination=term, upper_bound_source="local", method="local",
                       stats={"sweeps": sweeps, "moves": int(st.moves_done)})


ANNEAL_OPTIONS = (
    Option("steps", int, None, minimum=1, nullable=True,
           help="annealing moves (default max(200000, 200 q); with a time limit the "
                "schedule follows the clock)"),
    Option("t_start", float, 0.03, minimum=0.0, strict=True,
           help="start temperature relative to the starting bottleneck"),
    Option("t_end", float, 1e-4, minimum=0.0, strict=True,
           help="end temperature relative to the starting bottleneck"),
    Option("lam", float, 0.1, minimum=0.0, help="weight of the rms stage cost in the energy"),
    Option("p_swap", float, 0.15, minimum=0.0, maximum=1.0, help="share of swap moves"),
    Option("p_shift", float, 0.15, minimum=0.0, maximum=1.0, help="share of boundary shifts"),
    Option("max_shift", int, 16, minimum=1, help="classes moved by one boundary shift"),
)


def _anneal_by_clock(st: Any, budget: Budget, T0: float, T1: float, opts: dict,
                     progress: ProgressFn) -> int:
    """Cool geometrically over the clock until the cooling deadline; returns moves done."""
    end = st.deadline
    t_begin = clock()
    span = max(end - t_begin, 1e-6)
    done, chunk = 0, 50_000
    while True:
        f0 = min(1.0, (clock() - t_begin) / span)
        if f0 >= 1.0:
            return done
        c0 = clock()
        f1 = min(1.0, f0 + 0.02)
        st.anneal(chunk, T0 * (T1 / T0) ** f0, T0 * (T1 / T0) ** f1, opts["lam"],
                  opts["p_swap"], opts["p_shift"], opts["max_shift"])
        done += chunk
        dt = clock() - c0
        chunk = int(max(1000, min(5_000_000, chunk * (0.02 * span) / max(dt, 1e-6))))
        progress(budget.fraction(), st.best()[0])


def _anneal_by_steps(st: Any, budget: Budget, T0: float, T1: float, total: int, opts: dict,
                     progress: ProgressFn) -> tuple[int, bool]:
    """Cool geometrically over ``total`` moves; returns (moves done, stopped by the clock)."""
    done, chunk = 0, 50_000
    while done < total:
        n_now = min(chunk, total - done)
        f0, f1 = done / total, (done + n_now) / total
        st.anneal(n_now, T0 * (T1 / T0) ** f0, T0 * (T1 / T0) ** f1, opts["lam"],
                  opts["p_swap"], opts["p_shift"], opts["max_shift"])
        done += n_now
        progress(budget.fraction() if budget.limited else done / total, st.best()[0])
        if clock() > st.deadline:
            return done, True
    return done, False


def _anneal(problem: Problem, start: Partition, budget: Budget, seed: int | None,
            progress: ProgressFn, opts: dict) -> tuple[Partition, Termination, Any, int]:
    """Anneal from ``start``, then descend: ``(best partition, termination, state, moves)``.
    The partition returned is valid and never worse than ``start``; KeyboardInterrupt
    ends the run with the best found so far (termination ``interrupted``)."""
    scale = max(start.bottleneck, 1e-300)
    T0, T1 = opts["t_start"] * scale, opts["t_end"] * scale
    stage = _compact(problem, start)
    assert stage is not None, "a valid start uses at most k_eff stages"
    st = _state(problem, stage, seed)
    cooling = budget.until(SHARES["anneal_cooling"])
    st.deadline = cooling.deadline
    term, done = Termination.COMPLETED, 0
    try:
        if opts["steps"] is None and budget.limited:
            done = _anneal_by_clock(st, budget, T0, T1, opts, progress)
        else:
            total = int(opts["steps"] or max(200_000, 200 * problem.n_classes))
            done, stopped = _anneal_by_steps(st, budget, T0, T1, total, opts, progress)
            term = Termination.TIME_LIMIT if stopped else term
        st.restore_best()
        _descend(st, 200, budget.deadline)
        if budget.limited and budget.expired():
            term = Termination.TIME_LIMIT
    except KeyboardInterrupt:
        term = Termination.INTERRUPTED
    return _best_of(problem, st, start), term, st, done


def anneal_partition(problem: Problem, part: Partition, *, budget: Budget | None = None,
                     seed: int | None = 0, progress: ProgressFn = no_progress,
                     **opts: Any) -> tuple[Partition, Termination]:
    """Simulated annealing (options as for ``method="anneal"``) started from ``part``:
    ``(partition, termination)``, the partition valid and no worse than ``part``
    (``part`` itself when it is invalid or k_eff < 2). Used by ``solve(method="auto")``
    to refine SliceGraph's answer: the BRKGA explores orders, annealing then moves
    single classes, swaps and boundary runs that no order-slicing reaches in one step."""
    budget = budget or Budget(None)
    if problem.k_eff < 2 or _compact(problem, part) is None or not problem.is_valid(part):
        return part, Termination.COMPLETED
    opts = {**{o.name: o.default for o in ANNEAL_OPTIONS}, **opts}
    best, term, _, _ = _anneal(problem, part, budget, seed, progress, opts)
    return best, term


@method("anneal", ANNEAL_OPTIONS)
def solve_anneal(problem: Problem, budget: Budget, *, seed: int | None = 0,
                 progress: ProgressFn = no_progress, stop_at: float = 0.0,
                 **opts: Any) -> SolveResult:
    """Simulated annealing from the better 1-D baseline, then descent.

    Temperatures are relative to the starting bottleneck (``t_start``, ``t_end``) and
    decay geometrically over ``steps`` moves; with a time limit and no ``steps`` the
    schedule follows the clock, cooling over ``SHARES["anneal_cooling"]`` of the budget
    and descending in the rest. Deterministic for a seed when no limit cuts in.
    """
    opts = {**{o.name: o.default for o in ANNEAL_OPTIONS}, **opts}
    start = _start_partition(problem)
    if start is None:
        return _no_start("anneal")
    part, term, st, done = _anneal(problem, start, budget, seed, progress, opts)
    return SolveResult(part, upper_bound=part.bottleneck, quality=Quality.FEASIBLE,
                       termination=term, upper_bound_source="anneal", method="anneal",
                       stats={"steps": done, "moves": int(st.moves_done)})
