"""Baselines users compare against: 1-D splits of a topological order.

Both work on the colocation quotient (groups and the cycles they create are kept
whole), are O(n + m) and vectorised, and ignore memory caps when choosing cuts
(the result reports whether the cap holds).
"""
from __future__ import annotations

import numpy as np

from ..graph import Graph
from ..partition import Partition
from ..result import SolveResult, Status

__all__ = ["uniform_split", "balanced_split", "solve_uniform", "solve_balanced"]


def _quotient_order(graph: Graph):
    con = graph.contract()
    return con, con.graph.topological_order()


def uniform_split(graph: Graph, k: int) -> Partition:
    """Cut a topological order into k runs of (nearly) equal node count."""
    con, order = _quotient_order(graph)
    q = con.graph.n
    stage_q = np.empty(q, dtype=np.int32)
    stage_q[order] = (np.arange(q, dtype=np.int64) * k // q).astype(np.int32)
    return Partition(graph, con.expand(stage_q), k)


def balanced_split(graph: Graph, k: int) -> Partition:
    """GPipe/DeepSpeed-style 1-D balancing: cut a topological order at work quantiles.

    Node i of the order goes to stage ``floor(k * mid_i / W)`` where ``mid_i`` is
    the work before it plus half its own, so each stage gets about ``W / k`` work.
    """
    con, order = _quotient_order(graph)
    w = con.graph.work[order]
    total = w.sum()
    stage_q = np.empty(con.graph.n, dtype=np.int32)
    if total <= 0:
        return uniform_split(graph, k)
    mid = np.cumsum(w) - 0.5 * w
    stage_q[order] = np.minimum((mid * k / total).astype(np.int64), k - 1).astype(np.int32)
    return Partition(graph, con.expand(stage_q), k)


def _baseline_result(part: Partition, name: str, mem_cap) -> SolveResult:
    problems = part.violations(mem_cap)
    if problems:
        return SolveResult(None, status=Status.NO_SOLUTION, method=name,
                           message=f"{name} split violates: " + "; ".join(problems))
    return SolveResult(part, upper_bound=part.bottleneck, status=Status.FEASIBLE, method=name)


def solve_uniform(graph, k, *, mem_cap=None, budget=None, seed=None, progress=None, **_):
    """Uniform split by node count (see :func:`uniform_split`)."""
    return _baseline_result(uniform_split(graph, k), "uniform", mem_cap)


def solve_balanced(graph, k, *, mem_cap=None, budget=None, seed=None, progress=None, **_):
    """Work-balanced split (see :func:`balanced_split`)."""
    return _baseline_result(balanced_split(graph, k), "balanced", mem_cap)
