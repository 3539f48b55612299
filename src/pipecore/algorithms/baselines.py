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
import time

import numpy as np

from .._native import _cost, _slicing
from .._runtime import Budget, no_progress
from ..graph import Graph
from ..partition import Partition
from ..result import SolveResult, Status

__all__ = ["uniform_split", "balanced_split", "random_partition", "solve_uniform",
           "solve_balanced", "solve_random"]


def _quotient_order(graph: Graph):
    con = graph.contract()
    return con, con.graph.topological_order()


def _fit_cap(con, order: np.ndarray, stage_q: np.ndarray, k: int, mem_cap) -> np.ndarray | None:
    """Keep a split if it meets the cap; else greedily close stages before they overflow,
    aiming at the same cuts. Returns a quotient stage vector or None."""
    if mem_cap is None:
        return stage_q
    qmem = con.graph.mem
    cap = mem_cap * (1 + 1e-12)
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


def uniform_split(graph: Graph, k: int, mem_cap: float | None = None) -> Partition | None:
    """Cut a topological order into k runs of (nearly) equal node count (classes whole).

    With ``mem_cap``, stages are closed early where the cap demands; None if impossible.
    """
    con, order = _quotient_order(graph)
    q = con.graph.n
    sizes = np.diff(con.member_ptr)[order]
    mid = np.cumsum(sizes) - 0.5 * sizes  # node count before the class plus half of it
    stage_q = np.empty(q, dtype=np.int32)
    stage_q[order] = np.minimum((mid * k / graph.n).astype(np.int64), k - 1).astype(np.int32)
    stage_q = _fit_cap(con, order, stage_q, k, mem_cap)
    return None if stage_q is None else Partition(graph, con.expand(stage_q), k)


def balanced_split(graph: Graph, k: int, mem_cap: float | None = None) -> Partition | None:
    """GPipe/DeepSpeed-style 1-D balancing: cut a topological order at work quantiles.

    Class i of the order goes to stage ``floor(k * mid_i / W)`` where ``mid_i`` is
    the work before it plus half its own, so each stage gets about ``W / k`` work.
    With ``mem_cap``, stages are closed early where the cap demands; None if impossible.
    """
    con, order = _quotient_order(graph)
    w = con.graph.work[order]
    total = w.sum()
    if total <= 0:
        return uniform_split(graph, k, mem_cap)
    stage_q = np.empty(con.graph.n, dtype=np.int32)
    mid = np.cumsum(w) - 0.5 * w
    stage_q[order] = np.minimum((mid * k / total).astype(np.int64), k - 1).astype(np.int32)
    stage_q = _fit_cap(con, order, stage_q, k, mem_cap)
    return None if stage_q is None else Partition(graph, con.expand(stage_q), k)


def _baseline_result(part: Partition | None, name: str, mem_cap) -> SolveResult:
    if part is None:
        return SolveResult(None, status=Status.NO_SOLUTION, method=name,
                           message=f"{name} split cannot meet mem_cap {mem_cap:g}")
    problems = part.violations(mem_cap)
    if problems:
        return SolveResult(None, status=Status.NO_SOLUTION, method=name,
                           message=f"{name} split violates: " + "; ".join(problems))
    return SolveResult(part, upper_bound=part.bottleneck, status=Status.FEASIBLE, method=name)


def solve_uniform(graph, k, *, mem_cap=None, budget=None, seed=None, progress=None, **_):
    """Uniform split by node count (see :func:`uniform_split`)."""
    return _baseline_result(uniform_split(graph, k, mem_cap), "uniform", mem_cap)


def solve_balanced(graph, k, *, mem_cap=None, budget=None, seed=None, progress=None, **_):
    """Work-balanced split (see :func:`balanced_split`)."""
    return _baseline_result(balanced_split(graph, k, mem_cap), "balanced", mem_cap)


class _Sampler:
    """Random valid partitions of one graph (reused buffers)."""

    def __init__(self, graph: Graph, k: int):
        self.graph, self.k = graph, k
        self.con = graph.contract()
        self.q = self.con.graph.n
        self.qorder = np.empty(self.q, dtype=np.int32)
        self.stage_q = np.empty(self.q, dtype=np.int32)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """Stage vector of the original nodes. O(n log n + m)."""
        g = self.con.graph
        keys = rng.random(self.q)
        _slicing.kahn_keys(g.succ_ptr, g.succ_idx, g.pred_ptr, keys, self.qorder)
        cuts = np.sort(rng.integers(0, self.q + 1, self.k - 1))
        pos_stage = np.searchsorted(cuts, np.arange(self.q), side="right").astype(np.int32)
        self.stage_q[self.qorder] = pos_stage
        return self.con.expand(self.stage_q)


def random_partition(graph: Graph, k: int, seed=None) -> Partition:
    """One random valid k-partition (random topological order + uniform random cuts)."""
    return Partition(graph, _Sampler(graph, k).sample(np.random.default_rng(seed)), k)


def solve_random(graph, k, *, mem_cap=None, budget: Budget | None = None, seed=0, progress=None,
                 samples: int = 2000, **_) -> SolveResult:
    """Random search: the best of ``samples`` random valid partitions (or until the budget).

    O(samples * (n log n + m)); memory-violating samples are rejected and counted.
    """
    budget = budget or Budget(None)
    progress = progress or no_progress
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    sampler = _Sampler(graph, k)
    cap = None if mem_cap is None else mem_cap * (1 + 1e-12)
    best_val, best_stage = math.inf, None
    status, done, rejected = Status.FEASIBLE, 0, 0
    try:
        while done < samples:
            stage = sampler.sample(rng)
            done += 1
            if cap is not None and np.bincount(stage, weights=graph.mem, minlength=k).max() > cap:
                rejected += 1
            else:
                val = _cost.bottleneck(graph.succ_ptr, graph.succ_idx, graph.work, graph.comm,
                                       stage, k)
                if val < best_val:
                    best_val, best_stage = val, stage.copy()
            if done % 64 == 0:
                progress(budget.fraction() if budget.time_limit else done / samples, best_val)
                if budget.expired():
                    status = Status.TIME_LIMIT
                    break
    except KeyboardInterrupt:
        status = Status.INTERRUPTED
    stats = {"samples": done, "rejected": rejected}
    timings = {"random": time.perf_counter() - t0}
    if best_stage is None:
        return SolveResult(None, status=Status.NO_SOLUTION if status == Status.FEASIBLE else status,
                           method="random", stats=stats, timings=timings,
                           message="no sampled partition met the memory cap")
    part = Partition(graph, best_stage, k)
    return SolveResult(part, upper_bound=part.bottleneck, status=status, method="random",
                       stats=stats, timings=timings)
