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

Caps
----
The state is exponential in the width of the graph. Before allocating, the
ideals are counted (stopping at ``max_ideals``) and the memory is estimated
(``max_memory``); during the DP the relaxed pairs (``max_pairs``) and the time
budget are checked between native chunks. Hitting any cap raises
:class:`~pipecore.BudgetExceededError` from :func:`solve_exact` with a message
saying which cap and by how much, never an out-of-memory crash. Through
``pipecore.solve(method="ideals")`` (:func:`solve_ideals`) a cap ends the method
with termination ``capped`` (or ``time_limit``) and the chain-DP incumbent;
:func:`pipecore.solve` then hands over to its ``fallback`` method once.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._arrays import unique_sorted
from .. import errors
from .._native import _ideals
from .._runtime import Budget, ProgressFn, clock, no_progress
from ..graph import Contraction, Graph
from ..options import Option, method
from ..partition import Partition
from ..problem import MEM_RTOL, ROUND_RTOL, Problem, Schedule
from ..result import Quality, SolveResult, Termination

__all__ = ["solve_exact", "solve_ideals", "count_ideals", "DEFAULT_MAX_IDEALS",
           "DEFAULT_MAX_MEMORY", "DEFAULT_MAX_PAIRS"]

#: default cap on the number of ideals of the contracted graph.
DEFAULT_MAX_IDEALS = 5_000_000
#: default cap on the estimated memory of the lattice and DP tables (bytes).
DEFAULT_MAX_MEMORY = 3 * 1024 ** 3
#: default cap on the number of (ideal, superset) pairs relaxed.
DEFAULT_MAX_PAIRS = 2_000_000_000

#: relative slack of every pruning comparison inside the kernel (only weakens cuts).
_PRUNE_SLACK = 1e-9
_EMPTY = -2            # parent marker of an empty stage (see _ideals.pyx)

OPTIONS = (
    Option("max_ideals", int, DEFAULT_MAX_IDEALS, minimum=1, maximum=2**31 - 2,
           help="cap on the ideals of the contracted graph"),
    Option("max_pairs", int, DEFAULT_MAX_PAIRS, minimum=1, nullable=True,
           help="cap on the (ideal, superset) pairs relaxed (None: no cap)"),
    Option("max_memory", int, DEFAULT_MAX_MEMORY, minimum=1, nullable=True,
           help="cap on the estimated bytes of the lattice and DP tables (None: no cap)"),
    Option("reduce", bool, True, help="contract zero-work leaves into their only neighbour "
                                      "first (exact)"),
)


def _dominance_labels(problem: Problem) -> np.ndarray:
    """Class of every original node after contracting colocation classes, the cycles
    they create, and zero-work leaves into their only neighbour (to a fixpoint).

    *Sink rule*: a class Q with no successor class, exactly one predecessor class P
    and work(Q) = 0. Moving Q into P's stage changes no work; Q's members send
    nothing (no external consumers); a producer in P can only lose a consuming
    stage, so its stage's send term and the old stage's receive term can only
    vanish. Every stage cost weakly drops, so some optimum has Q with P.
    *Source rule*: a class S with no predecessor class, exactly one successor class T
    and work(S) = 0. Moving S into T's stage removes S's send and T's receive of
    S's tensors and changes nothing else.
    Both need Q's memory to be 0 or a cap that cannot bind (all memory fits one
    stage, with every micro-batch of 1F1B in flight), since the target stage
    gains it. Merging a leaf into its only neighbour creates no cycle. Training
    graphs use :func:`_training_rule` instead. Each round is vectorised, O(m log m).
    """
    graph = problem.graph
    label = graph.contract().node_map.astype(np.int64)
    need = problem.stage_mem
    free_mem = problem.mem_cap is None or \
        float(graph.mem.sum() + graph.act_mem.sum() * problem.k_eff) <= problem.mem_cap
    while True:
        changed = False
        for rule in (("leaf",) if graph.is_training else ("sink", "source")):
            q = int(label.max()) + 1
            w = np.bincount(label, weights=graph.work, minlength=q)
            m = np.bincount(label, weights=need, minlength=q)
            ok = (w == 0) & ((m == 0) | free_mem)
            target = _training_rule(graph, label, q, ok) if rule == "leaf" \
                else _leaf_rule(graph, label, q, ok, rule)
            if target is not None and q > 1:
                changed = True
                _, label = np.unique(target[label], return_inverse=True)
        if not changed:
            return label.astype(np.int32)


def _leaf_rule(graph: Graph, label: np.ndarray, q: int, ok: np.ndarray,
               rule: str) -> np.ndarray | None:
    """Target class per class under the sink or source rule (None: nothing to merge)."""
    s, d = label[graph.src], label[graph.dst]
    keep = s != d
    key = unique_sorted(s[keep] * q + d[keep])
    es, ed = key // q, key % q
    indeg = np.bincount(ed, minlength=q)
    outdeg = np.bincount(es, minlength=q)
    target = np.arange(q)
    if rule == "sink":  # targets have a successor, so they are never candidates
        cand = ok & (outdeg == 0) & (indeg == 1)
        target[ed[cand[ed]]] = es[cand[ed]]
    else:               # targets have a predecessor, so they are never candidates
        cand = ok & (indeg == 0) & (outdeg == 1)
        target[es[cand[es]]] = ed[cand[es]]
    return target if cand.any() else None


def _training_rule(graph: Graph, label: np.ndarray, q: int,
                   ok: np.ndarray) -> np.ndarray | None:
    """Target class per class under the *leaf rule* of training graphs (None: nothing
    to merge).

    A class Q (forward and backward nodes) with work(Q) = 0 whose edges, of any
    kind, all join it to one other class P joins P. Proof: moving Q to P's stage
    keeps every precedence edge forward (Q's forward and mirrored edges all join it
    to P); work is unchanged; a producer in Q then has every consumer in its stage
    (its send and receive terms vanish); a producer in P loses at most a consuming
    stage; no other producer touches Q. So no stage cost grows, and memory is as
    for the inference rules. Two candidates that are each other's only neighbour:
    the larger id joins the smaller. O(m log m).
    """
    s, d = label[graph.src], label[graph.dst]
    keep = s != d
    a, b = np.minimum(s[keep], d[keep]), np.maximum(s[keep], d[keep])
    key = unique_sorted(a * q + b)
    ea, eb = key // q, key % q
    deg = np.bincount(ea, minlength=q) + np.bincount(eb, minlength=q)
    cand = ok & (deg == 1)
    target = np.arange(q)
    for x, y in ((ea, eb), (eb, ea)):   # x a candidate whose only neighbour is y
        sel = cand[x] & (~cand[y] | (y < x))
        target[x[sel]] = y[sel]
    return target if (target != np.arange(q)).any() else None


class _Lattice:
    """The (reduced) quotient relabelled in topological order, plus original-graph costs:
    everything the native kernel needs, built once per problem. O(n + m log m)."""

    def __init__(self, problem: Problem, reduce: bool = True):
        graph = problem.graph
        if reduce:
            node_map = _dominance_labels(problem)
            con = Contraction.build(graph, node_map, int(node_map.max()) + 1)
        else:
            con = graph.contract()
        quo = con.graph
        self.problem = problem
        topo = quo.topological_order()
        rank = np.empty(quo.n, dtype=np.int32)
        rank[topo] = np.arange(quo.n, dtype=np.int32)
        self.q = q = quo.n
        self.qof = rank[con.node_map].astype(np.int32)           # original -> quotient id
        self.midx = np.argsort(self.qof, kind="stable").astype(np.int32)
        self.mptr = np.zeros(q + 1, dtype=np.int32)
        np.cumsum(np.bincount(self.qof, minlength=q), out=self.mptr[1:])
        src, dst = rank[quo.src], rank[quo.dst]                  # quotient edges: unique
        order = np.lexsort((dst, src))
        src, dst = src[order], dst[order]
        self.qsucc_ptr = np.zeros(q + 1, dtype=np.int32)
        np.cumsum(np.bincount(src, minlength=q), out=self.qsucc_ptr[1:])
        self.qsucc_idx = np.ascontiguousarray(dst, dtype=np.int32)
        self.qindeg = np.bincount(dst, minlength=q).astype(np.int32)
        self.qwork = np.ascontiguousarray(quo.work[topo])
        qmem = np.bincount(con.node_map, weights=problem.stage_mem, minlength=q)
        self.qmem = np.ascontiguousarray(qmem[topo])
        qact = np.bincount(con.node_map, weights=graph.act_mem, minlength=q)
        self.qact = np.ascontiguousarray(qact[topo])
        self.outdeg = np.diff(graph.succ_ptr).astype(np.int32)
        self.total_work = float(self.qwork.sum())
        self.total_mem = float(self.qmem.sum())
        if self.qsucc_idx.size == 0:  # kernels never take pointers into empty arrays
            self.qsucc_idx = np.zeros(1, dtype=np.int32)

    def kernel(self, k: int) -> _ideals.IdealKernel:
        g, cap = self.problem.graph, self.problem.mem_cap
        cap_prune = math.inf if cap is None else cap * (1 + _PRUNE_SLACK)
        return _ideals.IdealKernel(g.pred_ptr, g.pred_idx, self.outdeg, g.comm, self.mptr,
                                   self.midx, self.qof, self.qwork, self.qmem, self.qact, k,
                                   self.problem.cap_limit, cap_prune, _PRUNE_SLACK,
                                   training=g.is_training,
                                   one_f_one_b=self.problem.schedule is Schedule.ONE_F_ONE_B)

    def expand(self, stage_q: np.ndarray) -> Partition:
        return self.problem.expand(np.asarray(stage_q, dtype=np.int32)[self.qof])

    def count(self, cap: int, deadline: float = math.inf) -> tuple[int, int]:
        """(ideals, transitions), counting stops once > cap; (-1, .) past ``deadline``.

        First an O(q + m) pre-check: each level of the longest-path layering is an
        antichain, and the down-closures of an antichain's 2^w subsets are distinct
        ideals, so a level wider than log2(cap) answers "> cap" without counting."""
        from .._native import _graph

        level = np.empty(self.q, dtype=np.int32)
        _graph.depth(np.arange(self.q, dtype=np.int32), self.qsucc_ptr, self.qsucc_idx, level)
        if self.q and int(np.bincount(level).max()) > math.log2(max(cap, 1)):
            return cap + 1, -1
        return _ideals.count_ideals(self.qsucc_ptr, self.qsucc_idx, self.qindeg, int(cap),
                                    deadline)

    def class_members(self, c: int) -> np.ndarray:
        return self.midx[self.mptr[c]:self.mptr[c + 1]]


#: (member bitsets, (fr_ptr, fr_v, fr_next, fr_start), (rem_work, rem_mem)).
LatticeArrays = tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                      tuple[np.ndarray, np.ndarray]]


def enumerate_lattice(lat: _Lattice, n_ideals: int, n_trans: int,
                      deadline: float = math.inf) -> LatticeArrays | None:
    """Enumerate the ``n_ideals`` ideals of ``lat`` (as counted by :meth:`_Lattice.count`),
    sorted by size, and link their frontier transitions: ``(bits, fr, rem)`` with the
    member bitsets (N x words), the transition arrays ``(fr_ptr, fr_v, fr_next,
    fr_start)`` and the remainders ``(work, mem)`` of each ideal, as
    :meth:`_ideals.IdealKernel.setup_dp` takes them; None past ``deadline``.
    O(N (q / 64 + deg)) time, O(N q / 64 + transitions) memory."""
    q = lat.q
    words = (q + 63) // 64
    zob = _splitmix64(max(q, 1), 0x5EED)
    bits = np.empty((n_ideals, max(words, 1)), dtype=np.uint64)
    avail = np.empty_like(bits)
    size = np.empty(n_ideals, dtype=np.int32)
    iw, im = np.empty(n_ideals), np.empty(n_ideals)
    ih = np.empty(n_ideals, dtype=np.uint64)
    fcount = np.empty(n_ideals, dtype=np.int32)
    got = _ideals.enumerate_ideals(lat.qsucc_ptr, lat.qsucc_idx, lat.qindeg, lat.qwork,
                                   lat.qmem, zob, bits, avail, size, iw, im, ih, fcount,
                                   deadline)
    if got < 0:
        return None
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
    fr = (fr_ptr, np.empty(max(n_trans, 1), dtype=np.int32),
          np.empty(max(n_trans, 1), dtype=np.int32), np.empty(max(n_trans, 1), dtype=np.int64))
    table = np.empty(1 << max(1, int(2 * n_ideals - 1).bit_length()), dtype=np.int32)
    bad = _ideals.build_transitions(bits, avail, ih, zob, *fr, table)
    if bad:  # pragma: no cover - internal consistency
        raise errors.SolverError(f"{bad} ideal transitions could not be resolved")
    return bits, fr, (lat.total_work - iw, lat.total_mem - im)


def count_ideals(problem: Problem | Graph, cap: int = DEFAULT_MAX_IDEALS,
                 reduce: bool = True, deadline: float = math.inf) -> int:
    """Number of ideals the exact solver would enumerate (counting stops once > ``cap``;
    -1 when the monotonic clock passes ``deadline`` first).

    O(N * (q/64 + deg)) time and O(q) memory. Useful to decide up front whether the
    exact solver is affordable.

    Examples
    --------
    >>> from pipecore import Graph
    >>> count_ideals(Graph(3, [0, 0], [1, 2], work=[1, 1, 1]))   # {}, {0}, {0,1}, {0,2}, V
    5
    """
    if isinstance(problem, Graph):
        problem = Problem(problem, 1)
    return _Lattice(problem, reduce).count(cap, deadline)[0]


def _splitmix64(n: int, seed: int) -> np.ndarray:
    """n well-mixed uint64 values (SplitMix64, vectorised); avoids importing numpy.random."""
    with np.errstate(over="ignore"):
        z = (np.arange(1, n + 1, dtype=np.uint64) + np.uint64(seed % 2 ** 64)) \
            * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _orders(lat: _Lattice, seed: int | None, n_random: int) -> list[np.ndarray]:
    """A few topological orders of the quotient: by index, depth-first (LIFO Kahn,
    keeps branches contiguous), by longest path to a sink, and random-key ones."""
    from .._native import _graph

    q = lat.q
    out = [np.arange(q, dtype=np.int32)]

    def kahn(key: np.ndarray | None, lifo: bool = False) -> np.ndarray:
        order = np.empty(q, dtype=np.int32)
        _graph.kahn(lat.qsucc_ptr, lat.qsucc_idx, lat.qindeg, key, lifo, order)
        return order

    out.append(kahn(None, lifo=True))
    height = np.zeros(q)  # nodes with the longest remaining path first (critical path)
    _ideals.heights(lat.qsucc_ptr, lat.qsucc_idx, lat.qwork, height)
    out.append(kahn(-height))
    base = 0 if seed is None else int(seed)
    for r in range(n_random):
        keys = (_splitmix64(q, base * 1_000_003 + r + 1) >> np.uint64(11)).astype(np.float64)
        out.append(kahn(keys))
    return out


def _initial_upper_bound(lat: _Lattice, kern: Any, k: int, seed: int | None,
                         n_random: int = 6, deadline: float = math.inf
                         ) -> tuple[float, np.ndarray | None]:
    """Best optimal k-slicing over a few topological orders (O(q^2 deg) each), and the
    O(n + m) work-quantile cut of the first order (GPipe-style) as a start; no further
    order is sliced once the clock passes ``deadline``."""
    best, best_stage = math.inf, None
    w = lat.qwork
    if lat.total_work > 0:
        mid = np.cumsum(w) - 0.5 * w
        seed_stage = np.minimum((mid * k / lat.total_work).astype(np.int64), k - 1)
        seed_stage = seed_stage.astype(np.int32)
        part = lat.expand(seed_stage)
        if lat.problem.is_valid(part):
            best, best_stage = part.bottleneck, seed_stage
    stage = np.zeros(lat.q, dtype=np.int32)
    for order in _orders(lat, seed, n_random):
        if clock() > deadline and best_stage is not None:
            break
        kern.ub = best                 # later orders only look for strictly better slicings
        val = kern.chain(order, stage, deadline)
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


class _ExactDP:
    """One run of the exact DP: the steps of the module docstring, each a method."""

    def __init__(self, problem: Problem, budget: Budget, progress: ProgressFn, *,
                 max_ideals: int, max_pairs: int | None, max_memory: int | None,
                 reduce: bool, seed: int | None, warm_start: bool,
                 upper_bound: Partition | None):
        self.problem, self.budget, self.progress = problem, budget, progress
        self.max_ideals, self.max_pairs, self.max_memory = max_ideals, max_pairs, max_memory
        self.timings: dict[str, float] = {}
        t0 = clock()
        self.lat = _Lattice(problem, reduce)
        self.ke = min(problem.k, self.lat.q)  # more stages than classes only adds empty ones
        self.kern = self.lat.kernel(self.ke)
        self.stats: dict[str, Any] = {"quotient_nodes": self.lat.q, "k_effective": self.ke}
        self.ub, self.incumbent = self._incumbent(seed, warm_start, upper_bound)
        self.timings["initial_ub"] = clock() - t0

    def _incumbent(self, seed: int | None, warm_start: bool, given: Partition | None):
        ub, stage_q = (_initial_upper_bound(self.lat, self.kern, self.ke, seed,
                                            deadline=self.budget.deadline) if warm_start
                       else (math.inf, None))
        incumbent = self.lat.expand(stage_q) if stage_q is not None else None
        if given is not None:
            if not isinstance(given, Partition) or given.graph is not self.problem.graph:
                raise TypeError("upper_bound must be a Partition of the same graph")
            if given.k <= self.problem.k and self.problem.is_valid(given):
                part = self.problem.partition(given.stage)
                if incumbent is None or part.bottleneck < incumbent.bottleneck:
                    incumbent = part
                ub = min(ub, part.bottleneck)
        self.stats["initial_upper_bound"] = ub if math.isfinite(ub) else None
        return ub, incumbent

    def result(self, part: Partition | None, quality: Quality, message: str = "",
               lb: float | None = None,
               termination: Termination = Termination.COMPLETED) -> SolveResult:
        bneck = part.bottleneck if part is not None else math.inf
        if lb is None:
            lb = bneck * (1 - ROUND_RTOL) if quality is Quality.OPTIMAL else 0.0
        self.stats["timings"] = dict(self.timings)
        return SolveResult(part, upper_bound=bneck, lower_bound=lb, quality=quality,
                           termination=termination, upper_bound_source="ideals",
                           lower_bound_source="ideals (exact DP)" if lb > 0 else "",
                           method="ideals", stats=self.stats, message=message)

    def capped(self, msg: str, reason: str) -> errors.BudgetExceededError:
        self.stats["timings"] = dict(self.timings)
        return errors.BudgetExceededError(msg, reason, self.incumbent, self.stats)

    def run(self) -> SolveResult:
        lat, prob = self.lat, self.problem
        if float(lat.qmem.max()) > prob.cap_limit:   # a class cannot fit anywhere
            return self.result(None, Quality.INFEASIBLE, self._class_too_big())
        lb = max(float(lat.qwork.max()), lat.total_work / prob.k)
        if self.incumbent is not None and self.ub <= lb * (1 + ROUND_RTOL):
            self.stats["ideals"] = None
            return self.result(self.incumbent, Quality.OPTIMAL, "incumbent meets the lower "
                               "bound max(max work, W/k); no enumeration needed",
                               lb=min(lb, self.ub))
        if self.ke == 1:
            return self.result(prob.expand(np.zeros(prob.graph.n, dtype=np.int32)),
                               Quality.OPTIMAL)
        bits = self.bits = self._enumerate()
        D, par, interrupted, i = self._dp()
        if interrupted:
            msg = (f"interrupted after {i:,} of {self.stats['ideals']:,} ideals; "
                   f"best slicing returned")
            quality = Quality.FEASIBLE if self.incumbent is not None else Quality.NO_SOLUTION
            return self.result(self.incumbent, quality, msg,
                               termination=Termination.INTERRUPTED)
        V = self.stats["ideals"] - 1
        best = D[V * (self.ke + 1) + self.ke]
        if not math.isfinite(best):
            if self.incumbent is not None:  # pragma: no cover - never pruned
                raise errors.SolverError("ideal DP lost the incumbent's chain")
            return self.result(None, Quality.INFEASIBLE,
                               f"no {prob.k}-partition meets mem_cap={prob.mem_cap:g} "
                               f"(proven by exhaustive DP)")
        self.stats["dp_value"] = float(best)
        return self.result(self._reconstruct(bits, par, V), Quality.OPTIMAL)

    def _class_too_big(self) -> str:
        lat, prob, g = self.lat, self.problem, self.problem.graph
        c = int(np.argmax(lat.qmem))
        members = lat.class_members(c)
        names = ", ".join(repr(g.name(int(v))) for v in members[:5])
        more = ", ..." if members.size > 5 else ""
        return (f"nodes {names}{more} must share a stage (colocation groups and the cycles "
                f"they create) but need mem {lat.qmem[c]:g} > mem_cap {prob.mem_cap:g}")

    def _enumerate(self) -> np.ndarray:
        """Count (with caps), enumerate, sort by size and link frontier transitions."""
        t1 = clock()
        lat, ke = self.lat, self.ke
        q = lat.q
        words = (q + 63) // 64
        n_ideals, n_trans = lat.count(self.max_ideals, self.budget.deadline)
        if n_ideals < 0:
            raise self.capped("exact DP over ideals: time limit reached while counting the "
                              "ideals", "time")
        if n_ideals > self.max_ideals:
            self.stats["ideals"] = f"> {self.max_ideals}"
            raise self.capped(
                f"exact DP over ideals: the contracted graph ({q} nodes) has more than "
                f"max_ideals={self.max_ideals:,} ideals; the exact method is exponential in "
                f"the graph's width. Raise max_ideals, or use a heuristic "
                f"(method='slicegraph').", "ideals")
        need = _estimate_bytes(n_ideals, n_trans, words, ke)
        self.stats.update(ideals=n_ideals, transitions=n_trans, memory_estimate=need)
        if self.max_memory is not None and need > self.max_memory:
            raise self.capped(
                f"exact DP over ideals: {n_ideals:,} ideals and {n_trans:,} transitions need "
                f"about {_fmt_bytes(need)} > max_memory={_fmt_bytes(self.max_memory)}. Raise "
                f"max_memory, or use a heuristic (method='slicegraph').", "memory")
        lattice = enumerate_lattice(lat, n_ideals, n_trans, self.budget.deadline)
        if lattice is None:
            raise self.capped("exact DP over ideals: time limit reached while enumerating "
                              "the ideals", "time")
        bits, self.fr, self.rem = lattice
        self.timings["enumerate"] = clock() - t1
        return bits

    def _dp(self) -> tuple[np.ndarray, np.ndarray, bool, int]:
        """The DP pass in native chunks, checking caps, the budget and Ctrl-C between them."""
        t2 = clock()
        n_ideals, ke, kern = self.stats["ideals"], self.ke, self.kern
        D = np.full(n_ideals * (ke + 1), np.inf)
        D[0] = 0.0                                        # D[0][∅] = 0
        par = np.full(n_ideals * ke, -1, dtype=np.int32)
        kern.setup_dp(*self.fr, *self.rem, D, par, self.ub, self.bits)
        i, quota, interrupted = 0, 1_000_000, False
        try:
            while i < n_ideals:
                t_chunk = clock()
                allowed = quota if self.max_pairs is None else \
                    min(quota, self.max_pairs + 1 - kern.pairs)
                i = kern.run(i, max(allowed, 1))
                dt = clock() - t_chunk
                quota = min(quota * 2, 1 << 32) if dt < 0.05 else \
                    max(quota // 2, 10_000) if dt > 0.3 else quota
                self.stats.update(pairs=int(kern.pairs), expanded=int(kern.expanded))
                self.progress(i / n_ideals, kern.ub)
                if i < n_ideals:
                    self._check_caps(i, n_ideals, t2)
        except KeyboardInterrupt:
            interrupted = True
        self.timings["dp"] = clock() - t2
        self.stats.update(pairs=int(kern.pairs), expanded=int(kern.expanded),
                          examined=int(kern.examined))
        return D, par, interrupted, i

    def _check_caps(self, i: int, n_ideals: int, t2: float) -> None:
        kern = self.kern
        if self.max_pairs is not None and kern.pairs > self.max_pairs:
            self.timings["dp"] = clock() - t2
            raise self.capped(f"exact DP over ideals: more than max_pairs={self.max_pairs:,} "
                              f"pairs relaxed after {i:,} of {n_ideals:,} ideals. Raise "
                              f"max_pairs, or use a heuristic (method='slicegraph').", "pairs")
        if self.budget.expired():
            self.timings["dp"] = clock() - t2
            raise self.capped(f"exact DP over ideals: time limit reached after {i:,} of "
                              f"{n_ideals:,} ideals ({kern.pairs:,} pairs).", "time")

    def _reconstruct(self, bits: np.ndarray, par: np.ndarray, V: int) -> Partition:
        """Follow parent pointers from (V, ke) back to ∅; stage b-1 = J \\ parent."""
        q, ke = self.lat.q, self.ke

        def members(j: int) -> np.ndarray:
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
        return self.lat.expand(stage_q)


def solve_exact(graph: Graph, k: int, *, mem_cap: float | None = None,
                schedule: str = "plain", time_limit: float | None = None,
                max_ideals: int = DEFAULT_MAX_IDEALS,
                max_pairs: int | None = DEFAULT_MAX_PAIRS,
                max_memory: int | None = DEFAULT_MAX_MEMORY,
                upper_bound: Partition | None = None, seed: int | None = 0,
                reduce: bool = True, warm_start: bool = True,
                progress: ProgressFn | None = None) -> SolveResult:
    """Optimal k-stage partition by DP over the ideals (see the module docstring).

    Parameters
    ----------
    graph, k, mem_cap, schedule
        The problem (:class:`~pipecore.problem.Problem`); stages may be empty.
    time_limit : float, optional
        Seconds; exceeded -> :class:`~pipecore.BudgetExceededError`.
    max_ideals, max_pairs, max_memory : int
        Caps on the ideals of the contracted graph, the (ideal, superset) pairs
        relaxed, and the estimated bytes of the tables (``None`` = no cap for pairs
        and memory). Exceeding one raises :class:`~pipecore.BudgetExceededError`,
        whose ``reason``, ``partition`` (best known, may be None) and ``stats``
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
    SolveResult with quality ``optimal`` (lower bound = optimum up to ``ROUND_RTOL``
    relative rounding) or ``infeasible`` when no partition meets the memory cap; on
    Ctrl-C, termination ``interrupted`` with the best partition known.

    Examples
    --------
    >>> from pipecore import Graph
    >>> g = Graph(4, [0, 0, 1, 2], [1, 2, 3, 3], work=[2, 1, 1, 2], comm=[0.5] * 4)
    >>> res = solve_exact(g, 2)
    >>> res.quality.value, res.upper_bound, res.partition.stage.tolist()
    ('optimal', 4.0, [0, 0, 1, 1])
    """
    opts = solve_ideals.options.validate(  # type: ignore[attr-defined]
        dict(max_ideals=max_ideals, max_pairs=max_pairs, max_memory=max_memory, reduce=reduce))
    return _ExactDP(Problem(graph, k, mem_cap, schedule), Budget(time_limit),
                    progress or no_progress, seed=seed, warm_start=warm_start,
                    upper_bound=upper_bound, **opts).run()


@method("ideals", OPTIONS)
def solve_ideals(problem: Problem, budget: Budget, *, seed: int | None = 0,
                 progress: ProgressFn = no_progress, stop_at: float = 0.0,
                 max_ideals: int = DEFAULT_MAX_IDEALS,
                 max_pairs: int | None = DEFAULT_MAX_PAIRS,
                 max_memory: int | None = DEFAULT_MAX_MEMORY,
                 reduce: bool = True) -> SolveResult:
    """``solve(method="ideals")``: the exact DP. A cap ends it with termination
    ``capped`` (``time_limit`` for the clock) and the best partition known; the
    solver then hands over to its fallback once."""
    try:
        return _ExactDP(problem, budget, progress, max_ideals=max_ideals, max_pairs=max_pairs,
                        max_memory=max_memory, reduce=reduce, seed=seed, warm_start=True,
                        upper_bound=None).run()
    except errors.BudgetExceededError as exc:
        part = exc.partition
        term = Termination.TIME_LIMIT if exc.reason == "time" else Termination.CAPPED
        return SolveResult(part, upper_bound=part.bottleneck if part is not None else math.inf,
                           quality=Quality.FEASIBLE if part is not None else Quality.NO_SOLUTION,
                           termination=term, upper_bound_source="ideals (initial slicing)",
                           method="ideals", stats={**exc.stats, "cap": exc.reason},
                           message=str(exc))
