"""Exact solver: dynamic programming over the ideals (downsets) of the graph.

A k-partition is a chain of ideals ∅ = I0 ⊆ I1 ⊆ ... ⊆ Ik = V (DESIGN.md §1), so

    D[b][J] = min over ideals I ⊆ J of max(D[b-1][I], f(J \\ I)),   D[0][∅] = 0,

and the optimum is D[k][V]. Colocation groups and the cycles they create are
contracted first (``Graph.contract``); the ideals are those of the quotient, but
every stage cost is evaluated on the *original* nodes (communication is per
producer). Stages may be empty (I = J), memory caps are honoured per stage, and
the answer is a :class:`~pipecore.Partition` of the original graph.

Algorithm (native, ``pipecore._native._ideals``)
------------------------------------------------
0. Shrink the lattice exactly: besides groups, contract every zero-work sink
   (source) class into its only predecessor (successor) class, to a fixpoint
   (:func:`_dominance_labels` proves some optimum keeps them together). Dangling
   zero-cost outputs and weight inputs otherwise double the ideal count each:
   layer_gnmt_inference has 3.3 M ideals plain and 17,914 reduced.
1. Enumerate the N ideals by a canonical DFS (each exactly once), sort them by
   size (a linear extension of inclusion), and link every ideal J to J + v for each
   node v of its frontier (a Zobrist-hashed table of bitsets gives the ids).
2. One pass over the ideals I in size order. D[.][I] is final when I is reached;
   a DFS over the supersets J of I (adding frontier nodes in increasing index,
   which visits every J ⊇ I exactly once) keeps f(J \\ I) incrementally with
   receive / send counters in O(in-degree) per added node, and relaxes D[b][J].
   No pair is stored: memory per pair is zero (the DFS stack is O(q)). Per
   ideal the DP keeps ``8 (k+1) + 4 k`` bytes of values and parents, its member
   bitset (``8 * ceil(q / 64)`` bytes, for the reconstruction) and 24 bytes of
   remaining work / mem / frontier offset, plus 16 bytes per frontier transition;
   building the lattice briefly needs another ``16 * ceil(q / 64) + 40`` bytes per
   ideal (frontier bitsets, hash, sort copy). layer_gnmt_inference: 17,914 ideals,
   96,543 transitions, about 5 MB.

Time is O(P * deg) for P visited pairs, memory O(N * (k + words + width)).

Exact pruning (none can remove an optimal chain)
------------------------------------------------
Let UB be the value of a known valid partition (initially the best optimal
slicing of a few topological orders, see :func:`_initial_upper_bound`; then
lowered whenever the DP completes V). Every stage of an optimal chain has
``f <= OPT <= UB``, so it suffices to keep pairs with f <= UB:

* *Work + receive cut.* Along the DFS from I, work(S) and the received
  communication comm(In(S)) only grow (a producer in I that feeds S keeps
  feeding every superset), and f(S) >= work(S) + comm(In(S)). Once that exceeds UB
  no descendant can be a stage of an optimal chain: the branch is cut.
* *Memory cut.* mem(S) only grows, so a branch over the cap is cut.
* *Remainder cut.* After b stages the remaining k - b stages each hold work
  <= UB and mem <= cap, so D[b][J] is only useful when
  work(V \\ J) <= (k - b) UB and mem(V \\ J) <= (k - b) cap (the last stage must
  end at V). Ideals with no useful stage count are not expanded at all.
* *Breakpoints.* D[.][I] is non-increasing in b (empty stages). If
  D[b-1][I] = D[b-2][I], relaxing D[b][J] from (I, b-1) gives the same value as
  relaxing D[b-1][J] from (I, b-2), which then reaches D[b][J] through the
  empty-stage step; so only strict breakpoints are relaxed.
* *Early exit.* If UB meets the lower bound max(max_v work, W / k), the
  incumbent is optimal and nothing is enumerated.

Comparisons use a 1e-9 relative slack, which only weakens the cuts.
A threshold formulation (decide "is there a chain with every f <= T?", bisect
over T) would visit, in each of its passes, the same pairs as the work + receive
cut at UB = T. The warm start already puts UB at or near the optimum (it *is* the
optimum on all five shared graphs, so the DP only certifies it), hence a single
min-max pass is cheaper than several bisection passes and is what we run.

Caps and fallback
-----------------
The state is exponential in the width of the graph. Before allocating, the
ideals are counted (stopping at ``max_ideals``) and the memory is estimated
(``max_memory``); during the DP the relaxed pairs (``max_pairs``) and the time
budget are checked between native chunks. Hitting any cap raises
:class:`~pipecore.BudgetExceededError` from :func:`solve_exact` with a message
saying which cap and by how much, never an out-of-memory crash. Through
``pipecore.solve(method="ideals")`` (:func:`solve_ideals`) a cap instead falls
back to ``slicegraph`` when installed (else ``balanced``) and returns the better
of that and the chain-DP incumbent, with status ``capped`` / ``time_limit``.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .. import errors
from .._native import _ideals
from .._runtime import Budget, no_progress
from ..graph import Contraction, Graph, check_k, check_mem_cap
from ..partition import Partition
from ..result import SolveResult, Status

__all__ = ["solve_exact", "solve_ideals", "count_ideals", "DEFAULT_MAX_IDEALS",
           "DEFAULT_MAX_MEMORY", "DEFAULT_MAX_PAIRS"]

#: default cap on the number of ideals of the contracted graph.
DEFAULT_MAX_IDEALS = 5_000_000
#: default cap on the estimated memory of the lattice and DP tables (bytes).
DEFAULT_MAX_MEMORY = 3 * 1024 ** 3
#: default cap on the number of (ideal, superset) pairs relaxed.
DEFAULT_MAX_PAIRS = 2_000_000_000

_SLACK = 1e-9          # relative slack of every pruning comparison (weakens cuts only)
_MEM_TOL = 1e-12       # same tolerance as Partition.violations
_EMPTY = -2            # parent marker of an empty stage (see _ideals.pyx)


def _group_labels(graph: Graph) -> np.ndarray:
    """Class per node after contracting colocation groups and the cycles they create."""
    return graph.contract().node_map.astype(np.int64)


def _dominance_labels(graph: Graph, cap: float | None) -> np.ndarray:
    """Class of every original node after contracting groups, the cycles they create,
    and zero-work leaves into their only neighbour (to a fixpoint).

    *Sink rule*: a class Q with no successor class, exactly one predecessor class P
    and work(Q) = 0. Moving Q into P's stage changes no work; Q's members send
    nothing (no external consumers); a producer in P can only lose a consuming
    stage, so its stage's send term and the old stage's receive term can only
    vanish. Every stage cost weakly drops, so some optimum has Q with P.
    *Source rule*: a class S with no predecessor class, exactly one successor class T
    and work(S) = 0. Moving S into T's stage removes S's send and T's receive of
    S's tensors and changes nothing else.
    Both need mem(Q) = 0 or a cap that cannot bind (total mem <= cap), since the
    target stage gains Q's memory. Merging a leaf into its only neighbour creates
    no cycle. Each round is vectorised, O(m log m).
    """
    label = _group_labels(graph)
    free_mem = cap is None or float(graph.mem.sum()) <= cap
    while True:
        changed = False
        for rule in ("sink", "source"):
            q = int(label.max()) + 1
            s, d = label[graph.src], label[graph.dst]
            keep = s != d
            key = np.unique(s[keep] * q + d[keep])
            es, ed = key // q, key % q
            indeg = np.bincount(ed, minlength=q)
            outdeg = np.bincount(es, minlength=q)
            w = np.bincount(label, weights=graph.work, minlength=q)
            m = np.bincount(label, weights=graph.mem, minlength=q)
            ok = (w == 0) & ((m == 0) | free_mem)
            target = np.arange(q)
            if rule == "sink":  # targets have a successor, so they are never candidates
                cand = ok & (outdeg == 0) & (indeg == 1)
                target[ed[cand[ed]]] = es[cand[ed]]
            else:               # targets have a predecessor, so they are never candidates
                cand = ok & (indeg == 0) & (outdeg == 1)
                target[es[cand[es]]] = ed[cand[es]]
            if cand.any() and q > 1:
                changed = True
                _, label = np.unique(target[label], return_inverse=True)
        if not changed:
            return label.astype(np.int32)


class _Problem:
    """The reduced quotient relabelled in topological order, plus original-graph costs."""

    def __init__(self, graph: Graph, cap: float | None = None, reduce: bool = True):
        if reduce:
            node_map = _dominance_labels(graph, cap)
            con = Contraction.build(graph, node_map, int(node_map.max()) + 1)
        else:
            con = graph.contract()
        quo = con.graph
        self.cap = cap
        topo = quo.topological_order()
        rank = np.empty(quo.n, dtype=np.int32)
        rank[topo] = np.arange(quo.n, dtype=np.int32)
        self.graph = graph
        self.q = q = quo.n
        self.qof = rank[con.node_map].astype(np.int32)           # original -> quotient id
        self.midx = np.argsort(self.qof, kind="stable").astype(np.int32)
        self.mptr = np.zeros(q + 1, dtype=np.int32)
        np.cumsum(np.bincount(self.qof, minlength=q), out=self.mptr[1:])
        src, dst = rank[quo.src], rank[quo.dst]
        order = np.lexsort((dst, src))
        src, dst = src[order], dst[order]
        self.qsucc_ptr = np.zeros(q + 1, dtype=np.int32)
        np.cumsum(np.bincount(src, minlength=q), out=self.qsucc_ptr[1:])
        self.qsucc_idx = np.ascontiguousarray(dst, dtype=np.int32)
        self.qindeg = np.bincount(dst, minlength=q).astype(np.int32)
        self.qwork = np.ascontiguousarray(quo.work[topo])
        self.qmem = np.ascontiguousarray(quo.mem[topo])
        self.outdeg = np.diff(graph.succ_ptr).astype(np.int32)
        self.total_work = float(self.qwork.sum())
        self.total_mem = float(self.qmem.sum())
        if self.qsucc_idx.size == 0:  # kernels never take pointers into empty arrays
            self.qsucc_idx = np.zeros(1, dtype=np.int32)

    def kernel(self, k: int, cap: float | None) -> _ideals.IdealKernel:
        g = self.graph
        cap_hard = math.inf if cap is None else cap * (1 + _MEM_TOL)
        cap_prune = math.inf if cap is None else cap * (1 + _SLACK)
        return _ideals.IdealKernel(g.pred_ptr, g.pred_idx, self.outdeg, g.comm, self.mptr,
                                   self.midx, self.qof, self.qwork, self.qmem, k,
                                   cap_hard, cap_prune, _SLACK)

    def expand(self, stage_q: np.ndarray, k: int) -> Partition:
        return Partition(self.graph, np.asarray(stage_q, dtype=np.int32)[self.qof], k)

    def count(self, cap: int) -> tuple[int, int]:
        return _ideals.count_ideals(self.qsucc_ptr, self.qsucc_idx, self.qindeg, int(cap))


def count_ideals(graph: Graph, cap: int = DEFAULT_MAX_IDEALS, mem_cap: float | None = None,
                 reduce: bool = True) -> int:
    """Number of ideals the exact solver would enumerate (counting stops once > ``cap``).

    O(N * (q/64 + deg)) time and O(q) memory. Useful to decide up front whether the
    exact solver is affordable.
    """
    return _Problem(graph, mem_cap, reduce).count(cap)[0]


def _splitmix64(n: int, seed: int) -> np.ndarray:
    """n well-mixed uint64 values (SplitMix64, vectorised); avoids importing numpy.random."""
    with np.errstate(over="ignore"):
        z = (np.arange(1, n + 1, dtype=np.uint64) + np.uint64(seed % 2 ** 64)) \
            * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _orders(prob: _Problem, seed: int | None, n_random: int) -> list[np.ndarray]:
    """A few topological orders of the quotient: by index, depth-first (LIFO Kahn,
    keeps branches contiguous), by longest path to a sink, and random-key ones."""
    q = prob.q
    out = [np.arange(q, dtype=np.int32)]
    zero = np.zeros(q)

    def kahn(key, lifo=False):
        order = np.empty(q, dtype=np.int32)
        _ideals.kahn_order(prob.qsucc_ptr, prob.qsucc_idx, prob.qindeg, key, lifo, order)
        return order

    out.append(kahn(zero, lifo=True))
    # nodes with the longest remaining path first (critical-path order)
    height = np.zeros(q)
    _ideals.heights(prob.qsucc_ptr, prob.qsucc_idx, prob.qwork, height)
    out.append(kahn(-height))
    base = 0 if seed is None else int(seed)
    for r in range(n_random):
        keys = (_splitmix64(q, base * 1_000_003 + r + 1) >> np.uint64(11)).astype(np.float64)
        out.append(kahn(keys))
    return out


def _initial_upper_bound(prob: _Problem, kern, k: int, seed, n_random: int = 6):
    """Best optimal k-slicing over a few topological orders (O(q^2 deg) each)."""
    best, best_stage = math.inf, None
    # O(n + m) seed for the cut: cut the first order at work quantiles (GPipe-style)
    w = prob.qwork
    if prob.total_work > 0:
        mid = np.cumsum(w) - 0.5 * w
        seed_stage = np.minimum((mid * k / prob.total_work).astype(np.int64), k - 1)
        seed_stage = seed_stage.astype(np.int32)
        part = prob.expand(seed_stage, k)
        cap = prob.cap
        if cap is None or np.bincount(seed_stage, weights=prob.qmem, minlength=k).max() \
                <= cap * (1 + _MEM_TOL):
            best, best_stage = part.bottleneck, seed_stage
    stage = np.zeros(prob.q, dtype=np.int32)
    for order in _orders(prob, seed, n_random):
        kern.ub = best                 # later orders only look for strictly better slicings
        val = kern.chain(order, stage)
        if val < best:
            best, best_stage = val, stage.copy()
    kern.ub = math.inf
    return best, best_stage


def _estimate_bytes(n_ideals: int, n_trans: int, words: int, k: int) -> int:
    """Peak bytes of the lattice and DP tables (sort copies included)."""
    per_ideal = (3 * 8 * words          # bits + avail, and one sorted copy at a time
                 + 8 * 3 + 4 * 2        # work, mem, hash, size, frontier count
                 + 16                   # hash table (<= 4 slots of int32)
                 + 8 * 2 + 8            # remaining work / mem, frontier pointer
                 + 8 * (k + 1) + 4 * k)  # DP values and parents
    per_trans = 4 + 4 + 8               # target node, next ideal, DFS restart position
    return n_ideals * per_ideal + n_trans * per_trans + 64 * 1024 * 1024


def _fmt_bytes(b: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if b < 1024 or unit == "TiB":
            return f"{b:.1f} {unit}"
        b /= 1024
    return f"{b:.1f} TiB"  # pragma: no cover


def _capped(msg: str, reason: str, incumbent, stats) -> errors.BudgetExceededError:
    exc = errors.BudgetExceededError(msg)
    exc.reason = reason            # "ideals" | "memory" | "pairs" | "time"
    exc.partition = incumbent      # best partition known when the cap was hit (or None)
    exc.stats = stats
    return exc


def solve_exact(graph: Graph, k: int, *, mem_cap: float | None = None,
                time_limit: float | None = None, max_ideals: int = DEFAULT_MAX_IDEALS,
                max_pairs: int | None = DEFAULT_MAX_PAIRS,
                max_memory: int | None = DEFAULT_MAX_MEMORY,
                upper_bound: Partition | None = None, seed: int | None = 0,
                reduce: bool = True, warm_start: bool = True, progress=None,
                budget: Budget | None = None) -> SolveResult:
    """Optimal k-stage partition by DP over the ideals (see the module docstring).

    Parameters
    ----------
    graph, k, mem_cap
        The problem; stages may be empty, ``mem_cap`` is per stage.
    time_limit : float, optional
        Seconds; exceeded -> :class:`BudgetExceededError` (ignored if ``budget`` given).
    max_ideals, max_pairs, max_memory : int
        Caps on the ideals of the contracted graph, the (ideal, superset) pairs
        relaxed, and the estimated bytes of the tables (``None`` = no cap for pairs
        and memory). Exceeding one raises :class:`BudgetExceededError` whose
        ``reason``, ``partition`` (best known, may be None) and ``stats`` attributes
        say what happened.
    upper_bound : Partition, optional
        A valid partition (e.g. from a heuristic) to start the pruning from.
    seed : int
        Seed of the random orders used for the initial upper bound.
    reduce : bool
        Contract zero-work leaves into their only neighbour first (exact; see
        :func:`_dominance_labels`). ``False`` runs on the plain contraction.
    warm_start : bool
        Start the pruning from the best slicing of a few topological orders.
        ``False`` starts from no upper bound (slower; used to test the DP alone).

    Returns
    -------
    SolveResult with status ``optimal`` (lower bound = optimum up to 1e-12 relative
    rounding), ``infeasible`` when no partition meets the memory cap, or
    ``interrupted`` (Ctrl-C) with the best partition known.
    """
    k = check_k(k)
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a pipecore.Graph, got {type(graph).__name__}")
    cap = check_mem_cap(graph, k, mem_cap)
    if budget is None:
        budget = Budget(time_limit)
    return _solve(graph, k, cap, budget=budget, progress=progress or no_progress,
                  max_ideals=max_ideals, max_pairs=max_pairs, max_memory=max_memory,
                  upper_bound=upper_bound, seed=seed, reduce=reduce, warm_start=warm_start)


def _solve(graph, k, cap, *, budget, progress, max_ideals, max_pairs, max_memory,
           upper_bound, seed, reduce=True, warm_start=True) -> SolveResult:
    if not 1 <= int(max_ideals) < 2 ** 31 - 1:  # ideal ids are int32
        raise ValueError(f"max_ideals must be in 1 .. 2**31 - 2, got {max_ideals!r}")
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    prob = _Problem(graph, cap, reduce)
    q = prob.q
    ke = min(k, q)                      # more stages than quotient nodes only adds empty ones
    kern = prob.kernel(ke, cap)
    stats: dict = {"quotient_nodes": q, "k_effective": ke}

    # ---- incumbent: best slicing of a few orders, or the caller's partition
    ub, stage_q = (_initial_upper_bound(prob, kern, ke, seed) if warm_start
                   else (math.inf, None))
    incumbent = prob.expand(stage_q, k) if stage_q is not None else None
    if upper_bound is not None:
        if not isinstance(upper_bound, Partition) or upper_bound.graph is not graph:
            raise TypeError("upper_bound must be a Partition of the same graph")
        if upper_bound.is_valid(cap) and upper_bound.k <= k:
            part = Partition(graph, upper_bound.stage, k)
            if incumbent is None or part.bottleneck < incumbent.bottleneck:
                incumbent = part
            ub = min(ub, part.bottleneck)
    stats["initial_upper_bound"] = ub if math.isfinite(ub) else None
    timings["initial_ub"] = time.perf_counter() - t0

    def result(part, status, message="", lb=None):
        bneck = part.bottleneck if part is not None else math.inf
        if lb is None:
            lb = bneck * (1 - 1e-12) if status == Status.OPTIMAL else 0.0
        return SolveResult(part, upper_bound=bneck, lower_bound=lb, status=status,
                           method="ideals",
                           lower_bound_method="ideals (exact DP)" if lb > 0 else "",
                           wall_time=time.perf_counter() - t0, timings=timings,
                           stats=stats, message=message)

    # ---- a class (group + the cycle it creates) that cannot fit: proven infeasible
    if cap is not None and float(prob.qmem.max()) > cap * (1 + _MEM_TOL):
        c = int(np.argmax(prob.qmem))
        names = [graph.name(int(v)) for v in prob.midx[prob.mptr[c]:prob.mptr[c + 1]][:5]]
        more = ", ..." if prob.mptr[c + 1] - prob.mptr[c] > 5 else ""
        return result(None, Status.INFEASIBLE,
                      f"nodes {', '.join(map(repr, names))}{more} must share a stage "
                      f"(colocation groups and the cycles they create) but need mem "
                      f"{prob.qmem[c]:g} > mem_cap {cap:g}")

    # ---- trivial lower bound: every node lies in some stage, and some stage has >= W/k work
    lb = max(float(prob.qwork.max()), prob.total_work / k)
    if incumbent is not None and ub <= lb * (1 + 1e-12):
        stats["ideals"] = None
        return result(incumbent, Status.OPTIMAL, "incumbent meets the lower bound "
                      "max(max work, W/k); no enumeration needed", lb=min(lb, ub))
    if ke == 1:
        part = Partition(graph, np.zeros(graph.n, dtype=np.int32), k)
        return result(part, Status.OPTIMAL)

    # ---- count ideals and estimate memory before allocating anything
    t1 = time.perf_counter()
    words = (q + 63) // 64
    n_ideals, n_trans = prob.count(max_ideals)
    if n_ideals > max_ideals:
        stats["ideals"] = f"> {max_ideals}"
        raise _capped(f"exact DP over ideals: the contracted graph ({q} nodes) has more than "
                      f"max_ideals={max_ideals:,} ideals; the exact method is exponential in "
                      f"the graph's width. Raise max_ideals, or use a heuristic "
                      f"(method='slicegraph').", "ideals", incumbent, stats)
    need = _estimate_bytes(n_ideals, n_trans, words, ke)
    stats.update(ideals=n_ideals, transitions=n_trans, memory_estimate=need)
    if max_memory is not None and need > max_memory:
        raise _capped(f"exact DP over ideals: {n_ideals:,} ideals and {n_trans:,} transitions "
                      f"need about {_fmt_bytes(need)} > max_memory={_fmt_bytes(max_memory)}. "
                      f"Raise max_memory, or use a heuristic (method='slicegraph').",
                      "memory", incumbent, stats)

    # ---- enumerate, sort by size, link frontier transitions
    zob = _splitmix64(max(q, 1), 0x5EED)
    bits = np.empty((n_ideals, max(words, 1)), dtype=np.uint64)
    avail = np.empty_like(bits)
    size = np.empty(n_ideals, dtype=np.int32)
    iw, im = np.empty(n_ideals), np.empty(n_ideals)
    ih = np.empty(n_ideals, dtype=np.uint64)
    fcount = np.empty(n_ideals, dtype=np.int32)
    got = _ideals.enumerate_ideals(prob.qsucc_ptr, prob.qsucc_idx, prob.qindeg, prob.qwork,
                                   prob.qmem, zob, bits, avail, size, iw, im, ih, fcount)
    if got != n_ideals:  # pragma: no cover - internal consistency
        raise errors.SolverError(f"ideal enumeration found {got} ideals, counted {n_ideals}")
    perm = np.argsort(size, kind="stable")
    del size
    bits = bits[perm]      # one array at a time: at most one extra copy is alive
    avail = avail[perm]
    iw, im, ih, fcount = iw[perm], im[perm], ih[perm], fcount[perm]
    del perm
    fr_ptr = np.zeros(n_ideals + 1, dtype=np.int64)
    np.cumsum(fcount, out=fr_ptr[1:])
    del fcount
    fr_v = np.empty(max(n_trans, 1), dtype=np.int32)
    fr_next = np.empty(max(n_trans, 1), dtype=np.int32)
    fr_start = np.empty(max(n_trans, 1), dtype=np.int64)
    table = np.empty(1 << max(1, int(2 * n_ideals - 1).bit_length()), dtype=np.int32)
    bad = _ideals.build_transitions(bits, avail, ih, zob, fr_ptr, fr_v, fr_next, fr_start, table)
    if bad:  # pragma: no cover - internal consistency
        raise errors.SolverError(f"{bad} ideal transitions could not be resolved")
    del avail, table, ih
    timings["enumerate"] = time.perf_counter() - t1

    # ---- the DP
    t2 = time.perf_counter()
    rem_work = prob.total_work - iw
    rem_mem = prob.total_mem - im
    del iw, im
    D = np.full(n_ideals * (ke + 1), np.inf)
    D[0] = 0.0                                        # D[0][∅] = 0
    par = np.full(n_ideals * ke, -1, dtype=np.int32)
    kern.setup_dp(fr_ptr, fr_v, fr_next, fr_start, rem_work, rem_mem, D, par, ub)
    i, quota, interrupted = 0, 1_000_000, False
    try:
        while i < n_ideals:
            t_chunk = time.perf_counter()
            allowed = quota if max_pairs is None else min(quota, max_pairs + 1 - kern.pairs)
            i = kern.run(i, max(allowed, 1))
            dt = time.perf_counter() - t_chunk
            if dt < 0.05:
                quota = min(quota * 2, 1 << 32)
            elif dt > 0.3:
                quota = max(quota // 2, 10_000)
            stats.update(pairs=int(kern.pairs), expanded=int(kern.expanded))
            progress(i / n_ideals, kern.ub)
            if i < n_ideals and max_pairs is not None and kern.pairs > max_pairs:
                timings["dp"] = time.perf_counter() - t2
                raise _capped(f"exact DP over ideals: more than max_pairs={max_pairs:,} "
                              f"pairs relaxed after {i:,} of {n_ideals:,} ideals. Raise "
                              f"max_pairs, or use a heuristic (method='slicegraph').",
                              "pairs", incumbent, stats)
            if i < n_ideals and budget.expired():
                timings["dp"] = time.perf_counter() - t2
                raise _capped(f"exact DP over ideals: time limit of {budget.time_limit:g} s "
                              f"reached after {i:,} of {n_ideals:,} ideals "
                              f"({kern.pairs:,} pairs).", "time", incumbent, stats)
    except KeyboardInterrupt:
        interrupted = True
    timings["dp"] = time.perf_counter() - t2
    stats.update(pairs=int(kern.pairs), expanded=int(kern.expanded),
                 examined=int(kern.examined))
    if interrupted:
        if incumbent is None:
            return result(None, Status.INTERRUPTED, "interrupted before any partition was found")
        return result(incumbent, Status.INTERRUPTED,
                      f"interrupted after {i:,} of {n_ideals:,} ideals; best slicing returned")

    V = n_ideals - 1
    best = D[V * (ke + 1) + ke]
    if not math.isfinite(best):
        if incumbent is not None:  # pragma: no cover - the incumbent's chain is never pruned
            raise errors.SolverError("ideal DP lost the incumbent's chain")
        return result(None, Status.INFEASIBLE,
                      f"no {k}-partition meets mem_cap={cap:g} (proven by exhaustive DP)")
    part = _reconstruct(prob, bits, par, ke, k, V)
    stats["dp_value"] = float(best)
    return result(part, Status.OPTIMAL)


def _reconstruct(prob: _Problem, bits, par, ke: int, k: int, V: int) -> Partition:
    """Follow parent pointers from (V, ke) back to ∅; stage b-1 = J \\ parent."""
    q = prob.q

    def members(j):
        return np.unpackbits(bits[j].view(np.uint8), bitorder="little")[:q].astype(bool)

    stage_q = np.full(q, -1, dtype=np.int32)
    J, b = V, ke
    while b > 0:
        p = int(par[J * ke + b - 1])
        if p == _EMPTY:
            b -= 1
            continue
        if p < 0:  # pragma: no cover - internal consistency
            raise errors.SolverError(f"ideal DP: no parent for ideal {J} at stage {b}")
        stage_q[members(J) & ~members(p)] = b - 1
        J, b = p, b - 1
    if J != 0 or (stage_q < 0).any():  # pragma: no cover - internal consistency
        raise errors.SolverError("ideal DP: reconstruction did not reach the empty ideal")
    return prob.expand(stage_q, k)


def solve_ideals(graph: Graph, k: int, *, mem_cap=None, budget: Budget | None = None,
                 seed=0, progress=None, max_ideals: int = DEFAULT_MAX_IDEALS,
                 max_pairs: int | None = DEFAULT_MAX_PAIRS,
                 max_memory: int | None = DEFAULT_MAX_MEMORY, upper_bound=None,
                 reduce: bool = True, fallback: str | None = "auto", **_) -> SolveResult:
    """``solve(method="ideals")``: the exact DP, with a fallback when a cap is hit.

    On :class:`BudgetExceededError` (ideals, memory, pairs or time) this runs
    ``fallback`` (``"auto"``: ``slicegraph`` if installed, else ``balanced``; ``None``:
    re-raise) on the remaining budget and returns the better of its partition and
    the exact solver's incumbent, with status ``capped`` (``time_limit`` when the
    time ran out) and a message naming the cap.
    """
    budget = budget if budget is not None else Budget(None)
    try:
        return _solve(graph, k, mem_cap, budget=budget, progress=progress or no_progress,
                      max_ideals=max_ideals, max_pairs=max_pairs, max_memory=max_memory,
                      upper_bound=upper_bound, seed=seed, reduce=reduce)
    except errors.BudgetExceededError as exc:
        if fallback is None:
            raise
        return _fallback(graph, k, mem_cap, budget, seed, progress, exc, fallback)


def _fallback(graph, k, mem_cap, budget, seed, progress, exc, fallback) -> SolveResult:
    from ..solve import get_method

    t0 = time.perf_counter()
    names = ["slicegraph", "balanced"] if fallback == "auto" else [fallback]
    res, used = None, None
    for name in names:
        try:
            fn = get_method(name)
        except ValueError:
            continue
        sub = budget if math.isinf(budget.remaining()) else Budget(max(budget.remaining(), 1.0))
        res = fn(graph, k, mem_cap=mem_cap, budget=sub, seed=seed,
                 progress=progress or no_progress)
        used = name
        break
    inc = getattr(exc, "partition", None)
    part, source = None, None
    if res is not None and res.partition is not None:
        part, source = res.partition, used
    if inc is not None and (part is None or inc.bottleneck < part.bottleneck):
        part, source = inc, "ideals' initial slicing"
    status = Status.TIME_LIMIT if getattr(exc, "reason", "") == "time" else Status.CAPPED
    msg = f"{exc} Fell back to {used or 'nothing'}; returned the best of it and the " \
          f"incumbent (from {source or 'none'})."
    stats = dict(getattr(exc, "stats", {}) or {})
    stats["fallback"] = used
    timings = {"fallback": time.perf_counter() - t0}
    if part is None:
        return SolveResult(None, status=status, method="ideals", message=msg, stats=stats,
                           timings=timings)
    lb = res.lower_bound if (res is not None and source == used) else 0.0
    return SolveResult(part, upper_bound=part.bottleneck, lower_bound=min(lb, part.bottleneck),
                       status=status, method=f"ideals->{source}", message=msg, stats=stats,
                       timings=timings, lower_bound_method=res.lower_bound_method
                       if (res is not None and lb > 0) else "")
