"""Native core of the exact solver: ideal enumeration and the min-max DP over ideals.

All functions work on the *quotient* DAG (colocation groups and the cycles they
create contracted, nodes relabelled so that index order is topological) for
structure, and on the *original* graph for costs, because communication is per
producer and a quotient node's members may send different tensors.

Ideal enumeration (``enumerate_ideals``) is a canonical depth-first search: an
ideal's members, sorted by (topological) index, have every prefix an ideal, so
each ideal is generated exactly once by adding an *available* node (all its
predecessors inside) whose index exceeds the last added one. ``avail`` is kept
as a bitset; O(words + deg) per ideal, O(q) stack.

Stage cost of S = J \\ I is maintained incrementally while a DFS adds quotient
nodes to S (see ``_inc_add``): a receive counter per producer in I (how many of
its successors are in S) and an out-counter per producer in S (how many of its
successors are still outside S). Adding an original node x touches only its
in-edges: O(indeg x) per node, undone in O(indeg x) on backtrack. No pair of
ideals is ever stored; the per-pair memory is zero and the DFS stack is O(q).
"""
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stdlib cimport malloc, free

from pipecore._native._clock cimport now

cdef double INF = float("inf")


# ----------------------------------------------------------------------------- bit helpers
cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil
    int __builtin_popcountll(unsigned long long) nogil


cdef inline int _ctz(uint64_t x) noexcept nogil:
    return __builtin_ctzll(x)


cdef inline int32_t _next_bit(const uint64_t* bits, int32_t words, int32_t start) noexcept nogil:
    """Smallest set bit index >= start, or -1."""
    cdef int32_t w = start >> 6
    cdef uint64_t x
    if w >= words:
        return -1
    x = bits[w] & (~(<uint64_t>0) << (start & 63))
    while True:
        if x:
            return (w << 6) + _ctz(x)
        w += 1
        if w >= words:
            return -1
        x = bits[w]


# ----------------------------------------------------------------------------- enumeration
cdef inline void _take(int32_t v, uint64_t* cur, uint64_t* avail, int32_t* missing,
                       const int32_t* sptr, const int32_t* sidx) noexcept nogil:
    """Add available node v to the ideal ``cur``; successors whose last missing
    predecessor was v become available. O(outdeg v)."""
    cdef int32_t e, s
    avail[v >> 6] &= ~((<uint64_t>1) << (v & 63))
    cur[v >> 6] |= (<uint64_t>1) << (v & 63)
    for e in range(sptr[v], sptr[v + 1]):
        s = sidx[e]
        missing[s] -= 1
        if missing[s] == 0:
            avail[s >> 6] |= (<uint64_t>1) << (s & 63)


cdef inline void _untake(int32_t v, uint64_t* cur, uint64_t* avail, int32_t* missing,
                         const int32_t* sptr, const int32_t* sidx) noexcept nogil:
    """Exact inverse of :func:`_take`. O(outdeg v)."""
    cdef int32_t e, s
    cur[v >> 6] &= ~((<uint64_t>1) << (v & 63))
    for e in range(sptr[v], sptr[v + 1]):
        s = sidx[e]
        if missing[s] == 0:
            avail[s >> 6] &= ~((<uint64_t>1) << (s & 63))
        missing[s] += 1
    avail[v >> 6] |= (<uint64_t>1) << (v & 63)


cdef int64_t _enum(int32_t q, int32_t words,
                   const int32_t* sptr, const int32_t* sidx, const int32_t* indeg,
                   int64_t cap, bint store,
                   const double* qwork, const double* qmem, const uint64_t* zob,
                   uint64_t* bits, uint64_t* avail_out, int32_t* size,
                   double* iw, double* im, uint64_t* ih, int32_t* fcount,
                   int64_t* trans_total, double deadline) noexcept nogil:
    """Canonical DFS over the ideals; returns their number (stops after cap + 1), or -1
    when the clock passes ``deadline`` (checked about every 2^20 words of bitset work)."""
    cdef int32_t* missing = <int32_t*>malloc(max(q, 1) * sizeof(int32_t))
    cdef int32_t* vst = <int32_t*>malloc((q + 1) * sizeof(int32_t))
    cdef double* wst = <double*>malloc((q + 1) * sizeof(double))
    cdef double* mst = <double*>malloc((q + 1) * sizeof(double))
    cdef uint64_t* hst = <uint64_t*>malloc((q + 1) * sizeof(uint64_t))
    cdef uint64_t* cur = <uint64_t*>malloc(max(words, 1) * sizeof(uint64_t))
    cdef uint64_t* avail = <uint64_t*>malloc(max(words, 1) * sizeof(uint64_t))
    cdef int32_t i, d, v, w, nxt
    cdef int64_t count = 0, trans = 0, fc
    cdef int64_t check_mask = 1
    while check_mask * (words + 8) < (1 << 20):
        check_mask <<= 1
    check_mask -= 1
    for i in range(q):
        missing[i] = indeg[i]
    for w in range(words):
        cur[w] = 0
        avail[w] = 0
    for i in range(q):
        if missing[i] == 0:
            avail[i >> 6] |= (<uint64_t>1) << (i & 63)
    d = 0
    wst[0] = mst[0] = 0.0
    hst[0] = 0
    vst[0] = -1          # vst[d] = node added to reach depth d (the "last" of depth d)
    while True:
        # ---- record the ideal at depth d
        fc = 0
        for w in range(words):
            fc += __builtin_popcountll(avail[w])
        trans += fc
        if store:
            for w in range(words):
                bits[count * words + w] = cur[w]
                avail_out[count * words + w] = avail[w]
            size[count] = d
            iw[count] = wst[d]
            im[count] = mst[d]
            ih[count] = hst[d]
            fcount[count] = <int32_t>fc
        count += 1
        if count > cap:
            break
        if (count & check_mask) == 0 and now() > deadline:
            count = -1
            break
        # ---- find the next node to add: first available index > last at this depth,
        # backtracking while none is left
        nxt = _next_bit(avail, words, vst[d] + 1)
        while nxt < 0:
            if d == 0:
                break
            v = vst[d]          # undo the node that brought us to depth d
            _untake(v, cur, avail, missing, sptr, sidx)
            d -= 1
            nxt = _next_bit(avail, words, v + 1)
        if nxt < 0:
            break
        # ---- add nxt
        v = nxt
        _take(v, cur, avail, missing, sptr, sidx)
        if store:
            wst[d + 1] = wst[d] + qwork[v]
            mst[d + 1] = mst[d] + qmem[v]
            hst[d + 1] = hst[d] ^ zob[v]
        d += 1
        vst[d] = v
    free(missing); free(vst); free(wst); free(mst); free(hst); free(cur); free(avail)
    trans_total[0] = trans
    return count


def count_ideals(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                 const int32_t[::1] indeg, int64_t cap, double deadline=INF):
    """(number of ideals, number of covering transitions), counting stops once > cap;
    (-1, .) when the monotonic clock passes ``deadline`` first.

    O(N * (words + deg)) time, O(q) memory: nothing is stored.
    """
    cdef int32_t q = indeg.shape[0]
    cdef int32_t words = (q + 63) >> 6
    cdef int64_t n, trans = 0
    with nogil:
        n = _enum(q, words, &succ_ptr[0], &succ_idx[0], &indeg[0], cap, False,
                  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, &trans,
                  deadline)
    return n, trans


def enumerate_ideals(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                     const int32_t[::1] indeg, const double[::1] qwork, const double[::1] qmem,
                     const uint64_t[::1] zob, uint64_t[:, ::1] bits, uint64_t[:, ::1] avail,
                     int32_t[::1] size, double[::1] iw, double[::1] im, uint64_t[::1] ih,
                     int32_t[::1] fcount, double deadline=INF):
    """Fill per-ideal arrays (DFS order): member bitset, available-node bitset (the
    ideal's frontier), size, work, mem, Zobrist hash and frontier size; returns their
    number, or -1 when the monotonic clock passes ``deadline`` first."""
    cdef int32_t q = indeg.shape[0]
    cdef int32_t words = bits.shape[1]
    cdef int64_t cap = bits.shape[0], n, trans = 0
    with nogil:
        n = _enum(q, words, &succ_ptr[0], &succ_idx[0], &indeg[0], cap - 1, True,
                  &qwork[0], &qmem[0], &zob[0], &bits[0, 0], &avail[0, 0], &size[0],
                  &iw[0], &im[0], &ih[0], &fcount[0], &trans, deadline)
    return n


# ----------------------------------------------------------------------------- transitions
cdef inline int64_t _lookup(const int32_t* table, uint64_t mask, const uint64_t* bits,
                            int32_t words, const uint64_t* key, uint64_t h) noexcept nogil:
    cdef uint64_t slot = h & mask
    cdef int64_t idx
    cdef int32_t w
    cdef bint same
    while True:
        idx = table[slot]
        if idx < 0:
            return -1
        same = True
        for w in range(words):
            if bits[idx * words + w] != key[w]:
                same = False
                break
        if same:
            return idx
        slot = (slot + 1) & mask


def build_transitions(const uint64_t[:, ::1] bits, const uint64_t[:, ::1] avail,
                      const uint64_t[::1] ih, const uint64_t[::1] zob,
                      const int64_t[::1] fr_ptr, int32_t[::1] fr_v, int32_t[::1] fr_next,
                      int64_t[::1] fr_start, int32_t[::1] table):
    """Fill the covering transitions J -> J + v (v in frontier(J), ascending v).

    A Zobrist-hashed open-addressing table maps a member bitset to its ideal id;
    O(N * words) to build, expected O(words) per lookup. ``fr_start[e]`` is where
    the canonical DFS continues in frontier(J + v): its first entry with index > v.
    Returns the number of lookups that failed (0 unless the inputs are inconsistent).
    """
    cdef int64_t N = bits.shape[0], J, e, found, bad = 0, T = fr_v.shape[0], f, fend
    cdef int32_t words = bits.shape[1], w, v
    cdef uint64_t mask = table.shape[0] - 1, slot, h
    cdef uint64_t* key = <uint64_t*>malloc(max(words, 1) * sizeof(uint64_t))
    cdef const uint64_t* B = &bits[0, 0]
    with nogil:
        for slot in range(mask + 1):
            table[slot] = -1
        for J in range(N):
            slot = ih[J] & mask
            while table[slot] >= 0:
                slot = (slot + 1) & mask
            table[slot] = <int32_t>J
        for J in range(N):
            e = fr_ptr[J]
            for w in range(words):
                key[w] = B[J * words + w]
            v = _next_bit(&avail[J, 0], words, 0)
            while v >= 0:
                key[v >> 6] |= (<uint64_t>1) << (v & 63)
                h = ih[J] ^ zob[v]
                found = _lookup(&table[0], mask, B, words, key, h)
                key[v >> 6] &= ~((<uint64_t>1) << (v & 63))
                if found < 0:
                    bad += 1
                fr_v[e] = v
                fr_next[e] = <int32_t>found
                e += 1
                v = _next_bit(&avail[J, 0], words, v + 1)
        for e in range(T):
            found = fr_next[e]
            if found < 0:
                fr_start[e] = 0
                continue
            f = fr_ptr[found]
            fend = fr_ptr[found + 1]
            while f < fend and fr_v[f] <= fr_v[e]:
                f += 1
            fr_start[e] = f
    free(key)
    return bad


def heights(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
            const double[::1] work, double[::1] out):
    """Heaviest path from each node to a sink (node indices must be topological). O(q + m)."""
    cdef int32_t q = work.shape[0], v, e
    cdef double h
    with nogil:
        for v in range(q - 1, -1, -1):
            h = 0.0
            for e in range(succ_ptr[v], succ_ptr[v + 1]):
                if out[succ_idx[e]] > h:
                    h = out[succ_idx[e]]
            out[v] = work[v] + h


# ----------------------------------------------------------------------------- incremental cost
cdef struct Inc:
    const int32_t* pptr      # original predecessor CSR
    const int32_t* pidx
    const int32_t* outdeg    # original out-degree
    const double* comm
    const int32_t* mptr      # members of each quotient node (original ids)
    const int32_t* midx
    const int32_t* qof       # quotient node of each original node
    unsigned char* state     # 1 while the original node is in S
    int32_t* outc            # for x in S: successors of x outside S
    int32_t* rc              # for u not in S: successors of u inside S
    const uint64_t* ibits    # member bitset of I (training graphs only)
    bint training


cdef inline bint _in_i(Inc* c, int32_t u) noexcept nogil:
    cdef int32_t t = c.qof[u]
    return (c.ibits[t >> 6] >> (t & 63)) & 1


cdef inline void _inc_add(Inc* c, int32_t v, double* recv, double* send,
                          double* recv_i) noexcept nogil:
    """Add quotient node v (all members) to S; update received / sent communication.

    ``recv`` is comm(In(S)); ``recv_i`` the part received from producers in I, which
    never join S, so it only grows along the DFS (the pruning bound). Inference
    graphs: every predecessor of S outside S is in I (``recv_i == recv``). Training
    graphs (DESIGN.md section 1b): a producer outside J may feed S (an edge into a
    backward node) and may join S later, which ends its receive term; a member of v
    may already feed S (``rc`` counts its successors in S), which sets its sent
    term at once. O(sum of member in-degrees).
    """
    cdef int32_t a = c.mptr[v], b = c.mptr[v + 1], i, x, u, e
    cdef double r = recv[0], s = send[0], ri = recv_i[0]
    for i in range(a, b):
        x = c.midx[i]
        c.state[x] = 1
    for i in range(a, b):
        x = c.midx[i]
        if c.rc[x] > 0:              # training only: S received x, now holds it
            r -= c.comm[x]
        c.outc[x] = c.outdeg[x] - c.rc[x]
    for i in range(a, b):
        x = c.midx[i]
        for e in range(c.pptr[x], c.pptr[x + 1]):
            u = c.pidx[e]
            if c.state[u]:
                c.outc[u] -= 1
                if c.outc[u] == 0 and c.qof[u] != v:
                    s -= c.comm[u]
            else:
                c.rc[u] += 1
                if c.rc[u] == 1:
                    r += c.comm[u]
                    if c.training and _in_i(c, u):
                        ri += c.comm[u]
    for i in range(a, b):
        x = c.midx[i]
        if c.outc[x] > 0:
            s += c.comm[x]
    recv[0] = r
    send[0] = s
    recv_i[0] = ri if c.training else r


cdef inline void _inc_undo(Inc* c, int32_t v) noexcept nogil:
    """Reverse ``_inc_add(v)`` on the counters (costs are restored from the DFS stack;
    ``rc`` of v's members was frozen while they were in S)."""
    cdef int32_t a = c.mptr[v], b = c.mptr[v + 1], i, x, u, e
    for i in range(a, b):
        x = c.midx[i]
        for e in range(c.pptr[x], c.pptr[x + 1]):
            u = c.pidx[e]
            if c.state[u]:
                c.outc[u] += 1
            else:
                c.rc[u] -= 1
    for i in range(a, b):
        c.state[c.midx[i]] = 0


cdef enum:
    EMPTY = -2           # parent marker: stage b of this ideal is empty


cdef class IdealKernel:
    """Incremental stage costs over the original graph, the chain DP and the ideal DP.

    Holds raw pointers into arrays it keeps alive. ``run`` processes ideals in
    size order in chunks so Python can check the time budget between chunks.

    Memory: stage b (1-based, of k) holds ``qmem + mult_b * qact`` with
    ``mult_b = k - b`` under 1F1B (``qmem`` already counts one micro-batch of
    activations) and 0 otherwise; DESIGN.md section 1b.
    """
    cdef Inc inc
    cdef list _keep
    cdef int32_t q, k, words
    cdef double cap_hard, cap_prune, slack, big
    cdef bint onef, all_b, sum_mode
    cdef const double* qwork
    cdef const double* qmem
    cdef const double* qact
    cdef uint64_t* cbits
    cdef const uint64_t* bits
    # DP state
    cdef int64_t N
    cdef const int64_t* fr_ptr
    cdef const int32_t* fr_v
    cdef const int32_t* fr_next
    cdef const int64_t* fr_start
    cdef const double* rem_work
    cdef const double* rem_mem
    cdef double* D
    cdef int32_t* par
    cdef int32_t* st_J
    cdef int32_t* st_v
    cdef int64_t* st_pos
    cdef double* st_d        # per depth: work, mem, act, recv, send, recv from I
    cdef int32_t* act_b
    cdef double* act_val
    cdef double* thr_w
    cdef double* thr_m
    cdef double* act_mult
    cdef public double ub
    cdef public int64_t pairs, expanded, examined

    def __init__(self, pred_ptr, pred_idx, outdeg, comm, mptr, midx, qof, qwork, qmem, qact,
                 int k, double cap_hard, double cap_prune, double slack,
                 bint training=False, bint one_f_one_b=False):
        import numpy as np
        n = len(outdeg)
        self._keep = [np.ascontiguousarray(a) for a in
                      (pred_ptr, pred_idx, outdeg, comm, mptr, midx, qof, qwork, qmem, qact)]
        # never hand out pointers into empty arrays
        self._keep = [a if a.size else np.zeros(1, dtype=a.dtype) for a in self._keep]
        self.q = len(qwork)
        self.k = k
        self.words = max((self.q + 63) >> 6, 1)
        self._keep += [np.zeros(n, dtype=np.uint8), np.zeros(n, dtype=np.int32),
                       np.zeros(n, dtype=np.int32), np.zeros(self.words, dtype=np.uint64),
                       np.zeros(k + 1, dtype=np.int32), np.zeros(4 * (k + 1))]
        self._attach(training)
        self.cap_hard = cap_hard
        self.cap_prune = cap_prune
        self.slack = slack
        self.onef = one_f_one_b
        # 1F1B makes a stage's memory depend on its position, so equal DP values at
        # different stage counts are no longer interchangeable (see _collect)
        self.all_b = one_f_one_b and cap_hard < INF and bool(np.any(self._keep[9] > 0))
        self.ub = INF
        self.big = INF
        self.sum_mode = False
        self.pairs = 0
        self.expanded = 0
        self.examined = 0
        self.N = 0

    def _attach(self, bint training):
        cdef const int32_t[::1] a_pptr = self._keep[0]
        cdef const int32_t[::1] a_pidx = self._keep[1]
        cdef const int32_t[::1] a_outdeg = self._keep[2]
        cdef const double[::1] a_comm = self._keep[3]
        cdef const int32_t[::1] a_mptr = self._keep[4]
        cdef const int32_t[::1] a_midx = self._keep[5]
        cdef const int32_t[::1] a_qof = self._keep[6]
        cdef const double[::1] a_qwork = self._keep[7]
        cdef const double[::1] a_qmem = self._keep[8]
        cdef const double[::1] a_qact = self._keep[9]
        cdef unsigned char[::1] a_state = self._keep[10]
        cdef int32_t[::1] a_outc = self._keep[11]
        cdef int32_t[::1] a_rc = self._keep[12]
        cdef uint64_t[::1] a_cbits = self._keep[13]
        cdef int32_t[::1] a_ai = self._keep[14]
        cdef double[::1] a_ad = self._keep[15]
        self.inc.pptr = &a_pptr[0]
        self.inc.pidx = &a_pidx[0]
        self.inc.outdeg = &a_outdeg[0]
        self.inc.comm = &a_comm[0]
        self.inc.mptr = &a_mptr[0]
        self.inc.midx = &a_midx[0]
        self.inc.qof = &a_qof[0]
        self.inc.state = &a_state[0]
        self.inc.outc = &a_outc[0]
        self.inc.rc = &a_rc[0]
        self.inc.training = training
        self.cbits = &a_cbits[0]
        self.inc.ibits = self.cbits
        self.qwork = &a_qwork[0]
        self.qmem = &a_qmem[0]
        self.qact = &a_qact[0]
        self.act_b = &a_ai[0]
        self.act_val = &a_ad[0]
        self.thr_w = &a_ad[self.k + 1]
        self.thr_m = &a_ad[2 * (self.k + 1)]
        self.act_mult = &a_ad[3 * (self.k + 1)]

    cdef inline int32_t _collect(self, const double* col, int64_t stride, double ubt,
                          double rem_w, double rem_m) noexcept nogil:
        """Stage counts b worth extending from an ideal with D[b-1] = col[(b-1) * stride]:
        values <= UB whose remainder (work ``rem_w``, mem ``rem_m``) fits the k - b + 1
        stages left. D[.] is non-increasing in b (empty stages), and with
        position-independent memory only its strict breakpoints matter: a stage after
        an equal D[b-2] reaches the same D[b][J] through the empty-stage step. Under
        1F1B with a binding cap a later position holds less memory, so every b is kept.
        Fills act_b / act_val / thr_w / thr_m / act_mult; returns their number."""
        cdef int32_t k = self.k, b, nact = 0
        cdef double x, prev = INF
        for b in range(1, k + 1):
            x = col[(b - 1) * stride]
            if (x < prev or (self.all_b and x < INF)) and x <= ubt:
                if rem_w <= (k - b + 1) * ubt and rem_m <= (k - b + 1) * self.cap_prune:
                    self.act_b[nact] = b
                    self.act_val[nact] = x
                    self.act_mult[nact] = (k - b) if self.onef else 0.0
                    if b < k:
                        self.thr_w[nact] = (k - b) * ubt
                        self.thr_m[nact] = (k - b) * self.cap_prune
                    else:
                        self.thr_w[nact] = -1.0   # last stage must end at V
                        self.thr_m[nact] = -1.0
                    nact += 1
            if x < prev:
                prev = x
        return nact

    cdef inline double _cut(self) noexcept nogil:
        return self.ub + self.slack * (self.ub if self.ub > 1.0 else 1.0)

    # ------------------------------------------------------------------ chain DP
    def chain(self, const int32_t[::1] order, int32_t[::1] stage_out, double deadline=INF):
        """Optimal k-slicing of one topological ``order`` of the quotient.

        E[b][j] = min(E[b-1][j], min_{i<j} max(E[b-1][i], f(order[i:j]))) with f
        computed incrementally while j grows from i: O(q^2 * deg + q^2 * k) time
        in the worst case, O(q * k) memory. The ideal DP's exact cuts apply with
        UB = ``self.ub`` (the best bottleneck already known): segments over the
        memory cap or whose work + communication received from the prefix (both
        grow with j) exceed UB are cut; only the stage counts of ``_collect`` are
        extended. Writes the stage of every quotient node and returns the
        bottleneck (inf if no slicing meets the cap or beats ``self.ub``, or when the
        monotonic clock passes ``deadline``, checked every 64 start positions).
        """
        cdef int32_t q = self.q, k = self.k, i, j, b, w
        cdef double* E = <double*>malloc((k + 1) * (q + 1) * sizeof(double))
        cdef int32_t* P = <int32_t*>malloc((k + 1) * (q + 1) * sizeof(int32_t))
        cdef double* pw = <double*>malloc((q + 1) * sizeof(double))
        cdef double* pm = <double*>malloc((q + 1) * sizeof(double))
        cdef double best
        with nogil:
            pw[0] = 0.0
            pm[0] = 0.0
            for j in range(q):
                pw[j + 1] = pw[j] + self.qwork[order[j]]
                pm[j + 1] = pm[j] + self.qmem[order[j]]
            for b in range((k + 1) * (q + 1)):
                E[b] = INF
                P[b] = -1
            for w in range(self.words):
                self.cbits[w] = 0
            self.inc.ibits = self.cbits
            E[0] = 0.0
            for i in range(q + 1):
                if (i & 63) == 0 and now() > deadline:
                    E[k * (q + 1) + q] = INF
                    break
                if i > 0:
                    self.cbits[order[i - 1] >> 6] |= (<uint64_t>1) << (order[i - 1] & 63)
                self._chain_from(i, &order[0], E, P, pw, pm)
            best = E[k * (q + 1) + q]
            if best < INF:
                j = q
                b = k
                while b > 0:
                    i = P[b * (q + 1) + j]
                    if i == EMPTY:
                        b -= 1
                        continue
                    while j > i:
                        j -= 1
                        stage_out[order[j]] = b - 1
                    b -= 1
        free(E); free(P); free(pw); free(pm)
        return best

    cdef void _chain_from(self, int32_t i, const int32_t* order, double* E, int32_t* P,
                          const double* pw, const double* pm) noexcept nogil:
        """Finalise column i of the chain DP (empty stages), then relax every segment
        order[i:j] from it (the incremental sweep)."""
        cdef int32_t q = self.q, k = self.k, j, b, v, t, nact
        cdef double w = 0.0, m = 0.0, a = 0.0, r = 0.0, s = 0.0, ri = 0.0, f, val
        cdef double cut = self._cut()
        for b in range(1, k + 1):
            if E[(b - 1) * (q + 1) + i] < E[b * (q + 1) + i]:
                E[b * (q + 1) + i] = E[(b - 1) * (q + 1) + i]
                P[b * (q + 1) + i] = EMPTY
        if i == q:
            return
        nact = self._collect(&E[i], q + 1, cut, pw[q] - pw[i], pm[q] - pm[i])
        if nact == 0:
            return
        j = i
        while j < q:
            v = order[j]
            m += self.qmem[v]
            a += self.qact[v]
            if m + self.act_mult[nact - 1] * a > self.cap_hard:
                break                   # mem(S) only grows; the last b holds least
            w += self.qwork[v]
            if w + ri > cut:
                break
            _inc_add(&self.inc, v, &r, &s, &ri)
            j += 1
            if w + ri > cut:
                break
            f = w + r + s
            if f > cut:
                continue
            for t in range(nact):
                b = self.act_b[t]
                if m + self.act_mult[t] * a > self.cap_hard:
                    continue
                if b < k:
                    if pw[q] - pw[j] > self.thr_w[t] or pm[q] - pm[j] > self.thr_m[t]:
                        continue
                elif j != q:
                    continue
                val = self.act_val[t]
                if f > val:
                    val = f
                if val < E[b * (q + 1) + j]:
                    E[b * (q + 1) + j] = val
                    P[b * (q + 1) + j] = i
        while j > i:
            j -= 1
            _inc_undo(&self.inc, order[j])

    # ------------------------------------------------------------------ ideal DP
    def setup_dp(self, const int64_t[::1] fr_ptr, const int32_t[::1] fr_v,
                 const int32_t[::1] fr_next, const int64_t[::1] fr_start,
                 const double[::1] rem_work, const double[::1] rem_mem,
                 double[::1] D, int32_t[::1] par, double ub, const uint64_t[:, ::1] bits):
        """Attach the ideal lattice, the ideals' member bitsets (N x words) and the DP
        tables (D: N*(k+1), par: N*k)."""
        import numpy as np
        if bits.shape[1] != self.words or bits.shape[0] != rem_work.shape[0]:
            raise ValueError("bits: expected one bitset of the quotient per ideal")
        self._keep += [fr_ptr, fr_v, fr_next, fr_start, rem_work, rem_mem, D, par, bits]
        self.N = rem_work.shape[0]
        self.fr_ptr = &fr_ptr[0]
        self.fr_v = &fr_v[0]
        self.fr_next = &fr_next[0]
        self.fr_start = &fr_start[0]
        self.rem_work = &rem_work[0]
        self.rem_mem = &rem_mem[0]
        self.D = &D[0]
        self.par = &par[0]
        self.bits = &bits[0, 0]
        st_i = np.zeros(2 * (self.q + 2), dtype=np.int32)
        st_p = np.zeros(self.q + 2, dtype=np.int64)
        st_d = np.zeros(6 * (self.q + 2), dtype=np.float64)
        self._keep += [st_i, st_p, st_d]
        cdef int32_t[::1] a_i = st_i
        cdef int64_t[::1] a_p = st_p
        cdef double[::1] a_d = st_d
        self.st_J = &a_i[0]
        self.st_v = &a_i[self.q + 2]
        self.st_pos = &a_p[0]
        self.st_d = &a_d[0]
        self.ub = ub

    def run(self, int64_t start, int64_t pair_quota):
        """Process ideals start, start+1, ... until ``pair_quota`` more pairs were
        relaxed (or all are done); return the next ideal to process."""
        cdef int64_t i = start, target = self.pairs + pair_quota
        with nogil:
            while i < self.N and self.pairs < target:
                self._process(i)
                i += 1
        return i

    def run_sum(self, int64_t start, int64_t pair_quota, double big=INF):
        """The min-sum pass, like :meth:`run` (same chunks). ``D`` (stride k + 1) starts at
        ``D[0][0] = 0`` and inf elsewhere; afterwards ``min_{b' <= b} D[J][b']`` is the
        least total stage cost of a chain of stages from the empty ideal to J with at most
        b stages of cost > ``big`` (b <= k) and any number of cheaper ones, each stage
        with f <= ``ub`` + slack and memory <= ``cap_hard`` (the plain schedule's memory).
        A column b is extended only when no smaller b reaches I as cheaply (so a single
        D[J][b] may exceed the least cost with exactly b; the prefix minima are exact).
        The same superset DFS and cuts as the min-max DP. Returns the next ideal."""
        cdef int64_t i = start, target = self.pairs + pair_quota
        cdef int32_t k1 = self.k + 1, b, nact
        cdef double best
        self.sum_mode = True
        self.big = big
        try:
            with nogil:
                while i < self.N and self.pairs < target:
                    if i != self.N - 1:
                        nact = 0
                        best = INF
                        for b in range(k1):
                            if self.D[i * k1 + b] < best:
                                best = self.D[i * k1 + b]
                                self.act_b[nact] = b
                                self.act_val[nact] = best
                                self.act_mult[nact] = 0.0
                                nact += 1
                        if nact > 0:
                            self.expanded += 1
                            self.inc.ibits = self.bits + i * self.words
                            self._dfs(i, nact)
                    i += 1
        finally:
            self.sum_mode = False
        return i

    cdef void _process(self, int64_t I) noexcept nogil:
        cdef int32_t k = self.k, k1 = self.k + 1, b, nact
        cdef double* Drow = self.D + I * k1
        # 1) empty stages: D[b][I] <= D[b-1][I]; D[.][I] is final from here on
        for b in range(1, k + 1):
            if Drow[b - 1] < Drow[b]:
                Drow[b] = Drow[b - 1]
                self.par[I * k + b - 1] = EMPTY
        if I == self.N - 1:
            if Drow[k] < self.ub:
                self.ub = Drow[k]
            return
        # 2) stage counts worth extending
        nact = self._collect(Drow, 1, self._cut(), self.rem_work[I], self.rem_mem[I])
        if nact == 0:
            return
        self.expanded += 1
        self.inc.ibits = self.bits + I * self.words
        self._dfs(I, nact)

    cdef inline void _relax(self, int64_t I, int64_t Jc, int32_t nact, double f, double m,
                     double a) noexcept nogil:
        """D[b][Jc] <- max(D[b-1][I], f) for every active b whose memory and remainder fit."""
        cdef int32_t k = self.k, t, b
        cdef double val
        cdef double* D = self.D
        if self.sum_mode:
            if m > self.cap_hard:
                return
            for t in range(nact):
                b = self.act_b[t] + (1 if f > self.big else 0)
                if b > k:
                    continue
                val = self.act_val[t] + f
                if val < D[Jc * (k + 1) + b]:
                    D[Jc * (k + 1) + b] = val
            return
        for t in range(nact):
            val = self.act_val[t]
            if f > val:
                val = f
            b = self.act_b[t]
            if val < D[Jc * (k + 1) + b]:
                if m + self.act_mult[t] * a > self.cap_hard:
                    continue
                if self.thr_w[t] < 0.0:
                    if Jc != self.N - 1:
                        continue
                elif self.rem_work[Jc] > self.thr_w[t] or self.rem_mem[Jc] > self.thr_m[t]:
                    continue
                D[Jc * (k + 1) + b] = val
                self.par[Jc * k + b - 1] = <int32_t>I
                if Jc == self.N - 1 and val < self.ub:
                    self.ub = val

    cdef void _dfs(self, int64_t I, int32_t nact) noexcept nogil:
        """DFS over the supersets J of I in canonical order (added indices increase),
        keeping f(J \\ I) incrementally; cuts on memory and on work + communication
        received from I, which only grow below a node."""
        cdef int32_t d = 0, v
        cdef double w, m, a, r, s, ri, f, ubcut
        cdef double mult_min = self.act_mult[nact - 1]
        cdef double* st = self.st_d       # 6 doubles per depth
        cdef int64_t e, end, Jc
        self.st_J[0] = <int32_t>I
        self.st_pos[0] = self.fr_ptr[I]
        for e in range(6):
            st[e] = 0.0
        while d >= 0:
            e = self.st_pos[d]
            end = self.fr_ptr[self.st_J[d] + 1]
            if e >= end:
                if d > 0:
                    _inc_undo(&self.inc, self.st_v[d])
                d -= 1
                continue
            self.st_pos[d] = e + 1
            self.examined += 1
            v = self.fr_v[e]
            m = st[6 * d + 1] + self.qmem[v]
            a = st[6 * d + 2] + self.qact[v]
            if m + mult_min * a > self.cap_hard:    # mem(S) only grows below this child
                continue
            w = st[6 * d] + self.qwork[v]
            ubcut = self._cut()
            if w + st[6 * d + 5] > ubcut:           # work + comm received from I only grow
                continue
            r = st[6 * d + 3]
            s = st[6 * d + 4]
            ri = st[6 * d + 5]
            _inc_add(&self.inc, v, &r, &s, &ri)
            if w + ri > ubcut:
                _inc_undo(&self.inc, v)
                continue
            f = w + r + s
            Jc = self.fr_next[e]
            self.pairs += 1
            if f <= ubcut:
                self._relax(I, Jc, nact, f, m, a)
            d += 1
            self.st_J[d] = <int32_t>Jc
            self.st_v[d] = v
            self.st_pos[d] = self.fr_start[e]
            st[6 * d] = w
            st[6 * d + 1] = m
            st[6 * d + 2] = a
            st[6 * d + 3] = r
            st[6 * d + 4] = s
            st[6 * d + 5] = ri
