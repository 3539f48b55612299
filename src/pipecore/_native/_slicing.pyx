"""Slicing DP over a topological order, and Kahn decoders (SliceGraph's inner step).

For a fixed order pi of the original nodes in which every colocation class
(quotient node) is contiguous, a k-stage partition that keeps every edge forward
is any segmentation of pi into at most k contiguous runs whose cuts fall between
classes. :class:`Slicer` finds the segmentation minimising the bottleneck stage
cost f (DESIGN.md section 1, communication included) under an optional
per-stage memory cap, exactly.

Segment costs, incrementally
----------------------------
Positions are 0..n-1; ``maxsucc[v]`` is the largest position of a successor of v.
For a fixed end j the start a sweeps down from j and node v = pi[a] is absorbed:

* work += work[v], mem += mem[v];
* v sends its tensor iff ``maxsucc[v] > j`` (its successors all lie after a);
* if v was counted as received (a successor of v lay in (a, j]) it is now inside:
  recv -= comm[v];
* every predecessor u of v lies before a, so u is received (once: a stamp array).

Each step is O(1 + indeg v), so all segments ending at j with start >= a cost
O(sum of indegrees in [a, j]).

Exact pruning. For fixed j, work(a..j) and send(a..j) only grow as a decreases
(a node sending past j keeps sending), so ``work + send`` is a monotone lower
bound on every longer segment's cost, and memory is monotone too. The sweep for
end j stops at the first a with ``work + send > T`` or ``mem > cap``: no segment
starting at or before a can have cost <= T or fit the cap. (f itself is not
monotone - absorbing a producer removes its receive cost - so a greedy packing
would not be exact; only the window is pruned.)

Optimisation: bisection with candidate snapping
-----------------------------------------------
``check(T)`` computes F[j] = fewest segments covering prefix j with every
segment cost <= T (cost and memory), an O(S + n) DP over the S enumerated
segments, and returns whether F[n] <= k, the largest cost M <= T on its
segmentation, and ``nxt`` = the smallest segment cost (or pruning bound) above
T. Invariants: ``hi`` is the bottleneck of a feasible segmentation, ``lo`` is a
lower bound on the optimum T*. A feasible check sets hi = M <= T; an infeasible
one proves T* >= nxt > T (no segment cost lies in (T, nxt)), so lo = nxt. We
test T = (lo + hi) / 2 (or lo itself when the midpoint is not strictly inside)
until lo >= hi, at which point hi = T*. The interval at least halves each step
and lo snaps to actual segment costs, so in practice ~log2(S) checks.

Complexity. Enumerating segments with ``work + send <= hi0`` (hi0 = the cost of
the work-balanced cut of the same order) costs O(sum over stored segments of
(1 + indeg)), S ~ n * (n / k) for balanced costs instead of the O(k n^2) of the
plain DP; each check is O(S + n), and there are O(log) checks. When S exceeds
``max_store`` the segments are recomputed inside every check with the sharper
bound T (no storage, same exactness), and ``max_checks`` or ``deadline`` (also
checked inside a check, once a feasible segmentation is known) stop early with the
best segmentation so far (then the result is flagged as not proven optimal).

Pruning for BRKGA. With a bound ``ub`` below the balanced cut, only segments with
``work + send <= ub`` are stored and T = ub is tested first; if it is infeasible the
order's optimum exceeds ub and the balanced-cut value is returned after one check
(flagged unproven) - an order that cannot beat the incumbent is not worth ~20 checks.
"""
from libc.math cimport INFINITY
from libc.stdint cimport int32_t, uint8_t, uint64_t

import numpy as np

from pipecore._native._clock cimport now
from pipecore._native._cost cimport stage_costs_into
from pipecore._native._graph cimport KAHN_KEYS, kahn_into, order_positions


cdef void kahn_keys_into(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                         const int32_t[::1] pred_ptr, const double[::1] keys,
                         int32_t[::1] indeg, int32_t[::1] heap,
                         int32_t[::1] order) noexcept nogil:
    """Kahn's algorithm emitting the ready node with the smallest key (ties by index),
    via the shared kernel. O((n + m) log n)."""
    cdef Py_ssize_t i
    for i in range(indeg.shape[0]):
        indeg[i] = pred_ptr[i + 1] - pred_ptr[i]
    kahn_into(succ_ptr, succ_idx, indeg, keys, KAHN_KEYS, heap, order)


def path_levels(const int32_t[::1] order, const int32_t[::1] succ_ptr,
                const int32_t[::1] succ_idx, const double[::1] weight,
                double[::1] top, double[::1] bottom):
    """Longest weighted path into (``top``, excluding the node) and out of (``bottom``,
    including it) every node, along a topological order. O(n + m)."""
    cdef Py_ssize_t n = order.shape[0], i, e
    cdef int32_t u, v
    cdef double b
    with nogil:
        for i in range(n):
            top[i] = 0.0
        for i in range(n):
            u = order[i]
            for e in range(succ_ptr[u], succ_ptr[u + 1]):
                v = succ_idx[e]
                if top[v] < top[u] + weight[u]:
                    top[v] = top[u] + weight[u]
        for i in range(n - 1, -1, -1):
            u = order[i]
            b = 0.0
            for e in range(succ_ptr[u], succ_ptr[u + 1]):
                v = succ_idx[e]
                if bottom[v] > b:
                    b = bottom[v]
            bottom[u] = b + weight[u]


# --------------------------------------------------------------------------- segments
cdef Py_ssize_t sweep_end(int32_t j, double bound, double cap,
                          const double[::1] pw, const double[::1] pc, const double[::1] pm,
                          const int32_t[::1] pmax, const uint8_t[::1] cut_ok,
                          const int32_t[::1] ppred_ptr, const int32_t[::1] ppred_idx,
                          int32_t[::1] mark, int32_t stamp,
                          int32_t* out_a, double* out_c, Py_ssize_t capacity,
                          double* stopval) noexcept nogil:
    """Costs of every segment [a, j] with an allowed start, for a = j down to the pruning point.

    All arrays are indexed by position in the order (``pw/pc/pm`` work, comm, mem;
    ``pmax`` the last successor position; ``ppred_*`` predecessor positions), so the
    sweep walks memory sequentially. Writes (a, cost) pairs (at most ``capacity``;
    returns -1 if more were needed) and sets ``stopval`` to the ``work + send`` bound
    at which the sweep stopped (INFINITY if it reached position 0 or stopped on
    memory). O(sum of 1 + indeg over the window).
    """
    cdef double w = 0.0, s = 0.0, r = 0.0, mm = 0.0
    cdef Py_ssize_t cnt = 0, e
    cdef int32_t a = j, u
    cdef bint capped = cap < INFINITY
    stopval[0] = INFINITY
    while a >= 0:
        w += pw[a]
        if pmax[a] > j:
            s += pc[a]
        if mark[a] == stamp:
            r -= pc[a]
        for e in range(ppred_ptr[a], ppred_ptr[a + 1]):
            u = ppred_idx[e]
            if mark[u] != stamp:
                mark[u] = stamp
                r += pc[u]
        if capped:
            mm += pm[a]
            if mm > cap:
                break
        if w + s > bound:
            stopval[0] = w + s
            break
        if a == 0 or cut_ok[a - 1]:
            if cnt >= capacity:
                return -1
            out_a[cnt] = a
            out_c[cnt] = w + s + (r if r > 0.0 else 0.0)
            cnt += 1
        a -= 1
    return cnt


cdef Py_ssize_t sweep_end_training(int32_t j, double bound, double cap,
                                   const double[::1] pw, const double[::1] pc,
                                   const double[::1] pm, const int32_t[::1] pmax,
                                   const uint8_t[::1] cut_ok,
                                   const int32_t[::1] ppred_ptr, const int32_t[::1] ppred_idx,
                                   const int32_t[::1] psucc_ptr, const int32_t[::1] psucc_idx,
                                   int32_t[::1] mark, int32_t[::1] outc, int32_t stamp,
                                   int32_t* out_a, double* out_c, Py_ssize_t capacity,
                                   double* stopval) noexcept nogil:
    """:func:`sweep_end` for training graphs (DESIGN.md section 1b), where an edge may
    point backwards in the order (it touches a backward node): a predecessor may lie
    after j or inside the window, a successor before a. Keeps per window node the
    count of successors outside [a, j] (``outc``) so send is exact, and prunes on
    ``work + comm sent past j + comm received from after j``, which only grows as
    a decreases (those producers never join the window). O(sum of 1 + deg)."""
    cdef double w = 0.0, s = 0.0, r = 0.0, mm = 0.0, sfwd = 0.0, rafter = 0.0, lb
    cdef Py_ssize_t cnt = 0, e
    cdef int32_t a = j, u, t, nout
    cdef bint capped = cap < INFINITY
    stopval[0] = INFINITY
    while a >= 0:
        w += pw[a]
        if mark[a] == stamp:
            r -= pc[a]
        nout = 0
        for e in range(psucc_ptr[a], psucc_ptr[a + 1]):
            t = psucc_idx[e]
            if t > j or t < a:
                nout += 1
        outc[a] = nout
        if nout > 0:
            s += pc[a]
        if pmax[a] > j:
            sfwd += pc[a]
        for e in range(ppred_ptr[a], ppred_ptr[a + 1]):
            u = ppred_idx[e]
            if a < u <= j:
                outc[u] -= 1
                if outc[u] == 0:
                    s -= pc[u]
            elif mark[u] != stamp:
                mark[u] = stamp
                r += pc[u]
                if u > j:
                    rafter += pc[u]
        if capped:
            mm += pm[a]
            if mm > cap:
                break
        lb = w + sfwd + rafter
        if lb > bound:
            stopval[0] = lb
            break
        if a == 0 or cut_ok[a - 1]:
            if cnt >= capacity:
                return -1
            out_a[cnt] = a
            out_c[cnt] = w + s + (r if r > 0.0 else 0.0)
            cnt += 1
        a -= 1
    return cnt


cdef class Slicer:
    """Exact slicing of topological orders of one graph; buffers are reused across calls.

    Built once per (graph, contraction); :meth:`slice_order` takes an order of the
    original nodes with classes contiguous, :meth:`decode` a key vector over quotient
    nodes (Kahn smallest-key-first, expanded to original nodes, then sliced).
    """
    cdef public int k
    cdef public double cap
    cdef public Py_ssize_t max_store
    cdef public int max_checks
    cdef public Py_ssize_t n, q
    cdef public long checks, stored_mode_calls, recompute_mode_calls, unproven
    cdef public double deadline, best_val
    cdef int32_t[::1] best_stage
    cdef const int32_t[::1] succ_ptr, succ_idx, pred_ptr, pred_idx
    cdef const double[::1] work, comm, mem
    cdef const int32_t[::1] node_map, member_ptr, member_idx
    cdef const int32_t[::1] q_succ_ptr, q_succ_idx, q_pred_ptr
    cdef int32_t[::1] pos, maxsucc, mark, F, par, stage, qorder, order, indeg, heap, kmark, seg_a
    cdef uint8_t[::1] cut_ok
    cdef double[::1] parc, kw, kr, ks, seg_c, kmem, pw, pc, pm
    cdef int32_t[::1] ppred_ptr, ppred_idx
    cdef int32_t[::1] store_a
    cdef double[::1] store_c
    cdef Py_ssize_t[::1] store_ptr
    cdef int32_t stamp
    cdef double total_work
    cdef public bint training, onef
    cdef const double[::1] smem, act
    cdef int32_t[::1] psucc_ptr, psucc_idx, outc
    cdef double[::1] cs, ca, ksm, kac

    def __init__(self, graph, contraction, int k, mem, double cap_limit,
                 Py_ssize_t max_store=20_000_000, int max_checks=200, bint one_f_one_b=False):
        """``mem``: memory per node as the problem counts it; ``cap_limit``: the cap with
        its tolerance already applied (``Problem.cap_limit``, inf for none).
        ``one_f_one_b``: stage memory is ``graph.mem + f * graph.act_mem`` with f the
        number of non-empty stages from it to the last (``mem`` must then be
        ``graph.mem + graph.act_mem``, the one-micro-batch lower bound)."""
        g = graph
        self.training = g.is_training
        self.onef = one_f_one_b and cap_limit < INFINITY and bool(np.any(g.act_mem > 0))
        self.smem = np.ascontiguousarray(g.mem, dtype=np.float64)
        self.act = np.ascontiguousarray(g.act_mem, dtype=np.float64)
        self.psucc_ptr = np.empty(g.n + 1, dtype=np.int32)
        self.psucc_idx = np.empty(max(g.m, 1), dtype=np.int32)
        self.outc = np.zeros(max(g.n, 1), dtype=np.int32)
        self.cs = np.zeros(g.n + 1)
        self.ca = np.zeros(g.n + 1)
        self.ksm = np.empty(k)
        self.kac = np.empty(k)
        cq = contraction.graph
        self.k = k
        self.cap = cap_limit
        self.max_store = max_store
        self.max_checks = max_checks
        self.n = g.n
        self.q = cq.n
        self.succ_ptr, self.succ_idx = g.succ_ptr, g.succ_idx
        self.pred_ptr, self.pred_idx = g.pred_ptr, g.pred_idx
        self.work, self.comm = g.work, g.comm
        self.mem = np.ascontiguousarray(mem, dtype=np.float64)
        self.node_map = contraction.node_map
        self.member_ptr = contraction.member_ptr
        # members of each class in a topological order of the original graph: the segment
        # cost sweep needs the expanded order to be topological (edges inside a class too)
        topo = np.asarray(g.topological_order())
        self.member_idx = np.ascontiguousarray(
            topo[np.argsort(np.asarray(contraction.node_map)[topo], kind="stable")], dtype=np.int32)
        self.q_succ_ptr, self.q_succ_idx, self.q_pred_ptr = cq.succ_ptr, cq.succ_idx, cq.pred_ptr
        n = self.n
        self.pos = np.empty(n, dtype=np.int32)
        self.maxsucc = np.empty(n, dtype=np.int32)
        self.pw = np.empty(n)
        self.pc = np.empty(n)
        self.pm = np.empty(n)
        self.ppred_ptr = np.empty(n + 1, dtype=np.int32)
        self.ppred_idx = np.empty(max(g.m, 1), dtype=np.int32)
        self.mark = np.full(n, -1, dtype=np.int32)
        self.F = np.empty(n + 1, dtype=np.int32)
        self.par = np.empty(n + 1, dtype=np.int32)
        self.parc = np.empty(n + 1, dtype=np.float64)
        self.stage = np.empty(n, dtype=np.int32)
        self.cut_ok = np.zeros(max(n, 1), dtype=np.uint8)
        self.qorder = np.empty(self.q, dtype=np.int32)
        self.order = np.empty(n, dtype=np.int32)
        self.indeg = np.empty(self.q, dtype=np.int32)
        self.heap = np.empty(max(self.q, 1), dtype=np.int32)
        self.kmark = np.empty(k, dtype=np.int32)
        self.kw = np.empty(k)
        self.kr = np.empty(k)
        self.ks = np.empty(k)
        self.kmem = np.empty(k)
        self.seg_a = np.empty(n, dtype=np.int32)
        self.seg_c = np.empty(n, dtype=np.float64)
        self.store_ptr = np.zeros(n + 1, dtype=np.intp)
        self.store_a = np.empty(max(min(max_store, 16 * n), 1), dtype=np.int32)
        self.store_c = np.empty(self.store_a.shape[0], dtype=np.float64)
        self.stamp = 0
        self.total_work = float(np.sum(g.work))
        self.checks = 0
        self.stored_mode_calls = 0
        self.recompute_mode_calls = 0
        self.unproven = 0
        self.deadline = INFINITY
        self.best_val = INFINITY
        self.best_stage = np.zeros(n, dtype=np.int32)

    # ------------------------------------------------------------------ helpers
    cdef void _prepare(self) noexcept nogil:
        """Position-indexed copies of the costs, last-successor and predecessor positions,
        and cut_ok, for the order in ``self.order``. O(n + m)."""
        cdef Py_ssize_t n = self.n, i, e, p
        cdef int32_t v
        order_positions(self.order, self.succ_ptr, self.succ_idx, self.pred_ptr,
                        self.pred_idx, self.node_map, self.pos, self.maxsucc, self.ppred_ptr,
                        self.ppred_idx, self.cut_ok)
        for i in range(n):
            v = self.order[i]
            self.pw[i] = self.work[v]
            self.pc[i] = self.comm[v]
            self.pm[i] = self.mem[v]
        if self.training:
            p = 0
            for i in range(n):
                v = self.order[i]
                self.psucc_ptr[i] = <int32_t>p
                for e in range(self.succ_ptr[v], self.succ_ptr[v + 1]):
                    self.psucc_idx[p] = self.pos[self.succ_idx[e]]
                    p += 1
            self.psucc_ptr[n] = <int32_t>p
        if self.onef:
            for i in range(n):
                self.cs[i + 1] = self.cs[i] + self.smem[self.order[i]]
                self.ca[i + 1] = self.ca[i] + self.act[self.order[i]]

    cdef Py_ssize_t _sweep(self, int32_t j, double bound, int32_t* out_a, double* out_c,
                           Py_ssize_t capacity, double* stopv) noexcept nogil:
        """Segments ending at j (inference or training sweep)."""
        if self.training:
            return sweep_end_training(j, bound, self.cap, self.pw, self.pc, self.pm,
                                      self.maxsucc, self.cut_ok, self.ppred_ptr, self.ppred_idx,
                                      self.psucc_ptr, self.psucc_idx, self.mark, self.outc,
                                      self.stamp, out_a, out_c, capacity, stopv)
        return sweep_end(j, bound, self.cap, self.pw, self.pc, self.pm, self.maxsucc,
                         self.cut_ok, self.ppred_ptr, self.ppred_idx, self.mark, self.stamp,
                         out_a, out_c, capacity, stopv)

    cdef double _eval_stage(self) noexcept nogil:
        """Exact bottleneck of ``self.stage`` (stage_costs_into, O(n + m + k))."""
        cdef Py_ssize_t i
        cdef double best = 0.0, c
        for i in range(self.k):
            self.kw[i] = 0.0
            self.kr[i] = 0.0
            self.ks[i] = 0.0
            self.kmark[i] = -1
        stage_costs_into(self.succ_ptr, self.succ_idx, self.work, self.comm, self.stage,
                         self.kw, self.kr, self.ks, self.kmark)
        for i in range(self.k):
            c = self.kw[i] + self.kr[i] + self.ks[i]
            if c > best:
                best = c
        return best

    cdef bint _mem_ok(self) noexcept nogil:
        cdef Py_ssize_t i
        cdef double f = 0.0
        if self.cap == INFINITY:
            return True
        if self.onef:   # f = non-empty stages from this one to the last
            for i in range(self.k):
                self.ksm[i] = 0.0
                self.kac[i] = 0.0
                self.kmark[i] = 0
            for i in range(self.n):
                self.ksm[self.stage[i]] += self.smem[i]
                self.kac[self.stage[i]] += self.act[i]
                self.kmark[self.stage[i]] = 1
            for i in range(self.k - 1, -1, -1):
                if self.kmark[i]:
                    f += 1.0
                    if self.ksm[i] + f * self.kac[i] > self.cap:
                        return False
            return True
        for i in range(self.k):
            self.kmem[i] = 0.0
        for i in range(self.n):
            self.kmem[self.stage[i]] += self.mem[i]
        for i in range(self.k):
            if self.kmem[i] > self.cap:
                return False
        return True

    cdef double _balanced_cut(self) noexcept nogil:
        """Work-quantile cut of the current order at class boundaries into ``self.stage``;
        returns its exact bottleneck (INFINITY if it breaks the memory cap). O(n + m + k)."""
        cdef Py_ssize_t n = self.n, i, start = 0, t
        cdef double acc = 0.0, blk, mid, W = self.total_work
        cdef int32_t s
        i = 0
        while i < n:
            start = i
            blk = 0.0
            while True:
                blk += self.work[self.order[i]]
                if self.cut_ok[i]:
                    break
                i += 1
            mid = acc + 0.5 * blk
            if W > 0:
                s = <int32_t>(mid * self.k / W)
            else:
                s = <int32_t>(start * self.k / n)
            if s >= self.k:
                s = self.k - 1
            for t in range(start, i + 1):
                self.stage[self.order[t]] = s
            acc += blk
            i += 1
        if not self._mem_ok():
            return INFINITY
        return self._eval_stage()

    cdef int _check(self, double T, bint stored, double* M, double* nxt,
                    bint can_abort) noexcept nogil:
        """Fewest-segments DP at threshold T (see module docstring). Returns 1 if at most k
        segments suffice (M = largest cost used), 0 if not (nxt = next candidate), -1 if
        the per-end scratch overflowed (cannot happen: capacity n), -2 if ``can_abort``
        and the deadline passed mid-check."""
        cdef Py_ssize_t n = self.n, idx, lo_i, hi_i
        cdef int32_t j, a, best
        cdef double c, bestc
        cdef double nx = INFINITY
        cdef int32_t* pa
        cdef double* pc
        self.checks += 1
        self.F[0] = 0
        for j in range(n):
            self.F[j + 1] = 0x3fffffff
            if not self.cut_ok[j]:
                continue
            if can_abort and (j & 1023) == 0 and now() > self.deadline:
                return -2
            hi_i = self._segments(j, T, stored, &pa, &pc, &lo_i, &nx)
            if hi_i < 0:
                return -1
            best = 0x3fffffff
            bestc = 0.0
            a = 0
            for idx in range(lo_i, hi_i):
                c = pc[idx]
                if c <= T:
                    if self.F[pa[idx]] + 1 < best:
                        best = self.F[pa[idx]] + 1
                        a = pa[idx]
                        bestc = c
                elif c < nx:
                    nx = c
            if best < 0x3fffffff:
                self.F[j + 1] = best
                self.par[j + 1] = a
                self.parc[j + 1] = bestc
        if self.F[n] <= self.k:
            c = 0.0
            j = <int32_t>n
            while j > 0:
                if self.parc[j] > c:
                    c = self.parc[j]
                j = self.par[j]
            M[0] = c
            return 1
        nxt[0] = nx
        return 0

    cdef Py_ssize_t _segments(self, int32_t j, double T, bint stored, int32_t** pa,
                              double** pc, Py_ssize_t* lo, double* nx) noexcept nogil:
        """The segments ending at j as (start, cost) pairs ``pa[lo..hi)``, ``pc[lo..hi)``:
        from the store, or swept now (lowering ``nx`` to the smallest cost the sweep cut
        above T). Returns hi, or -1 if the scratch overflowed."""
        cdef Py_ssize_t cnt
        cdef double stopv
        if stored:
            lo[0] = self.store_ptr[j]
            pa[0] = &self.store_a[0]
            pc[0] = &self.store_c[0]
            return self.store_ptr[j + 1]
        self.stamp += 1
        cnt = self._sweep(j, T, &self.seg_a[0], &self.seg_c[0], self.n, &stopv)
        if cnt < 0:
            return -1
        if stopv < nx[0]:
            nx[0] = stopv
        lo[0] = 0
        pa[0] = &self.seg_a[0]
        pc[0] = &self.seg_c[0]
        return cnt

    cdef int _check_suffix(self, double T, bint stored, double* M, double* nxt,
                           bint can_abort) noexcept nogil:
        """``_check`` for 1F1B memory: G[a] = fewest segments covering the suffix from a,
        ends j taken in decreasing order (pushing G[j+1] + 1 to every start a). A segment
        followed by c segments holds c + 1 micro-batches; fewer segments after it is
        never worse (less memory here, fewer stages in total), so the fewest-segment
        suffix is the one to extend: exact. ``par[a]`` is the next segment's start."""
        cdef Py_ssize_t n = self.n, idx, lo_i, hi_i
        cdef int32_t j, a, c1
        cdef double c, nx = INFINITY
        cdef int32_t* pa
        cdef double* pc
        self.checks += 1
        for j in range(n):
            self.F[j] = 0x3fffffff
        self.F[n] = 0
        for j in range(<int32_t>n - 1, -1, -1):
            if not self.cut_ok[j]:
                continue
            if can_abort and (j & 1023) == 0 and now() > self.deadline:
                return -2
            hi_i = self._segments(j, T, stored, &pa, &pc, &lo_i, &nx)
            if hi_i < 0:
                return -1
            c1 = self.F[j + 1] + 1
            for idx in range(lo_i, hi_i):
                c = pc[idx]
                if c > T:
                    if c < nx:
                        nx = c
                    continue
                a = pa[idx]
                if c1 < self.F[a] and c1 <= self.k and (self.cs[j + 1] - self.cs[a]) \
                        + c1 * (self.ca[j + 1] - self.ca[a]) <= self.cap:
                    self.F[a] = c1
                    self.par[a] = j + 1
                    self.parc[a] = c
        if self.F[0] <= self.k:
            c = 0.0
            a = 0
            while a < n:
                if self.parc[a] > c:
                    c = self.parc[a]
                a = self.par[a]
            M[0] = c
            return 1
        nxt[0] = nx
        return 0

    cdef void _write_cuts_suffix(self) noexcept nogil:
        """Stage vector of the last feasible ``_check_suffix`` (stages from 0)."""
        cdef int32_t a = 0, t, s = 0
        while a < self.n:
            for t in range(a, self.par[a]):
                self.stage[self.order[t]] = s
            s += 1
            a = self.par[a]

    cdef void _write_cuts(self) noexcept nogil:
        """Stage vector of the segmentation found by the last feasible check (stages from 0)."""
        cdef int32_t j = <int32_t>self.n, a, t, s
        cdef int32_t nseg = 0
        while j > 0:
            nseg += 1
            j = self.par[j]
        s = nseg - 1
        j = <int32_t>self.n
        while j > 0:
            a = self.par[j]
            for t in range(a, j):
                self.stage[self.order[t]] = s
            s -= 1
            j = a

    cdef int _store(self, double bound, bint can_abort=False):
        """Enumerate and store all segments with work + send <= bound. 0 if over max_store,
        or (``can_abort``) when the deadline passes (checked every 1,024 ends)."""
        cdef Py_ssize_t n = self.n, total = 0, cnt, cap_left
        cdef int32_t j
        cdef double stopv
        cdef Py_ssize_t newcap
        cdef bint late = False
        j = 0
        while j < n:
            with nogil:
                while j < n:
                    if can_abort and (j & 1023) == 0 and now() > self.deadline:
                        late = True
                        break
                    self.store_ptr[j] = total
                    if self.cut_ok[j]:
                        self.stamp += 1
                        cap_left = self.store_a.shape[0] - total
                        cnt = self._sweep(j, bound, &self.store_a[total],
                                          &self.store_c[total], cap_left, &stopv)
                        if cnt < 0:
                            break
                        total += cnt
                    j += 1
            if late:
                return 0
            if j < n:  # out of space: grow or give up
                if self.store_a.shape[0] >= self.max_store:
                    return 0
                newcap = min(self.max_store, 2 * self.store_a.shape[0] + n)
                a2 = np.empty(newcap, dtype=np.int32)
                c2 = np.empty(newcap, dtype=np.float64)
                a2[:total] = np.asarray(self.store_a)[:total]
                c2[:total] = np.asarray(self.store_c)[:total]
                self.store_a = a2
                self.store_c = c2
        self.store_ptr[n] = total
        return 1

    cdef double _solve_current(self, double ub, bint* proven):
        """Optimal slicing of ``self.order`` (prepared); result in ``self.stage``."""
        cdef double hi, lo, T, M = 0.0, nx = INFINITY, val
        cdef int res, checks = 0
        cdef bint stored
        cdef int32_t[::1] best_stage
        hi = self._balanced_cut()
        best_stage = None
        if hi < INFINITY:
            best_stage = np.array(self.stage, copy=True)
        lo = self.total_work / self.k
        if best_stage is not None and now() > self.deadline:
            proven[0] = False  # out of time: the balanced cut is the answer
            self.unproven += 1
            return hi
        stored = self._store(min(hi, ub), best_stage is not None) == 1
        if stored:
            self.stored_mode_calls += 1
        else:
            self.recompute_mode_calls += 1
        proven[0] = True
        # with a pruning bound below the balanced cut, test it first: if even ub is
        # infeasible the order cannot beat ub and one check settles it
        first = ub < hi
        while lo < hi:
            if checks >= self.max_checks or (checks > 0 and now() > self.deadline):
                proven[0] = False
                self.unproven += 1
                break
            if first:
                T = ub
            elif hi == INFINITY:
                T = INFINITY
            else:
                T = 0.5 * (lo + hi)
                if not (T > lo and T < hi):
                    T = lo
            with nogil:
                if self.onef:
                    res = self._check_suffix(T, stored, &M, &nx, best_stage is not None)
                else:
                    res = self._check(T, stored, &M, &nx, best_stage is not None)
            checks += 1
            if res == 1:
                first = False
                with nogil:
                    if self.onef:
                        self._write_cuts_suffix()
                    else:
                        self._write_cuts()
                    val = self._eval_stage()
                best_stage = np.array(self.stage, copy=True)
                hi = val
                # T == lo: a segmentation within the lower bound is optimal; the relative
                # guard stops float drift (costs summed in another order) from looping.
                if T == lo or val <= lo * (1.0 + 1e-12):
                    break
            elif res == -2:
                proven[0] = False
                self.unproven += 1
                break
            else:
                if first:
                    proven[0] = False  # optimum of this order > ub: keep the balanced cut
                    break
                if nx == INFINITY:
                    # no segment cost above T in the window: nothing better than hi exists
                    # within the window bound min(hi0, ub)
                    if ub < INFINITY:
                        proven[0] = False
                    break
                if nx > lo:
                    lo = nx
        if best_stage is None:
            return INFINITY
        self.stage[:] = best_stage
        return hi

    # ------------------------------------------------------------------ public
    def slice_order(self, const int32_t[::1] order, double ub=INFINITY):
        """Optimal slicing of an order of original nodes (classes contiguous).

        Returns ``(bottleneck, stage_int32, proven)``; bottleneck is INFINITY when no
        segmentation meets the memory cap (or beats ``ub``, which only prunes).
        """
        cdef bint proven = False
        cdef double val
        self.order[:] = order
        with nogil:
            self._prepare()
        val = self._solve_current(ub, &proven)
        return val, np.array(self.stage, copy=True), bool(proven)

    cdef void _expand(self) noexcept nogil:
        cdef Py_ssize_t i, t, p = 0
        cdef int32_t qv
        for i in range(self.q):
            qv = self.qorder[i]
            for t in range(self.member_ptr[qv], self.member_ptr[qv + 1]):
                self.order[p] = self.member_idx[t]
                p += 1

    def order_from_keys(self, const double[::1] keys):
        """Original-node order from quotient keys (Kahn smallest key first, classes expanded)."""
        with nogil:
            kahn_keys_into(self.q_succ_ptr, self.q_succ_idx, self.q_pred_ptr, keys,
                           self.indeg, self.heap, self.qorder)
            self._expand()
        return np.array(self.order, copy=True)

    def decode(self, const double[::1] keys, double ub=INFINITY):
        """Fitness of one chromosome: ``(bottleneck, stage_int32, proven)``."""
        cdef bint proven = False
        cdef double val
        with nogil:
            kahn_keys_into(self.q_succ_ptr, self.q_succ_idx, self.q_pred_ptr, keys,
                           self.indeg, self.heap, self.qorder)
            self._expand()
            self._prepare()
        val = self._solve_current(ub, &proven)
        return val, np.array(self.stage, copy=True), bool(proven)

    def decode_batch(self, const double[:, ::1] keys, double[::1] out, double ub=INFINITY):
        """Fitness of every row of ``keys`` into ``out`` (one native call per population);
        rows not reached before the deadline get INFINITY."""
        cdef Py_ssize_t r
        cdef bint proven = False
        for r in range(keys.shape[0]):
            if r > 0 and now() > self.deadline:
                out[r:] = INFINITY  # out of time (or aborted): rows left undecoded
                break
            with nogil:
                kahn_keys_into(self.q_succ_ptr, self.q_succ_idx, self.q_pred_ptr, keys[r],
                               self.indeg, self.heap, self.qorder)
                self._expand()
                self._prepare()
            out[r] = self._solve_current(ub, &proven)
            if out[r] < self.best_val:
                self.best_val = out[r]
                self.best_stage[:] = self.stage

    def best(self):
        """``(value, stage)`` of the best chromosome decoded by :meth:`decode_batch` so far."""
        return self.best_val, np.array(self.best_stage, copy=True)


