"""Cut-based lower bounds that scale (DESIGN.md section 3b): the local min-cut bound.

The stage cost is modular work plus a hypergraph cut. For producer u let
``e_u = {u} | succ(u)`` with weight ``comm[u]``; then for any node set S

    f(S) = sum_{v in S} work[v] + sum_u comm[u] * [e_u is split by S]

(u in S with a successor outside pays comm[u] in Out(S); u outside with a successor
inside pays it in In(S); otherwise nothing). Colocation classes share a stage, so S
is a union of classes and the hyperedges are taken over classes.

**Local cut bound.** Let T* be the optimum and c any class. The stage S containing c
in an optimal partition has f(S) <= T*, so T* >= min{f(S) : c in S}, dropping every
other condition on S (ideal difference, memory, k). For a ball B of classes around c
define ``f_B(S) = work(S & B) + sum_u comm[u] * [e_u & B is split by S & B]`` over the
hyperedges with >= 2 members in B. Then f_B(S) <= f(S) for every S: work outside B
is dropped (work >= 0), and if ``e_u & B`` is split by S then e_u is split. Hence

    T* >= L(c) := min{f_B(S) : c in S, S subset of B}   for every class c,

and ``max_c L(c)`` is a lower bound. L(c) is one s-t minimum cut (native, see
``_native/_bounds.pyx``). It holds for every schedule and memory cap (they only
remove partitions) and for every k >= 1. It is skipped for training graphs, whose
stage cost is taken on extended stages (forward plus backward siblings).

Cost: classes are tried in decreasing order of the trivial upper bound
``work(c) + sum_{e ni c} w_e`` (>= L(c), as S = {c} shows) and the scan stops when
that is at most the best value found or the bound already proven: O(n + m) to build
plus one max flow on a network of at most ``max_ball`` classes per class tried.
"""
from __future__ import annotations

import math

import numpy as np

from .._runtime import clock
from ..problem import Problem

__all__ = ["local_cut_bound", "class_hypergraph", "LOCAL_CUT_BALL"]

#: classes in the ball around each class (larger: stronger and slower bound).
LOCAL_CUT_BALL = 96
#: relative safety margin for the floating-point max flow (sums of n doubles).
FLOW_RTOL = 1e-10


def class_hypergraph(problem: Problem):
    """Hyperedges ``{class(u)} | class(succ(u))`` with >= 2 classes, weight comm[u].

    Returns ``(hptr, hnodes, hw, nptr, nhe, work, hsrc)``: hyperedge CSR over classes,
    class -> incident hyperedges CSR, class work and the producer's class per
    hyperedge. O(n + m log m).
    """
    g = problem.graph
    con = g.contract()
    cls = np.asarray(con.node_map, dtype=np.int64)
    q = int(con.graph.n)
    work = np.bincount(cls, weights=g.work, minlength=q).astype(np.float64)
    src = g.src.astype(np.int64)
    dst = g.dst.astype(np.int64)
    users = np.unique(src)
    u = np.concatenate([users, src])
    c = np.concatenate([cls[users], cls[dst]])
    key = np.unique(u * q + c)
    u, c = key // q, key % q
    if u.size == 0:
        z = np.zeros(1, dtype=np.int64)
        return (z, np.zeros(0, np.int32), np.zeros(0), np.zeros(q + 1, np.int64),
                np.zeros(0, np.int32), work, np.zeros(0, np.int32))
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    sizes = np.diff(np.r_[starts, u.size])
    keep_e = (sizes >= 2) & (g.comm[u[starts]] > 0)
    member = np.repeat(keep_e, sizes)
    u, c = u[member], c[member]
    sizes = sizes[keep_e]
    first = u[np.r_[0, np.cumsum(sizes)[:-1]]] if sizes.size else np.zeros(0, np.int64)
    hw = g.comm[first].astype(np.float64)
    hsrc = cls[first].astype(np.int32)
    hptr = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    hnodes = c.astype(np.int32)
    eid = np.repeat(np.arange(sizes.size, dtype=np.int32), sizes)
    order = np.argsort(hnodes, kind="stable")
    nhe = eid[order]
    nptr = np.r_[0, np.cumsum(np.bincount(hnodes, minlength=q))].astype(np.int64)
    return hptr, hnodes, hw, nptr, nhe, work, hsrc


def _loose_upper(problem: Problem) -> float:
    """An O(n + m) upper bound on ``max_c L(c)``: class work plus the comm of every member
    with a successor and of every in-edge's producer (duplicates overcount, which is safe:
    L(c) <= f({c}) <= this)."""
    g = problem.graph
    cls = np.asarray(g.contract().node_map, dtype=np.int64)
    has_succ = np.zeros(g.n, dtype=bool)
    has_succ[g.src] = True
    up = np.bincount(cls, weights=g.work + np.where(has_succ, g.comm, 0.0))
    up += np.bincount(cls[g.dst], weights=g.comm[g.src], minlength=up.size)
    return float(up.max()) if up.size else 0.0


def local_cut_bound(problem: Problem, floor: float = 0.0, *, deadline: float = math.inf,
                    max_ball: int = LOCAL_CUT_BALL) -> tuple[float, dict]:
    """``max_c L(c)`` (module docstring) where it beats ``floor``, else ``floor``.

    Returns ``(bound, details)``; the bound is ``floor`` for training graphs or when no
    class beats it. ``deadline`` (monotonic clock) stops the scan early; every value
    computed is valid on its own, so a partial scan is still a bound.
    """
    from .._native._bounds import local_cut_bounds

    if problem.is_training:
        return floor, {"skipped": "training graph"}
    started = clock()
    if _loose_upper(problem) <= floor:   # no class can beat floor: skip the O(m log m) build
        return floor, {"evaluated": 0, "time": clock() - started}
    hptr, hnodes, hw, nptr, nhe, work, _ = class_hypergraph(problem)
    incident = np.zeros(work.size)
    if hw.size:
        incident = np.bincount(hnodes, weights=np.repeat(hw, np.diff(hptr)),
                               minlength=work.size)
    upper = work + incident
    order = np.argsort(-upper, kind="stable").astype(np.int32)
    dl = deadline if math.isfinite(deadline) else 0.0
    best, arg, done = local_cut_bounds(hptr, hnodes, hw, nptr, nhe, work, order, upper,
                                       float(floor), int(max_ball), float(dl))
    details = {"evaluated": int(done), "time": clock() - started}
    if best < 0 or best <= floor:
        return floor, details
    details["class"] = int(arg)
    return float(best) * (1.0 - FLOW_RTOL), details

