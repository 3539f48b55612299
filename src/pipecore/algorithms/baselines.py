"""Baselines users compare against: 1-D splits of a topological order, and random search.

The 1-D splits work on the colocation quotient (groups and the cycles they
create are kept whole) and are O(n + m), vectorised. With a memory cap, a split
whose stages break the cap is redone by a greedy pass that closes a stage early
when the next class would not fit (still a contiguous split of the same order, so
still valid), i.e. the memory-aware variant these tools use; if even that runs
out of stages there is no answer (status ``no_solution``).

Random search samples valid partitions: a uniformly random key per class gives a
random topological order (Kahn, smallest key first), then k-1 cut positions
between classes are drawn uniformly (stars and bars). This is not exactly uniform
over valid partitions (counting them is #P-hard) but reaches every one of them.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._native import _cost, _graph
from .._runtime import Budget, ProgressFn, no_progress
from ..graph import Graph
from ..options import Option, method
from ..partition import Partition
from ..problem import Problem, Schedule
from ..result import Quality, SolveResult, Termination

__all__ = ["uniform_split", "balanced_split", "random_partition", "solve_uniform",
           "solve_balanced", "solve_random"]


def _quotient_order(problem: Problem):
    con = problem.graph.contract()
    return con, con.graph.topological_order()


def mem_fits(problem: Problem, stage: np.ndarray, k: int) -> bool:
    """Whether a stage vector over ``k`` stages meets the cap under the problem's schedule
    (1F1B: static + f * activations, f = non-empty stages from this one to the last).
    O(n + k), vectorised."""
    if problem.mem_cap is None:
        return True
    g = problem.graph
    if problem.schedule is not Schedule.ONE_F_ONE_B or not g.act_mem.any():
        return bool(np.bincount(stage, weights=problem.stage_mem, minlength=k).max()
                    <= problem.cap_limit)
    static = np.bincount(stage, weights=g.mem, minlength=k)
    act = np.bincount(stage, weights=g.act_mem, minlength=k)
    used = np.bincount(stage, minlength=k) > 0
    f = np.cumsum(used[::-1])[::-1]
    return bool((static + f * act)[used].max() <= problem.cap_limit)


def _fit_cap(problem: Problem, con, order: np.ndarray, stage_q: np.ndarray,
             k: int) -> np.ndarray | None:
    """Keep a split if it meets the cap; else greedily close stages before they overflow,
    aiming at the same cuts. Returns a quotient stage vector or None."""
    if problem.mem_cap is None:
        return stage_q
    qmem = np.bincount(con.node_map, weights=problem.stage_mem, minlength=con.graph.n)
    cap = problem.cap_limit
    if np.bincount(stage_q, weights=qmem, minlength=k).max() <= cap:
        return stage_q
    if qmem.max() > cap:  # a class (e.g. groups merged by a cycle) cannot fit anywhere
        return None
    want = stage_q[order]
    out = np.empty_like(stage_q)
    s, used = 0, 0.0
    for i, v in enumerate(order.tolist()):  # only on the rare capped path
        target = max(s, int(want[i]))
        if target > s:
            s, used = min(target, k - 1), 0.0
        if used + qmem[v] > cap:
            s, used = s + 1, 0.0
            if s >= k:
                return None
        out[v] = s
        used += qmem[v]
    return out


def _split(problem: Problem, weight: np.ndarray) -> Partition | None:
    """Cut a topological order of the classes at quantiles of ``weight`` (per class)."""
    con, order = _quotient_order(problem)
    k = problem.k_eff
    w = weight[order]
    total = float(w.sum())
    if total <= 0:
        w, total = np.ones(order.size), float(order.size)
    mid = np.cumsum(w) - 0.5 * w  # weight before the class plus half of its own
    stage_q = np.empty(con.graph.n, dtype=np.int32)
    stage_q[order] = np.minimum((mid * k / total).astype(np.int64), k - 1).astype(np.int32)
    fitted = _fit_cap(problem, con, order, stage_q, k)
    if fitted is None or not mem_fits(problem, con.expand(fitted), k):
        return None   # the greedy fit counts one micro-batch; 1F1B may still overflow
    return problem.expand(con.expand(fitted))


def _uniform(problem: Problem) -> Partition | None:
    con = problem.graph.contract()
    return _split(problem, np.diff(con.member_ptr).astype(np.float64))


def _balanced(problem: Problem) -> Partition | None:
    return _split(problem, problem.graph.contract().graph.work)


def uniform_split(graph: Graph, k: int, mem_cap: float | None = None, *,
                  schedule: str = "plain") -> Partition | None:
    """Cut a topological order into k runs of (nearly) equal node count (classes whole).

    With ``mem_cap``, stages are closed early where the cap demands; None if impossible.
    O(n + m).
    """
    return _uniform(Problem(graph, k, mem_cap, schedule))


def balanced_split(graph: Graph, k: int, mem_cap: float | None = None, *,
                   schedule: str = "plain") -> Partition | None:
    """GPipe/DeepSpeed-style 1-D balancing: cut a topological order at work quantiles.

    Class i of the order goes to stage ``floor(k * mid_i / W)`` where ``mid_i`` is
    the work before it plus half its own, so each stage gets about ``W / k`` work.
    With ``mem_cap``, stages are closed early where the cap demands; None if impossible.
    O(n + m).

    Examples
    --------
    >>> g = Graph(4, [0, 1, 2], [1, 2, 3], work=[1, 1, 1, 1])
    >>> balanced_split(g, 2).stage.tolist()
    [0, 0, 1, 1]
    """
    return _balanced(Problem(graph, k, mem_cap, schedule))


def _baseline_result(problem: Problem, part: Partition | None, name: str) -> SolveResult:
    if part is None:
        return SolveResult(None, quality=Quality.NO_SOLUTION, method=name,
                           message=f"the {name} split cannot meet mem_cap {problem.mem_cap:g}")
    problems = problem.violations(part)
    if problems:
        return SolveResult(None, quality=Quality.NO_SOLUTION, method=name,
                           message=f"the {name} split violates: " + "; ".join(problems))
    return SolveResult(part, upper_bound=part.bottleneck, quality=Quality.FEASIBLE,
                       upper_bound_source=name, method=name)


@method("uniform")
def solve_uniform(problem: Problem, budget: Budget, *, seed: int | None = 0,
                  progress: ProgressFn = no_progress, stop_at: float = 0.0) -> SolveResult:
    """Uniform split by node count (see :func:`uniform_split`)."""
    return _baseline_result(problem, _uniform(problem), "uniform")


@method("balanced")
def solve_balanced(problem: Problem, budget: Budget, *, seed: int | None = 0,
                   progress: ProgressFn = no_progress, stop_at: float = 0.0) -> SolveResult:
    """Work-balanced split (see :func:`balanced_split`)."""
    return _baseline_result(problem, _balanced(problem), "balanced")


class _Sampler:
    """Random valid partitions of one problem (reused buffers)."""

    def __init__(self, problem: Problem):
        self.problem, self.k = problem, problem.k_eff
        self.con = problem.graph.contract()
        self.q = self.con.graph.n
        self.indeg = np.diff(self.con.graph.pred_ptr).astype(np.int32)
        self.qorder = np.empty(self.q, dtype=np.int32)
        self.stage_q = np.empty(self.q, dtype=np.int32)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """Stage vector of the original nodes over k_eff stages. O(n log n + m)."""
        g = self.con.graph
        keys = rng.random(self.q)
        _graph.kahn(g.succ_ptr, g.succ_idx, self.indeg, keys, False, self.qorder)
        cuts = np.sort(rng.integers(0, self.q + 1, self.k - 1))
        pos_stage = np.searchsorted(cuts, np.arange(self.q), side="right").astype(np.int32)
        self.stage_q[self.qorder] = pos_stage
        return self.con.expand(self.stage_q)


def random_partition(graph: Graph, k: int, seed: int | None = None) -> Partition:
    """One random valid k-partition (random topological order + uniform random cuts)."""
    problem = Problem(graph, k)
    return problem.expand(_Sampler(problem).sample(np.random.default_rng(seed)))


@method("random", (Option("samples", int, 2000, minimum=1,
                          help="random partitions to draw"),))
def solve_random(problem: Problem, budget: Budget, *, seed: int | None = 0,
                 progress: ProgressFn = no_progress, stop_at: float = 0.0,
                 samples: int = 2000) -> SolveResult:
    """Random search: the best of ``samples`` random valid partitions (or until the budget).

    O(samples * (n log n + m)); memory-violating samples are rejected and counted.
    """
    rng = np.random.default_rng(seed)
    sampler = _Sampler(problem)
    graph, k = problem.graph, problem.k_eff
    cap = problem.cap_limit if problem.mem_cap is not None else None
    best_val, best_stage = math.inf, None
    term, done, rejected = Termination.COMPLETED, 0, 0
    try:
        while done < samples and best_val > stop_at:
            stage = sampler.sample(rng)
            done += 1
            if cap is not None and not mem_fits(problem, stage, k):
                rejected += 1
            else:
                val = _cost.bottleneck(graph.succ_ptr, graph.succ_idx, graph.work, graph.comm,
                                       stage, k)
                if val < best_val:
                    best_val, best_stage = val, stage.copy()
            if done % 64 == 0:
                progress(budget.fraction() if budget.limited else done / samples, best_val)
            if budget.expired():  # every sample: one costs ~30 ms at 200,000 nodes
                term = Termination.TIME_LIMIT
                break
    except KeyboardInterrupt:
        term = Termination.INTERRUPTED
    stats = {"samples": done, "rejected": rejected}
    if best_stage is None:
        return SolveResult(None, quality=Quality.NO_SOLUTION, termination=term, method="random",
                           stats=stats, message="no sampled partition met the memory cap")
    part = problem.expand(best_stage)
    return SolveResult(part, upper_bound=part.bottleneck, quality=Quality.FEASIBLE,
                       termination=term, upper_bound_source="random", method="random",
                       stats=stats)
