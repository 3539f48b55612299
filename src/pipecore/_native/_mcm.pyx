"""Multi-chip-module kernels: batch cost evaluation, greedy constraint repair, annealing.

Chip cost (see ``pipecore.mcm.costmodel``)::

    cost[c] = sum_{v on c} work[v] * inv_rate[c]                         compute
            + sum_{u in In(c)} (comm[u] * inv_bw + lathops[chip(u), c])  received tensors
            + sum_{u in Out(c)} comm[u] * inv_bw                          sent tensors

A tensor is charged once per distinct consumer chip (multicast), and producers
with ``comm == 0`` carry no data and cost nothing. With ``inv_rate = 1``,
``inv_bw = 1`` and zero latency this is exactly pipecore's stage cost.
``lathops`` is the flattened (C, C) matrix ``hop_latency * hops(p, q)``.

Structural work (repair, annealing moves) runs on the colocation quotient
(groups and the cycles they create are single nodes); costs are always
evaluated on the original graph.
"""
from libc.stdint cimport int32_t, int8_t, uint64_t
from libc.math cimport INFINITY, exp, sqrt
from libc.stdlib cimport malloc, free


# ---------------------------------------------------------------------------- cost
cdef void chip_costs_into(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                          const double[::1] work, const double[::1] comm,
                          const int32_t* chip, const double[::1] inv_rate, double inv_bw,
                          const double[::1] lathops, int C,
                          double* comp, double* traffic, int32_t* mark) noexcept nogil:
    """Accumulate per-chip compute and link traffic (outputs zeroed, mark = -1 by caller)."""
    cdef Py_ssize_t n = work.shape[0], u, e
    cdef int32_t s, t
    cdef double c
    cdef bint sent
    for u in range(n):
        s = chip[u]
        comp[s] += work[u] * inv_rate[s]
        c = comm[u]
        if c == 0.0:
            continue
        c = c * inv_bw
        sent = False
        for e in range(succ_ptr[u], succ_ptr[u + 1]):
            t = chip[succ_idx[e]]
            if t != s and mark[t] != u:
                mark[t] = <int32_t>u
                traffic[t] += c + lathops[s * C + t]
                sent = True
        if sent:
            traffic[s] += c


cdef inline void mcm_contrib(int32_t u, double sign,
                             const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                             const double[::1] comm, const int32_t* chip, double inv_bw,
                             const double[::1] lathops, int C,
                             double* delta, int32_t* mark, int32_t stamp) noexcept nogil:
    """Add ``sign`` times producer u's link-traffic terms to ``delta`` (O(outdeg u))."""
    cdef int32_t s = chip[u], t
    cdef Py_ssize_t e
    cdef bint sent = False
    cdef double c = comm[u]
    if c == 0.0:
        return
    c = c * inv_bw
    for e in range(succ_ptr[u], succ_ptr[u + 1]):
        t = chip[succ_idx[e]]
        if t != s and mark[t] != stamp:
            mark[t] = stamp
            delta[t] += sign * (c + lathops[s * C + t])
            sent = True
    if sent:
        delta[s] += sign * c


cdef void mcm_move(int32_t v, int32_t new_chip,
                   const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                   const int32_t[::1] pred_ptr, const int32_t[::1] pred_idx,
                   const double[::1] work, const double[::1] comm,
                   const double[::1] inv_rate, double inv_bw, const double[::1] lathops, int C,
                   int32_t* chip, double* delta, int32_t* mark, int32_t* stamp) noexcept nogil:
    """Move v to ``new_chip`` (chip is updated) and add the chip-cost change to ``delta``.

    Only v's and its predecessors' terms change: O(outdeg v + sum outdeg(pred v)).
    """
    cdef int32_t old = chip[v], u
    cdef Py_ssize_t e
    if old == new_chip:
        return
    delta[old] -= work[v] * inv_rate[old]
    delta[new_chip] += work[v] * inv_rate[new_chip]
    stamp[0] += 1
    mcm_contrib(v, -1.0, succ_ptr, succ_idx, comm, chip, inv_bw, lathops, C, delta, mark, stamp[0])
    for e in range(pred_ptr[v], pred_ptr[v + 1]):
        u = pred_idx[e]
        stamp[0] += 1
        mcm_contrib(u, -1.0, succ_ptr, succ_idx, comm, chip, inv_bw, lathops, C, delta, mark,
                    stamp[0])
    chip[v] = new_chip
    stamp[0] += 1
    mcm_contrib(v, 1.0, succ_ptr, succ_idx, comm, chip, inv_bw, lathops, C, delta, mark, stamp[0])
    for e in range(pred_ptr[v], pred_ptr[v + 1]):
        u = pred_idx[e]
        stamp[0] += 1
        mcm_contrib(u, 1.0, succ_ptr, succ_idx, comm, chip, inv_bw, lathops, C, delta, mark,
                    stamp[0])


def chip_breakdown(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                   const double[::1] work, const double[::1] comm, const int32_t[::1] chip,
                   const double[::1] inv_rate, double inv_bw, const double[::1] lathops,
                   double[::1] comp, double[::1] traffic):
    """Fill per-chip compute and link traffic (length C) for one assignment; O(n + m + C)."""
    cdef int C = comp.shape[0], i
    cdef int32_t* mark = <int32_t*>malloc(C * sizeof(int32_t))
    if mark == NULL:
        raise MemoryError()
    with nogil:
        for i in range(C):
            comp[i] = 0.0
            traffic[i] = 0.0
            mark[i] = -1
        chip_costs_into(succ_ptr, succ_idx, work, comm, &chip[0], inv_rate, inv_bw, lathops, C,
                        &comp[0], &traffic[0], mark)
    free(mark)


def evaluate_batch(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                   const int32_t[::1] src, const int32_t[::1] dst,
                   const double[::1] work, const double[::1] comm, const double[::1] mem,
                   const int32_t[::1] node_map, const int32_t[::1] rep,
                   const int32_t[:, ::1] chips,
                   const double[::1] inv_rate, double inv_bw, const double[::1] lathops,
                   const double[::1] sram,
                   double[::1] out_bottleneck, int8_t[::1] out_valid):
    """Score a batch of assignments (B, n): bottleneck chip cost and validity.

    Valid means: every chip in 0..C-1, every edge forward (chip[u] <= chip[v]),
    every colocation class on one chip (``chip[v] == chip[rep[node_map[v]]]``) and
    no chip above its SRAM. The bottleneck is reported for any in-range
    assignment (inf when a chip index is out of range). O(B (n + m + C)).
    """
    cdef Py_ssize_t B = chips.shape[0], n = chips.shape[1], m = src.shape[0]
    cdef int C = inv_rate.shape[0]
    cdef Py_ssize_t b, v, e
    cdef int i
    cdef int32_t s
    cdef bint ok
    cdef double best, c
    cdef double* comp = <double*>malloc(3 * C * sizeof(double))
    cdef int32_t* mark = <int32_t*>malloc(C * sizeof(int32_t))
    if comp == NULL or mark == NULL:
        free(comp)
        free(mark)
        raise MemoryError()
    cdef double* traffic = comp + C
    cdef double* cmem = comp + 2 * C
    with nogil:
        for b in range(B):
            ok = True
            for v in range(n):
                s = chips[b, v]
                if s < 0 or s >= C:
                    ok = False
                    break
            if not ok:
                out_valid[b] = 0
                out_bottleneck[b] = INFINITY
                continue
            for i in range(C):
                comp[i] = 0.0
                traffic[i] = 0.0
                cmem[i] = 0.0
                mark[i] = -1
            chip_costs_into(succ_ptr, succ_idx, work, comm, &chips[b, 0], inv_rate, inv_bw,
                            lathops, C, comp, traffic, mark)
            best = 0.0
            for i in range(C):
                c = comp[i] + traffic[i]
                if c > best:
                    best = c
            out_bottleneck[b] = best
            for e in range(m):
                if chips[b, src[e]] > chips[b, dst[e]]:
                    ok = False
                    break
            if ok:
                for v in range(n):
                    if chips[b, v] != chips[b, rep[node_map[v]]]:
                        ok = False
                        break
            if ok:
                for v in range(n):
                    cmem[chips[b, v]] += mem[v]
                for i in range(C):
                    if cmem[i] > sram[i] * (1.0 + 1e-12):
                        ok = False
                        break
            out_valid[b] = 1 if ok else 0
    free(comp)
    free(mark)


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


# ---------------------------------------------------------------------------- greedy repair
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


cdef int repair_one(const int32_t[::1] sp, const int32_t[::1] si,
                    const int32_t[::1] pp, const int32_t[::1] pi,
                    const int32_t[::1] topo, const double[:, ::1] cost,
                    const double[::1] qmem, const double[::1] sram, bint use_all,
                    int32_t* chip, int32_t* tmp, double* cmem, int32_t* cnt) noexcept nogil:
    """Greedy repair of one proposal on the quotient; returns 0 ok, 1 SRAM, 2 use-all failure.

    1. Monotone fix: forward push (each node takes its cheapest chip >= its
       predecessors') and backward pull (cheapest chip <= its successors'), keep
       the cheaper, then coordinate descent (cheapest chip inside the interval its
       neighbours allow) until no change. Every step keeps all edges forward.
    2. SRAM: sweep chips left to right moving the cheapest node with no successor
       on its chip one chip later, then right to left moving nodes without a
       predecessor on their chip one chip earlier (alternating, up to 4 sweeps);
       if SRAM still overflows, capacity-aware forward packing (``bump_pack``) from
       the current chips, then from chip 0.
    3. Use every chip: fill each empty chip with the cheapest boundary node of a
       neighbouring chip that keeps >= 2 nodes; otherwise shift a node one step
       from the nearest chip with >= 2 nodes towards it.
    Cost O(passes (q + e) C + moves (q + e)).
    """
    cdef Py_ssize_t nq = cost.shape[0], idx, q, e
    cdef int C = cost.shape[1], c, lo, hi, best_c, sweep, it, d, target, side
    cdef int32_t u, bestq
    cdef double ca, cb, bestd, dlt
    cdef bint changed, ok, found, progress
    # ---- 1. monotone
    for idx in range(nq):
        q = topo[idx]
        lo = 0
        for e in range(pp[q], pp[q + 1]):
            if chip[pi[e]] > lo:
                lo = chip[pi[e]]
        chip[q] = argmin_range(cost, q, lo, C - 1)
    for idx in range(nq - 1, -1, -1):
        q = topo[idx]
        hi = C - 1
        for e in range(sp[q], sp[q + 1]):
            if tmp[si[e]] < hi:
                hi = tmp[si[e]]
        tmp[q] = argmin_range(cost, q, 0, hi)
    ca = total_cost(cost, chip, nq)
    cb = total_cost(cost, tmp, nq)
    if cb < ca:
        for q in range(nq):
            chip[q] = tmp[q]
    for it in range(20):
        changed = False
        for idx in range(nq):
            q = topo[idx]
            lo = 0
            hi = C - 1
            for e in range(pp[q], pp[q + 1]):
                if chip[pi[e]] > lo:
                    lo = chip[pi[e]]
            for e in range(sp[q], sp[q + 1]):
                if chip[si[e]] < hi:
                    hi = chip[si[e]]
            best_c = argmin_range(cost, q, lo, hi)
            if cost[q, best_c] < cost[q, chip[q]]:
                chip[q] = best_c
                changed = True
        if not changed:
            break
    # ---- 2. SRAM
    for c in range(C):
        cmem[c] = 0.0
        cnt[c] = 0
    for q in range(nq):
        cmem[chip[q]] += qmem[q]
        cnt[chip[q]] += 1
    for sweep in range(4):
        ok = True
        for c in range(C):
            if cmem[c] > sram[c] * (1.0 + 1e-12):
                ok = False
        if ok:
            break
        if sweep % 2 == 0:
            for c in range(C - 1):
                while cmem[c] > sram[c] * (1.0 + 1e-12):
                    bestq = -1
                    bestd = INFINITY
                    for q in range(nq):
                        if chip[q] != c:
                            continue
                        found = True
                        for e in range(sp[q], sp[q + 1]):
                            if chip[si[e]] == c:
                                found = False
                                break
                        if not found:
                            continue
                        dlt = cost[q, c + 1] - cost[q, c]
                        if bestq < 0 or dlt < bestd or (dlt == bestd and qmem[q] > qmem[bestq]):
                            bestd = dlt
                            bestq = <int32_t>q
                    if bestq < 0:
                        break
                    chip[bestq] = c + 1
                    cmem[c] -= qmem[bestq]
                    cmem[c + 1] += qmem[bestq]
                    cnt[c] -= 1
                    cnt[c + 1] += 1
        else:
            for c in range(C - 1, 0, -1):
                while cmem[c] > sram[c] * (1.0 + 1e-12):
                    bestq = -1
                    bestd = INFINITY
                    for q in range(nq):
                        if chip[q] != c:
                            continue
                        found = True
                        for e in range(pp[q], pp[q + 1]):
                            if chip[pi[e]] == c:
                                found = False
                                break
                        if not found:
                            continue
                        dlt = cost[q, c - 1] - cost[q, c]
                        if bestq < 0 or dlt < bestd or (dlt == bestd and qmem[q] > qmem[bestq]):
                            bestd = dlt
                            bestq = <int32_t>q
                    if bestq < 0:
                        break
                    chip[bestq] = c - 1
                    cmem[c] -= qmem[bestq]
                    cmem[c - 1] += qmem[bestq]
                    cnt[c] -= 1
                    cnt[c - 1] += 1
    ok = True
    for c in range(C):
        if cmem[c] > sram[c] * (1.0 + 1e-12):
            ok = False
    if not ok:  # fall back to capacity-aware forward packing, first from the current chips
        for q in range(nq):
            tmp[q] = chip[q]
        if not bump_pack(sp, si, pp, pi, topo, qmem, sram, tmp, chip, cmem, cnt):
            for q in range(nq):
                tmp[q] = 0
            if not bump_pack(sp, si, pp, pi, topo, qmem, sram, tmp, chip, cmem, cnt):
                return 1
    if not use_all:
        return 0
    # ---- 3. use every chip
    if nq < C:
        return 2
    for it in range(2 * nq * C + C):
        target = -1
        for c in range(C):
            if cnt[c] == 0:
                target = c
                break
        if target < 0:
            return 0
        # direct fill from a neighbour that keeps >= 2 nodes
        bestq = -1
        bestd = INFINITY
        for q in range(nq):
            c = chip[q]
            if qmem[q] + cmem[target] > sram[target] * (1.0 + 1e-12):
                continue
            if c == target - 1 and cnt[c] >= 2:
                found = True
                for e in range(sp[q], sp[q + 1]):
                    if chip[si[e]] == c:
                        found = False
                        break
            elif c == target + 1 and cnt[c] >= 2:
                found = True
                for e in range(pp[q], pp[q + 1]):
                    if chip[pi[e]] == c:
                        found = False
                        break
            else:
                found = False
            if found:
                dlt = cost[q, target] - cost[q, c]
                if dlt < bestd:
                    bestd = dlt
                    bestq = <int32_t>q
        if bestq >= 0:
            c = chip[bestq]
            chip[bestq] = target
            cmem[c] -= qmem[bestq]
            cmem[target] += qmem[bestq]
            cnt[c] -= 1
            cnt[target] += 1
            continue
        # shift one node a step towards the empty chip from the nearest crowded chip
        progress = False
        for d in range(1, C):
            for side in range(2):
                c = target - d if side == 0 else target + d
                if c < 0 or c >= C or cnt[c] < 2 or progress:
                    continue
                lo = c + 1 if c < target else c - 1
                bestq = -1
                bestd = INFINITY
                for q in range(nq):
                    if chip[q] != c or qmem[q] + cmem[lo] > sram[lo] * (1.0 + 1e-12):
                        continue
                    found = True
                    if lo > c:
                        for e in range(sp[q], sp[q + 1]):
                            if chip[si[e]] == c:
                                found = False
                                break
                    else:
                        for e in range(pp[q], pp[q + 1]):
                            if chip[pi[e]] == c:
                                found = False
                                break
                    if found:
                        dlt = cost[q, lo] - cost[q, c]
                        if dlt < bestd:
                            bestd = dlt
                            bestq = <int32_t>q
                if bestq >= 0:
                    chip[bestq] = lo
                    cmem[c] -= qmem[bestq]
                    cmem[lo] += qmem[bestq]
                    cnt[c] -= 1
                    cnt[lo] += 1
                    progress = True
            if progress:
                break
        if not progress:
            return 2
    for c in range(C):
        if cnt[c] == 0:
            return 2
    return 0


cdef bint bump_pack(const int32_t[::1] sp, const int32_t[::1] si,
                    const int32_t[::1] pp, const int32_t[::1] pi,
                    const int32_t[::1] topo, const double[::1] qmem, const double[::1] sram,
                    const int32_t* desired, int32_t* chip, double* cmem, int32_t* cnt) noexcept nogil:
    """Forward packing: along the topological order each node takes the first chip
    >= max(desired, its predecessors' chips) with SRAM left. Valid by construction
    when it succeeds; O(q + e + C)."""
    cdef Py_ssize_t nq = topo.shape[0], idx, q, e
    cdef int C = sram.shape[0], c
    for c in range(C):
        cmem[c] = 0.0
        cnt[c] = 0
    for idx in range(nq):
        q = topo[idx]
        c = desired[q]
        for e in range(pp[q], pp[q + 1]):
            if chip[pi[e]] > c:
                c = chip[pi[e]]
        while c < C and cmem[c] + qmem[q] > sram[c] * (1.0 + 1e-12):
            c += 1
        if c == C:
            return False
        chip[q] = c
        cmem[c] += qmem[q]
        cnt[c] += 1
    return True


def greedy_repair_batch(const int32_t[::1] qsucc_ptr, const int32_t[::1] qsucc_idx,
                        const int32_t[::1] qpred_ptr, const int32_t[::1] qpred_idx,
                        const int32_t[::1] topo, const double[:, :, ::1] cost,
                        const double[::1] qmem, const double[::1] sram, bint use_all,
                        int32_t[:, ::1] out_chip, int8_t[::1] out_status):
    """Repair B proposals given as per-(quotient node, chip) costs (B, q, C); see ``repair_one``."""
    cdef Py_ssize_t B = cost.shape[0], nq = cost.shape[1], b
    cdef int C = cost.shape[2]
    cdef int32_t* tmp = <int32_t*>malloc((nq + C + 1) * sizeof(int32_t))
    cdef double* cmem = <double*>malloc((C + 1) * sizeof(double))
    if tmp == NULL or cmem == NULL:
        free(tmp)
        free(cmem)
        raise MemoryError()
    with nogil:
        for b in range(B):
            out_status[b] = <int8_t>repair_one(qsucc_ptr, qsucc_idx, qpred_ptr, qpred_idx, topo,
                                               cost[b], qmem, sram, use_all, &out_chip[b, 0],
                                               tmp, cmem, tmp + nq)
    free(tmp)
    free(cmem)


# ---------------------------------------------------------------------------- annealing
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


def anneal(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
           const int32_t[::1] pred_ptr, const int32_t[::1] pred_idx,
           const double[::1] work, const double[::1] comm,
           const int32_t[::1] member_ptr, const int32_t[::1] member_idx,
           const int32_t[::1] qsucc_ptr, const int32_t[::1] qsucc_idx,
           const int32_t[::1] qpred_ptr, const int32_t[::1] qpred_idx, const double[::1] qmem,
           const double[::1] inv_rate, double inv_bw, const double[::1] lathops,
           const double[::1] sram, bint use_all,
           int32_t[::1] chip, int32_t[::1] best_chip, long n_steps, double t_start, double t_end,
           unsigned long long seed, double[::1] trace):
    """Simulated annealing on a valid assignment ``chip`` (original nodes, modified in place).

    A move shifts one quotient node (all its members) to an adjacent chip when that
    keeps every quotient edge forward, the SRAM of the target chip and (with
    ``use_all``) a non-empty source chip. Infeasible proposals are rejected
    without evaluation (O(deg)); ``n_steps`` counts evaluated moves (at most
    ``100 n_steps + 1000`` proposals in all). The chip-cost vector is updated in
    O(deg) per member (``mcm_move``), so one evaluated move costs O(deg + C). Energy is the
    bottleneck plus 0.05 * RMS chip cost; Metropolis acceptance with geometric
    cooling from ``t_start`` to ``t_end`` over the evaluated moves. ``best_chip``
    receives the assignment with the lowest bottleneck; ``trace[i]`` the best
    bottleneck after ``(i + 1) * n_steps / len(trace)`` evaluated moves. Returns
    (best bottleneck, accepted moves, evaluated moves).
    """
    cdef Py_ssize_t n = work.shape[0], nq = qmem.shape[0], v, j
    cdef int C = inv_rate.shape[0], i, old, new, T = trace.shape[0]
    cdef long step = 0, accepted = 0, tries = 0, max_tries = 100 * n_steps + 1000
    cdef uint64_t rng = seed * 2654435761ULL + 88172645463325252ULL
    cdef int32_t q, stamp = 0
    cdef double e_cur, e_new, b_cur, b_new, best, temp, ratio
    cdef bint ok
    cdef double* cost = <double*>malloc(3 * C * sizeof(double))
    cdef double* cmem = <double*>malloc(C * sizeof(double))
    cdef int32_t* mark = <int32_t*>malloc(C * sizeof(int32_t))
    cdef int32_t* cnt = <int32_t*>malloc(C * sizeof(int32_t))
    if cost == NULL or cmem == NULL or mark == NULL or cnt == NULL:
        free(cost)
        free(cmem)
        free(mark)
        free(cnt)
        raise MemoryError()
    cdef double* delta = cost + C
    cdef double* trial = cost + 2 * C
    if rng == 0:
        rng = 1
    with nogil:
        for i in range(C):
            cost[i] = 0.0
            delta[i] = 0.0
            cmem[i] = 0.0
            mark[i] = -1
            cnt[i] = 0
        chip_costs_into(succ_ptr, succ_idx, work, comm, &chip[0], inv_rate, inv_bw, lathops, C,
                        cost, delta, mark)
        for i in range(C):
            cost[i] += delta[i]
            delta[i] = 0.0
            mark[i] = -1
        for q in range(nq):
            v = member_idx[member_ptr[q]]
            cmem[chip[v]] += qmem[q]
            cnt[chip[v]] += 1
        e_cur = energy(cost, C, &b_cur)
        best = b_cur
        for v in range(n):
            best_chip[v] = chip[v]
        ratio = 1.0
        if n_steps > 1 and t_start > 0.0:
            ratio = (t_end / t_start) ** (1.0 / (n_steps - 1))
        temp = t_start
        step = 0
        while step < n_steps and tries < max_tries:
            tries += 1
            q = <int32_t>(xorshift(&rng) % <uint64_t>nq)
            old = chip[member_idx[member_ptr[q]]]
            new = old + 1 if (xorshift(&rng) & 1) else old - 1
            ok = 0 <= new < C
            if ok and cmem[new] + qmem[q] > sram[new] * (1.0 + 1e-12):
                ok = False
            if ok and use_all and cnt[old] <= 1:
                ok = False
            if ok:
                if new > old:
                    for j in range(qsucc_ptr[q], qsucc_ptr[q + 1]):
                        if chip[member_idx[member_ptr[qsucc_idx[j]]]] < new:
                            ok = False
                            break
                else:
                    for j in range(qpred_ptr[q], qpred_ptr[q + 1]):
                        if chip[member_idx[member_ptr[qpred_idx[j]]]] > new:
                            ok = False
                            break
            if ok:
                for j in range(member_ptr[q], member_ptr[q + 1]):
                    mcm_move(member_idx[j], new, succ_ptr, succ_idx, pred_ptr, pred_idx, work,
                             comm, inv_rate, inv_bw, lathops, C, &chip[0], delta, mark, &stamp)
                for i in range(C):
                    trial[i] = cost[i] + delta[i]
                e_new = energy(trial, C, &b_new)
                if e_new <= e_cur or (temp > 0.0 and uniform01(&rng) < exp((e_cur - e_new) / temp)):
                    accepted += 1
                    for i in range(C):
                        cost[i] = trial[i]
                    e_cur = e_new
                    b_cur = b_new
                    cmem[old] -= qmem[q]
                    cmem[new] += qmem[q]
                    cnt[old] -= 1
                    cnt[new] += 1
                    if b_cur < best - 1e-12 * best:
                        best = b_cur
                        for v in range(n):
                            best_chip[v] = chip[v]
                else:
                    for j in range(member_ptr[q], member_ptr[q + 1]):
                        chip[member_idx[j]] = old
                for i in range(C):
                    delta[i] = 0.0
                temp *= ratio
                step += 1
                if T > 0 and step * T % n_steps < T:
                    trace[step * T // n_steps - 1] = best
        for j in range(T):  # budget not used up (no feasible move left): flat trace
            if step * T < (j + 1) * n_steps:
                trace[j] = best
    free(cost)
    free(cmem)
    free(mark)
    free(cnt)
    return best, accepted, step
