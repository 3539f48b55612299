"""Multi-chip-module kernels: cost evaluation, greedy repair, slicing decoder, annealing.

Chip cost (see ``pipecore.mcm.costmodel``)::

    cost[c] = sum_{v on c} work[v] * inv_rate[c]                         compute
            + sum_{u in In(c)} (comm[u] * inv_bw + lathops[chip(u), c])  received tensors
            + sum_{u in Out(c)} comm[u] * inv_bw                          sent tensors

A tensor is charged once per distinct consumer chip (multicast), and producers
with ``comm == 0`` carry no data and cost nothing. Without hop latency the work /
received / sent sums are exactly pipecore's stage cost and come from the shared
kernel ``pipecore._native._cost.stage_costs_into`` (cimported), scaled per chip;
with latency a fused pass adds the per-pair term (one pass instead of two). ``lathops`` is the flattened
(C, C) matrix ``hop_latency * hops(p, q)``.

A partition is described by a *stage* per node and a *chip path* ``perm``
(stage position -> chip): chip(v) = perm[stage(v)]. It is valid when every edge
goes forward in stage order, every colocation class sits on one chip and no chip
exceeds its SRAM. With ``order="chain"`` the path is the identity (data flows
along chip indices); with ``order="free"`` any path is allowed, i.e. a chip
assignment is valid iff its chip-level graph is acyclic.

Work accounting. Every routine that computes costs reports the *cost-model steps*
it spent: a full evaluation is ``n + m`` steps (one node or edge visit each), an
incremental move is charged the node and edge visits of its delta, the slicing
decoder its segment sweeps (1 + in-degree per absorbed node) plus one step per
(segment, chip) cost it forms. Budgets are ``evaluations * (n + m)`` steps, so
every method pays for the cost-model work it does in the same currency.

Structural work (repair, move feasibility) runs on the colocation quotient; costs
are always evaluated on the original graph.
"""
from libc.stdint cimport int32_t, int8_t, uint8_t, uint64_t
from libc.math cimport INFINITY, ceil, exp, sqrt, pow as cpow
from libc.stdlib cimport malloc, free

import numpy as np

from pipecore._native._cost cimport stage_costs_into
from pipecore._native._graph cimport order_positions

cdef double _TOL = 1e-12


# ============================================================================ helpers
cdef inline bint over(double mem, double cap) noexcept nogil:
    return mem > cap * (1.0 + _TOL)


cdef inline uint64_t xorshift(uint64_t* s) noexcept nogil:
    cdef uint64_t x = s[0]
    x ^= x << 13
    x ^= x >> 7
    x ^= x << 17
    s[0] = x
    return x


cdef inline double uniform01(uint64_t* s) noexcept nogil:
    return (xorshift(s) >> 11) * (1.0 / 9007199254740992.0)


cdef inline double energy(const double* cost, int C, double* bott) noexcept nogil:
    """Bottleneck plus a small RMS term that rewards balance on the bottleneck's plateaus."""
    cdef double mx = 0.0, sq = 0.0
    cdef int i
    for i in range(C):
        if cost[i] > mx:
            mx = cost[i]
        sq += cost[i] * cost[i]
    bott[0] = mx
    return mx + 0.05 * sqrt(sq / C)


cdef bint chain_acyclic(const uint64_t* adj, int C) noexcept nogil:
    """Is the chip graph (``adj[s]`` = bit set of chips s sends to) acyclic? O(C^2)."""
    cdef uint64_t done = 0, full = (<uint64_t>1 << C) - 1 if C < 64 else ~(<uint64_t>0)
    cdef int c, progress = 1
    while progress:
        progress = 0
        for c in range(C):
            if (done >> c) & 1:
                continue
            if (adj[c] & ~done & ~(<uint64_t>1 << c)) == 0:  # all its targets removed
                done |= <uint64_t>1 << c
                progress = 1
    return done == full


# ============================================================================ kernel
cdef struct AnnealState:
    uint64_t rng
    double steps, budget, best, b_cur, e_cur
    long accepted, moves
    int kind
    int32_t q, q2, c1, c2


cdef class Kernel:
    """Arrays of one (graph, package) pair and the native routines that use them.

    Built once per :class:`pipecore.mcm.MCMProblem`; scratch buffers are reused, so
    one kernel must not be used from two threads at once.
    """
    cdef readonly Py_ssize_t n, m, nq
    cdef readonly int C
    cdef readonly bint free_order, has_lat
    cdef bint use_all
    cdef readonly double unit
    cdef const int32_t[::1] sp, si, pp, pi, src, dst
    cdef const double[::1] work, comm, mem
    cdef const int32_t[::1] node_map, rep, mptr, midx
    cdef const int32_t[::1] qsp, qsi, qpp, qpi
    cdef const double[::1] qmem
    cdef const double[::1] inv_rate, lathops, sram
    cdef double inv_bw, min_inv_rate, max_sram, total_work, total_mem
    cdef double[::1] kw, kr, ks, kcost, kmem, delta
    cdef int32_t[::1] kmark, cmark
    cdef int32_t stamp
    # slicing-decoder scratch (positions along an order)
    cdef int32_t[::1] order, pos, pmax, ppred_ptr, ppred_idx, par, stage, pmark, tmpchip
    cdef uint8_t[::1] cut_ok
    cdef double[::1] pw, pc, pm, best, wsuf, msuf

    def __init__(self, graph, contraction, member_idx, const double[::1] inv_rate, double inv_bw,
                 const double[::1] lathops, const double[::1] sram, bint free_order):
        q = contraction.graph
        self.n, self.m, self.nq = graph.n, graph.m, q.n
        self.C = inv_rate.shape[0]
        self.sp, self.si, self.pp, self.pi = graph.succ_ptr, graph.succ_idx, graph.pred_ptr, graph.pred_idx
        self.src, self.dst = graph.src, graph.dst
        self.work, self.comm, self.mem = graph.work, graph.comm, graph.mem
        self.node_map = contraction.node_map
        self.mptr, self.midx = contraction.member_ptr, member_idx
        self.rep = np.ascontiguousarray(np.asarray(member_idx)[np.asarray(contraction.member_ptr)[:-1]],
                                        dtype=np.int32)
        self.qsp, self.qsi, self.qpp, self.qpi = q.succ_ptr, q.succ_idx, q.pred_ptr, q.pred_idx
        self.qmem = np.ascontiguousarray(q.mem, dtype=np.float64)
        self.inv_rate, self.inv_bw, self.lathops, self.sram = inv_rate, inv_bw, lathops, sram
        self.free_order = free_order
        self.has_lat = bool(np.any(np.asarray(lathops) > 0))
        self.min_inv_rate = float(np.min(inv_rate))
        self.max_sram = float(np.max(sram))
        self.total_work = float(np.sum(graph.work))
        self.total_mem = float(np.sum(graph.mem))
        self.unit = float(graph.n + graph.m)
        C, n = self.C, self.n
        self.kw, self.kr, self.ks = np.zeros(C), np.zeros(C), np.zeros(C)
        self.kcost, self.kmem, self.delta = np.zeros(C), np.zeros(C), np.zeros(C)
        self.kmark, self.cmark = np.full(C, -1, np.int32), np.full(C, -1, np.int32)
        self.stamp = 0
        self.order, self.pos, self.pmax = (np.zeros(n, np.int32) for _ in range(3))
        self.ppred_ptr = np.zeros(n + 1, np.int32)
        self.ppred_idx = np.zeros(max(graph.m, 1), np.int32)
        self.pmark = np.full(n, -1, np.int32)
        self.stage = np.zeros(n, np.int32)
        self.tmpchip = np.zeros(n, np.int32)
        self.cut_ok = np.zeros(max(n, 1), np.uint8)
        self.pw, self.pc, self.pm = np.zeros(n), np.zeros(n), np.zeros(n)
        self.wsuf = np.zeros(n + 1)
        self.msuf = np.zeros(n + 1)
        self.best = np.zeros(C * (n + 1))
        self.par = np.zeros(C * (n + 1), np.int32)

    # ------------------------------------------------------------------ cost
    cdef double _costs(self, const int32_t[::1] chip, double* comp, double* traffic) noexcept nogil:
        """Per-chip compute and traffic of ``chip`` (in range); returns the bottleneck. O(n + m + C).

        Without hop latency the work / received / sent sums come from the shared stage-cost
        kernel (``_cost.stage_costs_into``) and are scaled per chip; with latency one fused
        pass (:meth:`_costs_fused`) adds the per-pair term as it goes, which measured faster
        than the shared pass plus a latency pass (``bench/mcm_kernels.py``)."""
        cdef int c, C = self.C
        cdef double b = 0.0, x
        if self.has_lat:
            self._costs_fused(chip, comp, traffic)
        else:
            for c in range(C):
                self.kw[c] = 0.0
                self.kr[c] = 0.0
                self.ks[c] = 0.0
                self.kmark[c] = -1
            stage_costs_into(self.sp, self.si, self.work, self.comm, chip, self.kw, self.kr,
                             self.ks, self.kmark)
            for c in range(C):
                comp[c] = self.kw[c] * self.inv_rate[c]
                traffic[c] = (self.kr[c] + self.ks[c]) * self.inv_bw
        for c in range(C):
            x = comp[c] + traffic[c]
            if x > b:
                b = x
        return b

    cdef void _costs_fused(self, const int32_t[::1] chip, double* comp,
                           double* traffic) noexcept nogil:
        """One pass: compute, bandwidth and hop-latency terms per chip."""
        cdef Py_ssize_t u, e
        cdef int32_t s, t
        cdef int C = self.C
        cdef double c
        cdef bint sent
        for t in range(C):
            comp[t] = 0.0
            traffic[t] = 0.0
            self.cmark[t] = -1
        for u in range(self.n):
            s = chip[u]
            comp[s] += self.work[u] * self.inv_rate[s]
            c = self.comm[u]
            if c == 0.0:
                continue
            c = c * self.inv_bw
            sent = False
            for e in range(self.sp[u], self.sp[u + 1]):
                t = chip[self.si[e]]
                if t != s and self.cmark[t] != u:
                    self.cmark[t] = <int32_t>u
                    traffic[t] += c + self.lathops[s * C + t]
                    sent = True
            if sent:
                traffic[s] += c

    cdef double _cost_vector(self, const int32_t[::1] chip, double* cost) noexcept nogil:
        """Total cost per chip into ``cost`` (C); returns the bottleneck."""
        cdef double* tr = <double*>malloc(self.C * sizeof(double))
        cdef double b
        cdef int c
        b = self._costs(chip, cost, tr)
        for c in range(self.C):
            cost[c] += tr[c]
        free(tr)
        return b

    cdef bint _valid(self, const int32_t[::1] chip) noexcept nogil:
        """Forward flow (chain) or acyclic chip graph (free), whole classes, SRAM."""
        cdef Py_ssize_t e, v
        cdef int c, C = self.C
        cdef int32_t a, b
        cdef uint64_t adj[64]
        if self.free_order:
            for c in range(C):
                adj[c] = 0
            for e in range(self.m):
                a, b = chip[self.src[e]], chip[self.dst[e]]
                if a != b:
                    adj[a] |= <uint64_t>1 << b
            if not chain_acyclic(adj, C):
                return False
        else:
            for e in range(self.m):
                if chip[self.src[e]] > chip[self.dst[e]]:
                    return False
        for v in range(self.n):
            if chip[v] != chip[self.rep[self.node_map[v]]]:
                return False
        for c in range(C):
            self.kmem[c] = 0.0
        for v in range(self.n):
            self.kmem[chip[v]] += self.mem[v]
        for c in range(C):
            if self.kmem[c] > self.sram[c] * (1.0 + _TOL):
                return False
        return True

    def evaluate_batch(self, const int32_t[:, ::1] chips, double[::1] out_bottleneck,
                       int8_t[::1] out_valid):
        """Bottleneck and validity of a batch (B, n); inf / invalid for out-of-range chips."""
        cdef Py_ssize_t B = chips.shape[0], b, v
        cdef bint inrange
        cdef double* buf = <double*>malloc(2 * self.C * sizeof(double))
        if buf == NULL:
            raise MemoryError()
        with nogil:
            for b in range(B):
                inrange = True
                for v in range(self.n):
                    if chips[b, v] < 0 or chips[b, v] >= self.C:
                        inrange = False
                        break
                if not inrange:
                    out_valid[b] = 0
                    out_bottleneck[b] = INFINITY
                    continue
                out_bottleneck[b] = self._costs(chips[b], buf, buf + self.C)
                out_valid[b] = 1 if self._valid(chips[b]) else 0
        free(buf)

    def breakdown(self, const int32_t[::1] chip, double[::1] comp, double[::1] traffic):
        """Per-chip compute and traffic (length C) of one in-range assignment."""
        with nogil:
            self._costs(chip, &comp[0], &traffic[0])

    # ------------------------------------------------------------------ incremental moves
    cdef void _contrib(self, int32_t u, double sign, const int32_t[::1] chip, double* delta,
                       double* steps) noexcept nogil:
        """Add ``sign`` times producer u's traffic terms (bandwidth and latency) to ``delta``.

        The MCM counterpart of ``_cost.comm_contribution`` with per-chip-pair latency in
        the same pass (the shared helper has no latency term). O(outdeg u)."""
        cdef int32_t s = chip[u], t
        cdef Py_ssize_t e
        cdef bint sent = False
        cdef double c = self.comm[u]
        cdef int C = self.C
        steps[0] += 1 + self.sp[u + 1] - self.sp[u]
        if c == 0.0:
            return
        c = c * self.inv_bw
        self.stamp += 1
        for e in range(self.sp[u], self.sp[u + 1]):
            t = chip[self.si[e]]
            if t != s and self.cmark[t] != self.stamp:
                self.cmark[t] = self.stamp
                delta[t] += sign * (c + self.lathops[s * C + t])
                sent = True
        if sent:
            delta[s] += sign * c

    cdef void _move(self, int32_t v, int32_t new_chip, int32_t[::1] chip, double* delta,
                    double* steps) noexcept nogil:
        """Move node v to ``new_chip`` (``chip`` updated) adding the cost change to ``delta``.

        Only v's and its predecessors' terms change: O(outdeg v + sum outdeg(pred v))."""
        cdef int32_t old = chip[v]
        cdef Py_ssize_t e
        if old == new_chip:
            return
        delta[old] -= self.work[v] * self.inv_rate[old]
        delta[new_chip] += self.work[v] * self.inv_rate[new_chip]
        self._contrib(v, -1.0, chip, delta, steps)
        for e in range(self.pp[v], self.pp[v + 1]):
            self._contrib(self.pi[e], -1.0, chip, delta, steps)
        chip[v] = new_chip
        self._contrib(v, 1.0, chip, delta, steps)
        for e in range(self.pp[v], self.pp[v + 1]):
            self._contrib(self.pi[e], 1.0, chip, delta, steps)

    cdef void _move_class(self, int32_t q, int32_t new_chip, int32_t[::1] chip, double* delta,
                          double* steps) noexcept nogil:
        cdef Py_ssize_t j
        for j in range(self.mptr[q], self.mptr[q + 1]):
            self._move(self.midx[j], new_chip, chip, delta, steps)

    cdef void _set_class(self, int32_t q, int32_t c, int32_t[::1] chip) noexcept nogil:
        cdef Py_ssize_t j
        for j in range(self.mptr[q], self.mptr[q + 1]):
            chip[self.midx[j]] = c

    def move_delta(self, int32_t[::1] chip, int v, int new_chip, double[::1] delta):
        """Add to ``delta`` (C) the chip-cost change of moving v (``chip`` is updated).
        Returns the steps charged."""
        cdef double steps = 0.0
        with nogil:
            self._move(v, new_chip, chip, &delta[0], &steps)
        return steps

    # ------------------------------------------------------------------ slicing decoder
    cdef void _prepare(self) noexcept nogil:
        """Position-indexed costs, last-successor and predecessor positions, cut_ok and
        suffix work for the order in ``self.order``. O(n + m)."""
        cdef Py_ssize_t n = self.n, i
        cdef int32_t v
        order_positions(self.order, self.sp, self.si, self.pp, self.pi, self.node_map,
                        self.pos, self.pmax, self.ppred_ptr, self.ppred_idx, self.cut_ok)
        for i in range(n):
            v = self.order[i]
            self.pw[i] = self.work[v]
            self.pc[i] = self.comm[v]
            self.pm[i] = self.mem[v]
            self.pmark[i] = -1
        self.wsuf[n] = 0.0
        self.msuf[n] = 0.0
        for i in range(n - 1, -1, -1):
            self.wsuf[i] = self.wsuf[i + 1] + self.pw[i]
            self.msuf[i] = self.msuf[i + 1] + self.pm[i]

    cdef void _cut(self, const int32_t* perm, int32_t[::1] chip) noexcept nogil:
        """:meth:`_balanced` with the memory look-ahead counting 100%, 85%, 70%, 50% of each
        later stage's SRAM (chunky classes fragment it), until the cut fits."""
        cdef double fill[4]
        cdef int k
        fill[0], fill[1], fill[2], fill[3] = 1.0, 0.85, 0.7, 0.5
        for k in range(4):
            self._balanced(perm, chip, fill[k])
            if self._mem_fits(chip):
                return

    cdef bint _mem_fits(self, const int32_t[::1] chip) noexcept nogil:
        cdef Py_ssize_t v
        cdef int c
        for c in range(self.C):
            self.kmem[c] = 0.0
        for v in range(self.n):
            self.kmem[chip[v]] += self.mem[v]
        for c in range(self.C):
            if over(self.kmem[c], self.sram[c]):
                return False
        return True

    cdef void _balanced(self, const int32_t* perm, int32_t[::1] chip, double fill) noexcept nogil:
        """Cut ``self.order`` at class boundaries: a class goes to the stage its work
        quantile points to (shares proportional to the chips' rates), but never so late
        that the memory from it on cannot fit the SRAM of the stages left, and on early
        when it would overflow the stage's SRAM; writes ``chip``. O(n C)."""
        cdef Py_ssize_t n = self.n, i = 0, start, t
        cdef int C = self.C, s = 0, sw, scap
        cdef double acc = 0.0, blk, bmem, wpos, smem = 0.0, rs = 0.0, cum, room
        for sw in range(C):
            rs += 1.0 / self.inv_rate[perm[sw]]
        while i < n:
            start = i
            blk = 0.0
            bmem = 0.0
            while True:
                blk += self.pw[i]
                bmem += self.pm[i]
                if self.cut_ok[i]:
                    break
                i += 1
            wpos = (acc + 0.5 * blk) / self.total_work if self.total_work > 0 else (start + 0.5) / n
            sw = 0
            cum = 1.0 / self.inv_rate[perm[0]] / rs
            while sw < C - 1 and wpos > cum:
                sw += 1
                cum += 1.0 / self.inv_rate[perm[sw]] / rs
            scap = C - 1  # latest stage whose SRAM from there on holds the memory left
            room = 0.0
            while scap > s:
                room += fill * self.sram[perm[scap]]
                if not over(self.msuf[start], room):
                    break
                scap -= 1
            if sw > scap:
                sw = scap
            while s < C - 1 and (s < sw or over(smem + bmem, self.sram[perm[s]])):
                s += 1
                smem = 0.0
            for t in range(start, i + 1):
                chip[self.order[t]] = perm[s]
            smem += bmem
            acc += blk
            i += 1

    cdef inline void _relax(self, Py_ssize_t a, Py_ssize_t j, int tlo, int thi, double w,
                            double rs, double mm, double nr, const int32_t* perm, double U,
                            double* steps) noexcept nogil:
        """Offer segment [a, j] to every stage position t in [tlo, thi]."""
        cdef Py_ssize_t n1 = self.n + 1
        cdef int t, ch
        cdef double prev, c
        for t in range(tlo, thi + 1):
            if a == 0:  # stages before t are empty (not allowed with use_all)
                prev = 0.0 if (t == 0 or not self.use_all) else INFINITY
            elif t == 0:
                prev = INFINITY
            else:
                prev = self.best[(t - 1) * n1 + a]
            if prev > U:
                continue
            ch = perm[t]
            if mm > self.sram[ch] * (1.0 + _TOL):
                continue
            c = w * self.inv_rate[ch] + rs * self.inv_bw
            if t > 0 and nr > 0:
                c += nr * self.lathops[perm[t - 1] * self.C + ch]
            steps[0] += 1
            if c > U:
                continue
            if c < prev:
                c = prev
            if c < self.best[t * n1 + j + 1]:
                self.best[t * n1 + j + 1] = c
                self.par[t * n1 + j + 1] = <int32_t>a

    cdef void _sweep(self, Py_ssize_t j, const int32_t* perm, double U, double* steps) noexcept nogil:
        """All segments [a, j] (a from j down) whose lower bound stays <= U, offered to the
        stage positions that can still finish the order within U. O(window (1 + indeg + C))."""
        cdef double w = 0.0, s = 0.0, r = 0.0, mm = 0.0, nr = 0.0, need
        cdef Py_ssize_t a = j, e
        cdef int32_t u
        cdef int thi
        need = self.wsuf[j + 1] * self.min_inv_rate / U if U > 0 else 0.0
        if need > self.C:
            return
        thi = self.C - 1 - <int>ceil(need - 1e-9)  # that many stages must follow
        if thi < 0:
            return
        self.stamp += 1
        while a >= 0:
            w += self.pw[a]
            if self.pmax[a] > j:
                s += self.pc[a]
            if self.pmark[a] == self.stamp:
                r -= self.pc[a]
                if self.pc[a] > 0:
                    nr -= 1
            for e in range(self.ppred_ptr[a], self.ppred_ptr[a + 1]):
                u = self.ppred_idx[e]
                if self.pmark[u] != self.stamp:
                    self.pmark[u] = self.stamp
                    r += self.pc[u]
                    if self.pc[u] > 0:
                        nr += 1
            mm += self.pm[a]
            steps[0] += 1 + self.ppred_ptr[a + 1] - self.ppred_ptr[a]
            if mm > self.max_sram * (1.0 + _TOL) or w * self.min_inv_rate + s * self.inv_bw > U:
                break
            if a == 0 or self.cut_ok[a - 1]:
                self._relax(a, j, 0, thi, w, (r if r > 0 else 0.0) + s, mm, nr, perm, U, steps)
            a -= 1

    cdef double _dp(self, const int32_t* perm, double U, bint use_all, double* steps) noexcept nogil:
        """Minimax DP over (stage position, prefix end); stage t runs on chip perm[t].

        best[t][j] = min(best[t-1][j] (stage t empty, unless use_all),
                         min_a max(best[t-1][a], cost_t(a, j))).
        Costs are exact except hop latency, charged as if every received tensor came
        from stage t-1. Writes ``self.stage`` and returns the DP value (inf if none <= U)."""
        cdef Py_ssize_t n = self.n, n1 = n + 1, j, i
        cdef int C = self.C, t
        self.use_all = use_all
        for i in range(C * n1):
            self.best[i] = INFINITY
        for j in range(n):
            if not self.cut_ok[j]:
                continue
            self._sweep(j, perm, U, steps)
            if not use_all:
                for t in range(1, C):
                    if self.best[(t - 1) * n1 + j + 1] < self.best[t * n1 + j + 1]:
                        self.best[t * n1 + j + 1] = self.best[(t - 1) * n1 + j + 1]
                        self.par[t * n1 + j + 1] = -1
        if self.best[(C - 1) * n1 + n] == INFINITY:
            return INFINITY
        j = n
        t = C - 1
        while j > 0:
            i = self.par[t * n1 + j]
            if i >= 0:
                while j > i:
                    j -= 1
                    self.stage[self.order[j]] = t
            t -= 1
        return self.best[(C - 1) * n1 + n]

    cdef double _decode_one(self, const int32_t* perm, double ub, bint use_all, bint dp,
                            int32_t[::1] chip, double* steps) noexcept nogil:
        """Balanced cut of ``self.order`` (prepared), then (if ``dp``) the optimal slicing if it
        beats min(ub, balanced); the better of the two, exactly evaluated, is in ``chip``."""
        cdef double* cost = <double*>malloc(2 * self.C * sizeof(double))
        cdef double vb, vd, U
        cdef Py_ssize_t v
        self._cut(perm, chip)
        vb = self._costs(chip, cost, cost + self.C)
        steps[0] += self.unit
        if not self._valid(chip) or (use_all and not self._all_used(chip)):
            vb = INFINITY
        if dp:
            vd = self._dp_escalate(perm, vb, ub, use_all, steps)
            if vd < INFINITY:
                for v in range(self.n):
                    self.tmpchip[v] = chip[v]
                    chip[v] = perm[self.stage[v]]
                vd = self._costs(chip, cost, cost + self.C)
                steps[0] += self.unit
                if vd > vb or not self._valid(chip):
                    for v in range(self.n):
                        chip[v] = self.tmpchip[v]
                else:
                    vb = vd
        free(cost)
        return vb

    cdef double _dp_escalate(self, const int32_t* perm, double vb, double ub, bint use_all,
                             double* steps) noexcept nogil:
        """DP with a growing pruning bound: U = 1.1 LB, then x1.3 until it reaches
        min(ub, the cut's value vb); the sweep window grows with U, so small first tries
        are cheap and the total stays within a small factor of the last one.
        LB = total work / total rate of the path's chips."""
        cdef double lb, U, cap, rsum = 0.0, vd = INFINITY
        cdef int t
        for t in range(self.C):
            rsum += 1.0 / self.inv_rate[perm[t]]
        lb = self.total_work / rsum
        cap = vb * (1.0 + (0.05 if self.has_lat else 1e-9))
        if ub < cap:
            cap = ub
        U = 1.1 * lb if lb > 0 else cap
        while True:
            if U >= cap:
                U = cap if cap < INFINITY else 1e300
            vd = self._dp(perm, U, use_all, steps)
            if vd < INFINITY or U >= cap or U >= 1e300:
                return vd
            U *= 1.3

    cdef bint _all_used(self, const int32_t[::1] chip) noexcept nogil:
        cdef Py_ssize_t v
        cdef int c, used = 0
        for c in range(self.C):
            self.kmark[c] = 0
        for v in range(self.n):
            if self.kmark[chip[v]] == 0:
                self.kmark[chip[v]] = 1
                used += 1
        return used == self.C

    def decode_orders(self, const int32_t[:, ::1] orders, const int32_t[:, ::1] perms,
                      int32_t[:, ::1] out_chip, double[::1] out_val, double[::1] out_steps,
                      bint dp=True, double ub=INFINITY, bint use_all=False):
        """Decode B topological orders of the original nodes (classes contiguous), each with
        its chip path: balanced cut, then (``dp``) the optimal slicing. Writes the chip per
        node, the exact bottleneck (inf if nothing valid) and the cost-model steps spent."""
        cdef Py_ssize_t B = orders.shape[0], b, i
        cdef double steps
        with nogil:
            for b in range(B):
                for i in range(self.n):
                    self.order[i] = orders[b, i]
                self._prepare()
                steps = 0.0
                out_val[b] = self._decode_one(&perms[b, 0], ub, use_all, dp, out_chip[b], &steps)
                out_steps[b] = steps

    # ------------------------------------------------------------------ annealing
    cdef bint _shift_ok(self, int32_t q, int p, int p2, const int32_t[::1] chip,
                        const int32_t* ipos, int32_t skip) noexcept nogil:
        """May class q go from stage position p to p2 (edges stay forward)? ``skip``: a
        class whose position is being swapped with q (treated as at p)."""
        cdef Py_ssize_t e
        cdef int32_t r
        cdef int x
        if p2 > p:
            for e in range(self.qsp[q], self.qsp[q + 1]):
                r = self.qsi[e]
                x = p if r == skip else ipos[chip[self.rep[r]]]
                if x < p2:
                    return False
        else:
            for e in range(self.qpp[q], self.qpp[q + 1]):
                r = self.qpi[e]
                x = p if r == skip else ipos[chip[self.rep[r]]]
                if x > p2:
                    return False
        return True

    def anneal(self, int32_t[::1] chip, int32_t[::1] perm, int32_t[::1] best_chip,
               int32_t[::1] best_perm, double budget_steps, double t_start, double t_end,
               unsigned long long seed, double p_swap, double p_perm, bint use_all,
               double[::1] trace):
        """Simulated annealing from a valid (chip, perm) until ``budget_steps`` are spent.

        Moves: *shift* a class to the adjacent stage (boundary move), *swap* two classes
        of adjacent stages (probability ``p_swap``), and with a free order *exchange the
        contents of two chips* (probability ``p_perm``, a full re-evaluation). Infeasible
        proposals are rejected before any cost work. Energy = bottleneck + 0.05 RMS;
        Metropolis with geometric cooling from ``t_start`` to ``t_end`` over the budget.
        ``trace[i]`` = best bottleneck after (i + 1)/len(trace) of the budget.
        Returns (best, accepted, evaluated moves, steps spent)."""
        cdef AnnealState st
        cdef Py_ssize_t i
        st.steps = 0.0
        st.budget = budget_steps
        st.rng = seed * 2654435761ULL + 88172645463325252ULL
        if st.rng == 0:
            st.rng = 1
        st.accepted = 0
        st.moves = 0
        with nogil:
            self._anneal_run(chip, perm, best_chip, best_perm, t_start, t_end, p_swap, p_perm,
                             use_all, trace, &st)
        return st.best, st.accepted, st.moves, st.steps

    cdef void _anneal_run(self, int32_t[::1] chip, int32_t[::1] perm, int32_t[::1] best_chip,
                          int32_t[::1] best_perm, double t_start, double t_end, double p_swap,
                          double p_perm, bint use_all, double[::1] trace,
                          AnnealState* st) noexcept nogil:
        cdef int C = self.C, T = trace.shape[0], i, kind
        cdef long tries = 0, max_tries
        cdef double* cost = <double*>malloc(4 * C * sizeof(double))
        cdef int32_t* ipos = <int32_t*>malloc(2 * C * sizeof(int32_t))
        cdef int32_t* cnt = ipos + C
        cdef double* trial = cost + C
        cdef double* cmem = cost + 2 * C
        cdef double* delta = cost + 3 * C
        cdef double e_new, b_new, temp, u
        cdef Py_ssize_t v, ti = 0
        cdef int32_t q
        max_tries = <long>(200 * (st.budget / self.unit + 1) * C + 100000)
        self._cost_vector(chip, cost)
        st.steps += self.unit
        for i in range(C):
            ipos[perm[i]] = i
            cmem[i] = 0.0
            cnt[i] = 0
        for q in range(self.nq):
            cmem[chip[self.rep[q]]] += self.qmem[q]
            cnt[chip[self.rep[q]]] += 1
        st.e_cur = energy(cost, C, &st.b_cur)
        st.best = st.b_cur
        self._keep(chip, perm, best_chip, best_perm)
        while st.steps < st.budget and tries < max_tries:
            tries += 1
            u = uniform01(&st.rng)
            kind = 2 if (self.free_order and u < p_perm) else (1 if u < p_perm + p_swap else 0)
            for i in range(C):
                delta[i] = 0.0
            if not self._propose(kind, chip, perm, ipos, cnt, cmem, cost, delta, use_all, st):
                continue
            for i in range(C):
                trial[i] = cost[i] + delta[i]
            e_new = energy(trial, C, &b_new)
            temp = t_start * cpow(t_end / t_start, st.steps / st.budget) if t_start > 0 else 0.0
            st.moves += 1
            if e_new <= st.e_cur or (temp > 0.0 and uniform01(&st.rng) < exp((st.e_cur - e_new) / temp)):
                self._commit(chip, perm, ipos, cnt, cmem, cost, trial, st)
                st.e_cur = e_new
                st.b_cur = b_new
                st.accepted += 1
                if st.b_cur < st.best * (1.0 - 1e-12):
                    st.best = st.b_cur
                    self._keep(chip, perm, best_chip, best_perm)
            else:
                self._undo(chip, perm, ipos, cnt, cmem, cost, st)
            while ti < T and st.steps >= (ti + 1) * st.budget / T:
                trace[ti] = st.best
                ti += 1
        while ti < T:
            trace[ti] = st.best
            ti += 1
        free(cost)
        free(ipos)

    cdef void _keep(self, const int32_t[::1] chip, const int32_t[::1] perm, int32_t[::1] best_chip,
                    int32_t[::1] best_perm) noexcept nogil:
        cdef Py_ssize_t i
        for i in range(self.n):
            best_chip[i] = chip[i]
        for i in range(self.C):
            best_perm[i] = perm[i]

    cdef bint _propose(self, int kind, int32_t[::1] chip, int32_t[::1] perm, int32_t* ipos,
                       int32_t* cnt, double* cmem, double* cost, double* delta, bint use_all,
                       AnnealState* st) noexcept nogil:
        """Draw a move of ``kind`` (0 shift, 1 swap, 2 chip exchange); if feasible apply it to
        ``chip``/``perm`` (recording how to undo it in ``st``), fill ``delta`` and return True."""
        cdef int32_t q, q2, c1, c2
        cdef int p, p2, k
        cdef Py_ssize_t i
        q = <int32_t>(xorshift(&st.rng) % <uint64_t>self.nq)
        c1 = chip[self.rep[q]]
        p = ipos[c1]
        p2 = p + 1 if (xorshift(&st.rng) & 1) else p - 1
        if kind == 2:
            p2 = <int>(xorshift(&st.rng) % <uint64_t>self.C)
            if p2 == p:
                return False
            c2 = perm[p2]
            if cmem[c1] > self.sram[c2] * (1.0 + _TOL) or cmem[c2] > self.sram[c1] * (1.0 + _TOL):
                return False
            st.kind, st.c1, st.c2 = 2, c1, c2
            for i in range(self.n):
                if chip[i] == c1:
                    chip[i] = c2
                elif chip[i] == c2:
                    chip[i] = c1
            perm[p], perm[p2] = c2, c1
            ipos[c1], ipos[c2] = p2, p
            self._cost_vector(chip, delta)
            st.steps += self.unit
            for k in range(self.C):
                delta[k] -= cost[k]
            return True
        if p2 < 0 or p2 >= self.C:
            return False
        c2 = perm[p2]
        q2 = -1
        if kind == 1:
            for k in range(8):  # a random class of the adjacent stage (rejection sampling)
                q2 = <int32_t>(xorshift(&st.rng) % <uint64_t>self.nq)
                if chip[self.rep[q2]] == c2:
                    break
                q2 = -1
            if q2 < 0:
                return False
            if cmem[c1] - self.qmem[q] + self.qmem[q2] > self.sram[c1] * (1.0 + _TOL):
                return False
            if cmem[c2] - self.qmem[q2] + self.qmem[q] > self.sram[c2] * (1.0 + _TOL):
                return False
            if not self._shift_ok(q, p, p2, chip, ipos, q2) or \
                    not self._shift_ok(q2, p2, p, chip, ipos, q):
                return False
        else:
            if cmem[c2] + self.qmem[q] > self.sram[c2] * (1.0 + _TOL):
                return False
            if use_all and cnt[c1] <= 1:
                return False
            if not self._shift_ok(q, p, p2, chip, ipos, -1):
                return False
        st.kind, st.q, st.q2, st.c1, st.c2 = kind, q, q2, c1, c2
        self._move_class(q, c2, chip, delta, &st.steps)
        if q2 >= 0:
            self._move_class(q2, c1, chip, delta, &st.steps)
        st.steps += self.C
        return True

    cdef void _commit(self, int32_t[::1] chip, int32_t[::1] perm, int32_t* ipos, int32_t* cnt,
                      double* cmem, double* cost, double* trial, AnnealState* st) noexcept nogil:
        cdef int i
        cdef double x
        cdef int32_t y
        for i in range(self.C):
            cost[i] = trial[i]
        if st.kind == 2:
            x = cmem[st.c1]
            cmem[st.c1] = cmem[st.c2]
            cmem[st.c2] = x
            y = cnt[st.c1]
            cnt[st.c1] = cnt[st.c2]
            cnt[st.c2] = y
            return
        cmem[st.c1] -= self.qmem[st.q]
        cmem[st.c2] += self.qmem[st.q]
        cnt[st.c1] -= 1
        cnt[st.c2] += 1
        if st.q2 >= 0:
            cmem[st.c2] -= self.qmem[st.q2]
            cmem[st.c1] += self.qmem[st.q2]
            cnt[st.c2] -= 1
            cnt[st.c1] += 1

    cdef void _undo(self, int32_t[::1] chip, int32_t[::1] perm, int32_t* ipos, int32_t* cnt,
                    double* cmem, double* cost, AnnealState* st) noexcept nogil:
        cdef Py_ssize_t i
        cdef int p, p2
        if st.kind == 2:
            for i in range(self.n):
                if chip[i] == st.c1:
                    chip[i] = st.c2
                elif chip[i] == st.c2:
                    chip[i] = st.c1
            p, p2 = ipos[st.c1], ipos[st.c2]
            perm[p], perm[p2] = st.c2, st.c1
            ipos[st.c1], ipos[st.c2] = p2, p
            return
        self._set_class(st.q, st.c1, chip)
        if st.q2 >= 0:
            self._set_class(st.q2, st.c2, chip)



# ============================================================================ repair
def moves_cost(const int32_t[::1] node_map, const double[::1] qsize,
               const int32_t[:, ::1] proposals, double[:, :, ::1] out):
    """``out[b, q, c]`` = members of quotient node q whose proposed chip is not c. O(B (n + q C))."""
    cdef Py_ssize_t B = proposals.shape[0], n = proposals.shape[1]
    cdef Py_ssize_t nq = out.shape[1], b, v, q
    cdef int C = out.shape[2], c
    cdef int32_t p
    with nogil:
        for b in range(B):
            for q in range(nq):
                for c in range(C):
                    out[b, q, c] = qsize[q]
            for v in range(n):
                p = proposals[b, v]
                if 0 <= p < C:
                    out[b, node_map[v], p] -= 1.0


cdef struct QGraph:
    const int32_t* sp
    const int32_t* si
    const int32_t* pp
    const int32_t* pi
    const int32_t* topo
    const double* qmem
    const double* sram
    Py_ssize_t nq
    int C




cdef inline int argmin_range(const double[:, ::1] cost, Py_ssize_t q, int lo, int hi) noexcept nogil:
    cdef int c, best = lo
    for c in range(lo + 1, hi + 1):
        if cost[q, c] < cost[q, best]:
            best = c
    return best


cdef double total_cost(const double[:, ::1] cost, const int32_t* chip, Py_ssize_t nq) noexcept nogil:
    cdef double t = 0.0
    cdef Py_ssize_t q
    for q in range(nq):
        t += cost[q, chip[q]]
    return t


cdef inline int pred_max(const QGraph* g, const int32_t* chip, Py_ssize_t q) noexcept nogil:
    cdef int lo = 0
    cdef Py_ssize_t e
    for e in range(g.pp[q], g.pp[q + 1]):
        if chip[g.pi[e]] > lo:
            lo = chip[g.pi[e]]
    return lo


cdef inline int succ_min(const QGraph* g, const int32_t* chip, Py_ssize_t q) noexcept nogil:
    cdef int hi = g.C - 1
    cdef Py_ssize_t e
    for e in range(g.sp[q], g.sp[q + 1]):
        if chip[g.si[e]] < hi:
            hi = chip[g.si[e]]
    return hi


cdef void monotone_fix(const QGraph* g, const double[:, ::1] cost, int32_t* chip,
                       int32_t* tmp) noexcept nogil:
    """Forward push (cheapest chip >= predecessors') and backward pull (cheapest chip <=
    successors'), keep the cheaper, then coordinate descent inside the interval the
    neighbours allow until no change. Every step keeps all edges forward."""
    cdef Py_ssize_t idx, q
    cdef int it, best_c
    cdef bint changed
    for idx in range(g.nq):
        q = g.topo[idx]
        chip[q] = argmin_range(cost, q, pred_max(g, chip, q), g.C - 1)
    for idx in range(g.nq - 1, -1, -1):
        q = g.topo[idx]
        tmp[q] = argmin_range(cost, q, 0, succ_min(g, tmp, q))
    if total_cost(cost, tmp, g.nq) < total_cost(cost, chip, g.nq):
        for q in range(g.nq):
            chip[q] = tmp[q]
    for it in range(20):
        changed = False
        for idx in range(g.nq):
            q = g.topo[idx]
            best_c = argmin_range(cost, q, pred_max(g, chip, q), succ_min(g, chip, q))
            if cost[q, best_c] < cost[q, chip[q]]:
                chip[q] = best_c
                changed = True
        if not changed:
            break


cdef inline bint is_sink_on(const QGraph* g, const int32_t* chip, Py_ssize_t q, int c) noexcept nogil:
    """No successor of q on chip c (q may move one chip later)."""
    cdef Py_ssize_t e
    for e in range(g.sp[q], g.sp[q + 1]):
        if chip[g.si[e]] == c:
            return False
    return True


cdef inline bint is_source_on(const QGraph* g, const int32_t* chip, Py_ssize_t q, int c) noexcept nogil:
    """No predecessor of q on chip c (q may move one chip earlier)."""
    cdef Py_ssize_t e
    for e in range(g.pp[q], g.pp[q + 1]):
        if chip[g.pi[e]] == c:
            return False
    return True


cdef inline void place(int32_t* chip, double* cmem, int32_t* cnt, const double* qmem,
                       int32_t q, int c) noexcept nogil:
    cmem[chip[q]] -= qmem[q]
    cnt[chip[q]] -= 1
    chip[q] = c
    cmem[c] += qmem[q]
    cnt[c] += 1


cdef bint sram_ok(const QGraph* g, const double* cmem) noexcept nogil:
    cdef int c
    for c in range(g.C):
        if over(cmem[c], g.sram[c]):
            return False
    return True


cdef void sram_sweep(const QGraph* g, const double[:, ::1] cost, int32_t* chip, double* cmem,
                     int32_t* cnt, int direction) noexcept nogil:
    """While a chip overflows, move its cheapest boundary class one chip in ``direction``
    (+1: classes with no successor on the chip, left to right; -1: no predecessor, right
    to left)."""
    cdef int k, c, c2
    cdef Py_ssize_t q
    cdef int32_t bestq
    cdef double bestd, dlt
    cdef bint boundary
    for k in range(g.C - 1):
        c = k if direction > 0 else g.C - 1 - k
        c2 = c + direction
        while over(cmem[c], g.sram[c]):
            bestq = -1
            bestd = INFINITY
            for q in range(g.nq):
                if chip[q] != c:
                    continue
                boundary = is_sink_on(g, chip, q, c) if direction > 0 else is_source_on(g, chip, q, c)
                if not boundary:
                    continue
                dlt = cost[q, c2] - cost[q, c]
                if bestq < 0 or dlt < bestd or (dlt == bestd and g.qmem[q] > g.qmem[bestq]):
                    bestd = dlt
                    bestq = <int32_t>q
            if bestq < 0:
                break
            place(chip, cmem, cnt, g.qmem, bestq, c2)


cdef bint bump_pack(const QGraph* g, const int32_t* desired, int32_t* chip, double* cmem,
                    int32_t* cnt) noexcept nogil:
    """Forward packing: along the topological order each class takes the first chip
    >= max(desired, its predecessors' chips) with SRAM left. Valid by construction
    when it succeeds; O(q + e + C)."""
    cdef Py_ssize_t idx, q
    cdef int c
    for c in range(g.C):
        cmem[c] = 0.0
        cnt[c] = 0
    for idx in range(g.nq):
        q = g.topo[idx]
        c = desired[q]
        if pred_max(g, chip, q) > c:
            c = pred_max(g, chip, q)
        while c < g.C and over(cmem[c] + g.qmem[q], g.sram[c]):
            c += 1
        if c == g.C:
            return False
        chip[q] = c
        cmem[c] += g.qmem[q]
        cnt[c] += 1
    return True


cdef bint sram_fix(const QGraph* g, const double[:, ::1] cost, int32_t* chip, int32_t* tmp,
                   double* cmem, int32_t* cnt) noexcept nogil:
    """Alternating boundary sweeps (up to 4), then capacity-aware forward packing from the
    current chips, then from chip 0. False if SRAM still cannot be met."""
    cdef int sweep
    cdef Py_ssize_t q
    for sweep in range(4):
        if sram_ok(g, cmem):
            return True
        sram_sweep(g, cost, chip, cmem, cnt, 1 if sweep % 2 == 0 else -1)
    if sram_ok(g, cmem):
        return True
    for q in range(g.nq):
        tmp[q] = chip[q]
    if bump_pack(g, tmp, chip, cmem, cnt):
        return True
    for q in range(g.nq):
        tmp[q] = 0
    return bump_pack(g, tmp, chip, cmem, cnt)


cdef int32_t best_neighbour_fill(const QGraph* g, const double[:, ::1] cost, const int32_t* chip,
                                 const double* cmem, const int32_t* cnt, int target) noexcept nogil:
    """Cheapest class of chip target-1 (no successor there) or target+1 (no predecessor there)
    whose chip keeps >= 2 classes and that fits target's SRAM; -1 if none."""
    cdef Py_ssize_t q
    cdef int c
    cdef int32_t bestq = -1
    cdef double bestd = INFINITY, dlt
    cdef bint ok
    for q in range(g.nq):
        c = chip[q]
        if cnt[c] < 2 or over(g.qmem[q] + cmem[target], g.sram[target]):
            continue
        if c == target - 1:
            ok = is_sink_on(g, chip, q, c)
        elif c == target + 1:
            ok = is_source_on(g, chip, q, c)
        else:
            ok = False
        if ok:
            dlt = cost[q, target] - cost[q, c]
            if dlt < bestd:
                bestd = dlt
                bestq = <int32_t>q
    return bestq


cdef bint shift_towards(const QGraph* g, const double[:, ::1] cost, int32_t* chip, double* cmem,
                        int32_t* cnt, int target) noexcept nogil:
    """Move one boundary class a step towards the empty chip ``target`` from the nearest
    chip holding >= 2 classes. False if no such step exists."""
    cdef int d, side, c, to
    cdef Py_ssize_t q
    cdef int32_t bestq
    cdef double bestd, dlt
    cdef bint ok
    for d in range(1, g.C):
        for side in range(2):
            c = target - d if side == 0 else target + d
            if c < 0 or c >= g.C or cnt[c] < 2:
                continue
            to = c + 1 if c < target else c - 1
            bestq = -1
            bestd = INFINITY
            for q in range(g.nq):
                if chip[q] != c or over(g.qmem[q] + cmem[to], g.sram[to]):
                    continue
                ok = is_sink_on(g, chip, q, c) if to > c else is_source_on(g, chip, q, c)
                if ok:
                    dlt = cost[q, to] - cost[q, c]
                    if dlt < bestd:
                        bestd = dlt
                        bestq = <int32_t>q
            if bestq >= 0:
                place(chip, cmem, cnt, g.qmem, bestq, to)
                return True
    return False


cdef bint fill_empty(const QGraph* g, const double[:, ::1] cost, int32_t* chip, double* cmem,
                     int32_t* cnt) noexcept nogil:
    """Give every empty chip a class: a direct fill from a neighbour chip, else shift
    classes towards it one step at a time. False if it gets stuck."""
    cdef long it
    cdef int c, target
    cdef int32_t q
    if g.nq < g.C:
        return False
    for it in range(2 * g.nq * g.C + g.C):
        target = -1
        for c in range(g.C):
            if cnt[c] == 0:
                target = c
                break
        if target < 0:
            return True
        q = best_neighbour_fill(g, cost, chip, cmem, cnt, target)
        if q >= 0:
            place(chip, cmem, cnt, g.qmem, q, target)
        elif not shift_towards(g, cost, chip, cmem, cnt, target):
            return False
    for c in range(g.C):
        if cnt[c] == 0:
            return False
    return True


cdef int repair_one(const QGraph* g, const double[:, ::1] cost, bint use_all, int32_t* chip,
                    int32_t* tmp, double* cmem, int32_t* cnt) noexcept nogil:
    """Greedy repair of one proposal on the quotient; returns 0 ok, 1 SRAM, 2 use-all failure.

    1. :func:`monotone_fix` (every edge forward); 2. :func:`sram_fix` (boundary sweeps,
    then capacity-aware forward packing); 3. with ``use_all``, :func:`fill_empty`.
    Cost O(passes (q + e) C + moves (q + e))."""
    cdef Py_ssize_t q
    cdef int c
    monotone_fix(g, cost, chip, tmp)
    for c in range(g.C):
        cmem[c] = 0.0
        cnt[c] = 0
    for q in range(g.nq):
        cmem[chip[q]] += g.qmem[q]
        cnt[chip[q]] += 1
    if not sram_fix(g, cost, chip, tmp, cmem, cnt):
        return 1
    if use_all and not fill_empty(g, cost, chip, cmem, cnt):
        return 2
    return 0


def greedy_repair_batch(const int32_t[::1] qsucc_ptr, const int32_t[::1] qsucc_idx,
                        const int32_t[::1] qpred_ptr, const int32_t[::1] qpred_idx,
                        const int32_t[::1] topo, const double[:, :, ::1] cost,
                        const double[::1] qmem, const double[::1] sram, bint use_all,
                        int32_t[:, ::1] out_chip, int8_t[::1] out_status):
    """Repair B proposals given as per-(quotient node, chip) costs (B, q, C) along the chip
    index order; see ``repair_one``."""
    cdef Py_ssize_t B = cost.shape[0], nq = cost.shape[1], b
    cdef int C = cost.shape[2]
    cdef QGraph g
    cdef int32_t* tmp = <int32_t*>malloc((nq + C + 1) * sizeof(int32_t))
    cdef double* cmem = <double*>malloc((C + 1) * sizeof(double))
    if tmp == NULL or cmem == NULL:
        free(tmp)
        free(cmem)
        raise MemoryError()
    g.sp = &qsucc_ptr[0]
    g.pp = &qpred_ptr[0]
    g.si = &qsucc_idx[0] if qsucc_idx.shape[0] > 0 else NULL
    g.pi = &qpred_idx[0] if qpred_idx.shape[0] > 0 else NULL
    g.topo = &topo[0]
    g.qmem = &qmem[0]
    g.sram = &sram[0]
    g.nq = nq
    g.C = C
    with nogil:
        for b in range(B):
            out_status[b] = <int8_t>repair_one(&g, cost[b], use_all, &out_chip[b, 0], tmp, cmem,
                                               tmp + nq)
    free(tmp)
    free(cmem)
