"""Component (tower) bound: parallel branches must share the k stages.

Two-tower and multi-branch models (CLIP's image and text encoders, dual encoders,
siamese nets) are wide: the ideals of the whole graph are the products of the ideals of
its branches, far too many for the exact DP, while each branch alone is narrow. The
bounds that scale see little of the communication there (W/k, the local cut). This
bound counts, for every branch, the least communication it pays at a given bottleneck.

**Claim 1 (deleting nodes relaxes).** For a node set D, let G' = G - D with the induced
edges, costs and hyperedges ``e_u & V'``. For every stage S of a partition of G,
``f(S) >= work(S & D) + f'(S - D)``. *Proof.* f(S) = work(S) + sum_u comm[u] [e_u split
by S]; keep the terms of producers u in V' only; if ``e_u & V'`` is split by ``S - D``,
it has members inside and outside S, so e_u is split by S. The restriction of the
partition is a chain of ideals of G' (an ideal of G meets V' in an ideal of G'), with
the same colocation and memory constraints restricted, so it is a partition of G'.

**Claim 2 (sum over components).** If G' has no edge between its weakly connected
components X_1..X_r, then f'(S') = sum_i f_i(S' & X_i) (every hyperedge lies in one
component). So a partition of G with every stage cost <= T gives, on each X_i, a chain
of parts each costing <= T (and fitting the memory cap), and

    k T >= sum_j f(S_j) >= W(D) + sum_i minsum_i(T),

where ``minsum_i(T)`` is the least total cost of a chain of parts of X_i, each part
costing <= T and fitting the cap, any number of parts (more freedom: a lower value).

**Claim 3 (big parts, the bin-packing argument).** Two parts that each cost more than
T / 2 cannot share a stage (their costs add up in it), and two parts of one component
never do, so over all components at most k parts cost more than T / 2. With
``minsum_i(T, b)`` the least total cost of a chain of X_i with at most b such parts,

    T is refuted when  W(D) + min_{b_1 + ... + b_r <= k} sum_i minsum_i(T, b_i) > k T.

It matters where the towers' operators are coarse: a tower cut into parts of at most T
either uses parts over T / 2, which need a stage each, or pays the communication of
finer parts. minsum_i(T, .) for b = 0..k is one shortest-path pass over the ideals of
X_i (native ``IdealKernel.run_sum``: the min-max DP's superset DFS and cuts, with sums
and the count of big parts); the components are combined by a min-plus convolution
over b. A chain feasible at T is feasible at T' > T with no more big parts, so the test
is monotone; a bisection finds the largest refuted T (each refuted T is a bound on its
own).

**Finding D.** D = the nodes of the first ``a`` longest-path levels from the sources
and of the last ``b`` levels from the sinks (a, b in ``LEVELS``), smallest D first; the
first D that leaves at least two components of two or more nodes, each with at most
``COMPONENT_MAX_IDEALS`` ideals, is used, and components of one node join D (the join
of two towers sits in the last levels, a shared stem in the first). D may hold at most
``MAX_DELETED_SHARE`` of the work (deleting most of a chain can separate its parallel
branches, to no use). Skipped for training graphs (extended stages) and above
``COMPONENT_MAX_NODES`` nodes.

Measured on CLIP (609 nodes; after deleting its last level, 3 nodes, towers of 304 and
302 nodes): at k = 64 it proves 10.40 where W/k = 7.43 and the local cut bound is 9.13,
in 0.4 s (Claim 2 alone: 10.31); at k = 32 16.92 (the position MIPs: 15.03), at k = 16
30.95 (29.90).
Cost: O(|LEVELS|^2 (n + m)) to find D, then per bisection step one pass per component,
O(pairs x degree) like the DP over ideals with UB = T.
"""
from __future__ import annotations

import math

import numpy as np

from .._runtime import clock
from ..graph import Graph
from ..problem import Problem

__all__ = ["component_bound", "split_components", "COMPONENT_MAX_IDEALS",
           "COMPONENT_MAX_NODES"]

#: largest lattice of one component (ideals) the bound enumerates.
COMPONENT_MAX_IDEALS = 200_000
#: memory one component's pass may take (member bitsets, transitions, k + 1 columns).
COMPONENT_MAX_BYTES = 512 * 2 ** 20
#: graphs with more nodes are skipped (the decomposition scan is O(|LEVELS|^2 (n + m))).
COMPONENT_MAX_NODES = 50_000
#: largest share of the total work D may hold (the bound counts only the work of D).
MAX_DELETED_SHARE = 0.25
#: candidate numbers of deleted levels at each end.
LEVELS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
#: relative slack of the stage cap and of the refutation test (floating-point sums).
_RTOL = 1e-9
#: pairs relaxed per native call between deadline checks.
_QUOTA = 2_000_000


def _heights(graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    """Longest-path levels of every node from the sources and from the sinks, O(n + m)."""
    from .._native import _graph

    depth = graph.depth()
    height = np.empty(graph.n, dtype=np.int32)
    _graph.depth(np.ascontiguousarray(graph.topological_order()[::-1]), graph.pred_ptr,
                 graph.pred_idx, height)
    return depth, height


def _components(graph: Graph, keep: np.ndarray) -> tuple[int, np.ndarray]:
    """Weakly connected components of the subgraph induced by ``keep`` (labels, -1 off)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    idx = np.flatnonzero(keep)
    pos = np.full(graph.n, -1, dtype=np.int64)
    pos[idx] = np.arange(idx.size)
    e = keep[graph.src] & keep[graph.dst]
    a = coo_matrix((np.ones(int(e.sum())), (pos[graph.src[e]], pos[graph.dst[e]])),
                   shape=(idx.size, idx.size))
    count, lab = connected_components(a, directed=False)
    labels = np.full(graph.n, -1, dtype=np.int64)
    labels[idx] = lab
    return int(count), labels


def _subgraph(graph: Graph, nodes: np.ndarray) -> Graph:
    """The subgraph induced by ``nodes`` (sorted), groups restricted."""
    pos = np.full(graph.n, -1, dtype=np.int64)
    pos[nodes] = np.arange(nodes.size)
    e = (pos[graph.src] >= 0) & (pos[graph.dst] >= 0)
    group = None if graph.group is None else graph.group[nodes]
    return Graph(int(nodes.size), pos[graph.src[e]], pos[graph.dst[e]], graph.work[nodes],
                 graph.comm[nodes], graph.mem[nodes], group=group,
                 act_mem=graph.act_mem[nodes])


def split_components(problem: Problem, max_ideals: int = COMPONENT_MAX_IDEALS,
                     deadline: float = math.inf) -> tuple[np.ndarray, list[Problem]] | None:
    """``(deleted nodes D, one Problem per component of G - D)`` as in the module
    docstring, or None when no candidate D (at most ``MAX_DELETED_SHARE`` of the work)
    splits the graph into at least two components of two or more nodes whose lattices
    all have at most ``max_ideals`` ideals (or the deadline passed). Components of one
    node join D."""
    from ..algorithms.ideals import count_ideals

    g = problem.graph
    depth, height = _heights(g)
    cands = sorted({(a, b) for a in LEVELS for b in LEVELS},
                   key=lambda ab: int((depth < ab[0]).sum() + (height < ab[1]).sum()))
    tried: set[bytes] = set()
    for a, b in cands:
        if clock() > deadline:
            return None
        drop = (depth < a) | (height < b)
        if float(g.work[drop].sum()) > MAX_DELETED_SHARE * float(g.work.sum()) or drop.all():
            continue
        key = np.packbits(drop).tobytes()
        if key in tried:
            continue
        tried.add(key)
        count, labels = _components(g, ~drop)
        if count < 2:
            continue
        kept = labels >= 0
        sizes = np.bincount(labels[kept], minlength=count)
        if int((sizes >= 2).sum()) < 2:
            continue
        # G's depth levels are antichains of every component, and an antichain of w
        # nodes has 2^w down-closures: a wide level rules the candidate out cheaply
        levels = np.bincount(labels[kept] * (int(depth.max()) + 1) + depth[kept])
        if levels.max() > math.log2(max(max_ideals, 1)):
            continue
        # single-node components join D (their work is counted there)
        lone = kept & (sizes[np.maximum(labels, 0)] == 1)
        parts = [np.flatnonzero(labels == c) for c in np.flatnonzero(sizes >= 2)]
        subs = [Problem(_subgraph(g, nodes), 1) for nodes in parts]
        if all(0 <= count_ideals(p, max_ideals, reduce=False, deadline=deadline) <= max_ideals
               for p in subs):
            return np.flatnonzero(drop | lone), subs
    return None


class _SumDP:
    """The min-sum pass over one component's ideals (native), reusable for many T."""

    def __init__(self, sub: Problem, cap: float, k: int, deadline: float):
        from .._native import _ideals
        from ..algorithms.ideals import _Lattice, enumerate_lattice

        lat = _Lattice(sub, reduce=False)
        n_ideals, n_trans = lat.count(COMPONENT_MAX_IDEALS + 1, deadline)
        words = (lat.q + 63) // 64
        need = n_ideals * (16 * words + 12 * (k + 1)) + 16 * n_trans
        got = None if n_ideals < 0 or need > COMPONENT_MAX_BYTES else \
            enumerate_lattice(lat, n_ideals, n_trans, deadline)
        self.ok = got is not None
        if got is None:
            return
        bits, (fr_ptr, fr_v, fr_next, fr_start), (rem_w, rem_m) = got
        g = sub.graph
        self.N, self.k = n_ideals, k
        self.kern = _ideals.IdealKernel(g.pred_ptr, g.pred_idx, lat.outdeg, g.comm, lat.mptr,
                                        lat.midx, lat.qof, lat.qwork, lat.qmem,
                                        np.zeros_like(lat.qact), k, cap, math.inf, _RTOL)
        self.D = np.full(n_ideals * (k + 1), np.inf)
        self.par = np.full(n_ideals * k, -1, dtype=np.int32)
        self.kern.setup_dp(fr_ptr, fr_v, fr_next, fr_start, rem_w, rem_m, self.D, self.par,
                           math.inf, bits)

    def minsum(self, t: float, deadline: float) -> np.ndarray | None:
        """A vector over b = 0..k whose prefix minima are the least total cost of a chain
        of parts each <= t with at most b parts costing more than t / 2 (None at the
        deadline)."""
        self.D.fill(np.inf)
        self.D[0] = 0.0
        self.kern.ub = t * (1 + _RTOL)
        big = 0.5 * t * (1 + _RTOL) + 1e-300
        i = 0
        while i < self.N:
            if clock() > deadline:
                return None
            i = self.kern.run_sum(i, _QUOTA, big)
        k1 = self.k + 1
        return self.D[(self.N - 1) * k1:self.N * k1].copy()


def _min_plus(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``c[s] = min_{i + j = s} a[i] + b[j]`` truncated to len(a). O(len^2)."""
    out = np.full(a.size, np.inf)
    for i in np.flatnonzero(np.isfinite(a)):
        out[i:] = np.minimum(out[i:], a[i] + b[:a.size - i])
    return out


def component_bound(problem: Problem, lower: float, upper: float, *,
                    deadline: float = math.inf, rtol: float = 1e-4) -> tuple[float, dict]:
    """The largest T in [lower, upper) refuted by Claims 2 and 3 (bisection to ``rtol``), or
    ``lower`` when none is or the bound does not apply. ``lower`` must be a proven
    bound, ``upper`` a partition's bottleneck. Returns ``(bound, details)``."""
    started = clock()
    if problem.is_training:
        return lower, {"skipped": "training graph"}
    if problem.graph.n > COMPONENT_MAX_NODES:
        return lower, {"skipped": f"{problem.graph.n} nodes > COMPONENT_MAX_NODES"}
    if problem.k_eff < 2 or not (math.isfinite(upper) and upper > lower):
        return lower, {"skipped": "no gap"}
    split = split_components(problem, deadline=deadline)
    if split is None:
        return lower, {"skipped": "no split into narrow components"}
    drop, subs = split
    k = problem.k_eff
    dps = [_SumDP(p, problem.cap_limit, k, deadline) for p in subs]
    if not all(dp.ok for dp in dps):
        return lower, {"skipped": "deadline or COMPONENT_MAX_BYTES"}
    w_drop = float(problem.graph.work[drop].sum())

    def refuted(t: float) -> bool | None:
        total = np.full(k + 1, np.inf)
        total[0] = 0.0
        for dp in dps:
            got = dp.minsum(t, deadline)
            if got is None:
                return None
            total = _min_plus(total, got)
        best = w_drop + float(np.min(total))
        return best * (1 - _RTOL) > k * t * (1 + _RTOL)

    lo, hi, steps = lower, upper, 0
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        got = refuted(mid)
        if got is None:
            break
        steps += 1
        if got:
            lo = mid
        else:
            hi = mid
    details = {"deleted": int(drop.size), "components": [p.graph.n for p in subs],
               "steps": steps, "time": clock() - started}
    return lo, details
