"""Combinatorial lower bounds on the optimum bottleneck (no solver, O(n + m log m)).

All bounds hold for every valid k-partition (stages may be empty; k = 1 allowed),
so the optimum is at least their maximum. Colocation classes (groups and the
cycles they create, :meth:`Graph.contract`) always share a stage, which only
makes the bounds stronger.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._arrays import unique_sorted
from ..graph import Graph

__all__ = ["CombinatorialBound", "combinatorial_bound", "average_bound", "class_work_bound",
           "neighbourhood_bound"]


@dataclass
class CombinatorialBound:
    """The best combinatorial bound and each component (name -> value)."""

    value: float
    parts: dict = field(default_factory=dict)

    @property
    def method(self) -> str:
        if not self.parts:
            return "combinatorial"
        return "combinatorial:" + max(self.parts, key=lambda name: self.parts[name])


def average_bound(graph: Graph, k: int) -> float:
    """``W / k``: the k stage costs sum to at least the total work W (each node's work is
    paid once by its stage; communication only adds), so one of them is >= W / k."""
    return float(graph.work.sum()) / k


def class_work_bound(graph: Graph, cls: np.ndarray | None = None) -> float:
    """``max_C work(C)`` over colocation classes C (a class lies inside one stage, whose
    cost is at least the work of its nodes). Without groups this is ``max_v work[v]``."""
    if cls is None:
        cls = graph.contract().node_map
    return float(np.bincount(cls, weights=graph.work).max())


def neighbourhood_bound(graph: Graph, cls: np.ndarray | None = None) -> float:
    """Work of a class plus communication or work its neighbours force on its stage.

    For a class C in stage S, with P = original predecessors outside C and
    Z = original successors outside C::

        f(S) >= work(C) + sum_{u in P} min(work[u], comm[u])
                + min( work(Z), min_{z in Z} sum_{u in C, (u, z) in E} comm[u] )

    Proof. Each u in P is either in S (its work is part of f(S)) or not (then it has
    an edge into C subset of S, so u is in In(S) and f(S) pays comm[u]); either way at
    least min(work[u], comm[u]), and these terms belong to distinct nodes. For the
    successors: if all of Z is in S, f(S) pays work(Z); otherwise some z in Z is not
    in S and every u in C with an edge to z is in Out(S), paying its comm. P and Z
    are disjoint in an inference graph (a node in both would close a cycle through C,
    and cycles through a class are contracted into it); in a training graph they can
    meet (a forward node of C feeds u, which feeds a backward node of C, with no
    precedence cycle), so there P is taken without the nodes of Z. Then the
    work/receive terms of P, the work terms of Z and the send terms of C are distinct
    summands of f(S). Nothing here
    assumes a second stage is used: with k = 1 every neighbour is in S and the
    bound is at most W. O(n + m log m).
    """
    if cls is None:
        cls = graph.contract().node_map
    cls = np.asarray(cls, dtype=np.int64)
    q = int(cls.max()) + 1
    work, comm = graph.work, graph.comm
    base = np.bincount(cls, weights=work, minlength=q)
    src, dst = graph.src.astype(np.int64), graph.dst.astype(np.int64)
    cs, cd = cls[src], cls[dst]
    ext = cs != cd
    src, dst, cs, cd = src[ext], dst[ext], cs[ext], cd[ext]
    # predecessor side: distinct (u, class of consumer) pairs
    if src.size:
        key = unique_sorted(src * q + cd)
        if graph.is_training:  # drop (u, C) pairs where u is also a successor of C
            zkey = dst * q + cs
            key = key[~np.isin(key, zkey)]
        u, c = key // q, key % q
        pred: np.ndarray = np.bincount(c, weights=np.minimum(work[u], comm[u]), minlength=q)
        # successor side: distinct (producer class, z) pairs
        key = unique_sorted(cs * graph.n + dst)
        c, z = key // graph.n, key % graph.n
        work_z = np.bincount(c, weights=work[z], minlength=q)
        # comm the class sends to each z: sum over distinct edges (u, z), u in class c
        sums = np.bincount(np.searchsorted(key, cs * graph.n + dst), weights=comm[src],
                           minlength=key.size)
        min_send = np.full(q, np.inf)
        np.minimum.at(min_send, c, sums)
        send = np.minimum(work_z, np.where(np.isfinite(min_send), min_send, 0.0))
    else:
        pred = send = np.zeros(q)
    return float((base + pred + send).max())


def combinatorial_bound(graph: Graph, k: int, mem_cap: float | None = None) -> CombinatorialBound:
    """The maximum of :func:`average_bound`, :func:`class_work_bound` and
    :func:`neighbourhood_bound` (``mem_cap`` is accepted for symmetry; these bounds do
    not use it). O(n + m log m)."""
    cls = graph.contract().node_map
    parts = {"average": average_bound(graph, k), "class_work": class_work_bound(graph, cls),
             "neighbourhood": neighbourhood_bound(graph, cls)}
    return CombinatorialBound(max(parts.values()), parts)
