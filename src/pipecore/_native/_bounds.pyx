"""Local min-cut lower bounds (DESIGN.md section 3b), see ``bounds/cuts.py`` for the proof.

For a class c, ``local_cut(c)`` is the minimum, over sets S of classes of a ball B
around c with c in S, of ``work(S) + sum of w_e over hyperedges e with e & B split by
S``. It is one s-t minimum cut: c is the source, every other ball class x has an arc
x -> sink of capacity work[x] (x in S pays its work), and each hyperedge e (restricted
to B, kept when it has >= 2 ball members) gets the two-node gadget x -> a_e (inf),
a_e -> b_e (w_e), b_e -> x (inf) for x in e & B, which is cut exactly when e & B
is split. Max flow by Dinic (BFS levels + iterative blocking DFS); per class
O(V^2 E) worst case on the ball network, tiny in practice (|B| <= max_ball).
"""
from libc.stdint cimport int8_t, int32_t, int64_t
from libc.stdlib cimport malloc, realloc, free
from libc.math cimport INFINITY
from cpython.exc cimport PyErr_CheckSignals

import numpy as np

from pipecore._native._clock cimport now


cdef struct Net:
    int32_t nv, ne, cap_v, cap_e
    int32_t *head      # per vertex: first arc
    int32_t *nxt       # per arc: next arc of its tail
    int32_t *to        # per arc: head vertex
    double *res        # per arc: residual capacity
    int32_t *level
    int32_t *it        # current arc (DFS)
    int32_t *queue
    int32_t *stack     # DFS path of arcs


cdef int _grow_i32(int32_t **a, Py_ssize_t size) noexcept nogil:
    cdef void *p = realloc(a[0], size * sizeof(int32_t))
    if p == NULL:
        return -1
    a[0] = <int32_t *> p
    return 0


cdef int net_reserve(Net *g, int32_t nv, int32_t ne) noexcept nogil:
    """Grow the arrays to hold nv vertices and ne arcs (0 on success, -1 on OOM)."""
    cdef void *p
    if nv > g.cap_v:
        nv = max(nv, 2 * g.cap_v)
        if (_grow_i32(&g.head, nv) or _grow_i32(&g.level, nv) or _grow_i32(&g.it, nv)
                or _grow_i32(&g.queue, nv) or _grow_i32(&g.stack, nv)):
            return -1
        g.cap_v = nv
    if ne > g.cap_e:
        ne = max(ne, 2 * g.cap_e)
        if _grow_i32(&g.nxt, ne) or _grow_i32(&g.to, ne):
            return -1
        p = realloc(g.res, ne * sizeof(double))
        if p == NULL:
            return -1
        g.res = <double *> p
        g.cap_e = ne
    return 0


cdef void net_free(Net *g) noexcept nogil:
    free(g.head); free(g.nxt); free(g.to); free(g.res)
    free(g.level); free(g.it); free(g.queue); free(g.stack)


cdef inline void add_arc(Net *g, int32_t u, int32_t v, double c) noexcept nogil:
    """Arc u -> v with capacity c and its reverse (capacity 0); arcs 2i, 2i+1 pair up."""
    g.to[g.ne] = v; g.res[g.ne] = c; g.nxt[g.ne] = g.head[u]; g.head[u] = g.ne; g.ne += 1
    g.to[g.ne] = u; g.res[g.ne] = 0.0; g.nxt[g.ne] = g.head[v]; g.head[v] = g.ne; g.ne += 1


cdef bint bfs_levels(Net *g, int32_t s, int32_t t) noexcept nogil:
    cdef int32_t i, u, a, qh = 0, qt = 0
    for i in range(g.nv):
        g.level[i] = -1
    g.level[s] = 0
    g.queue[qt] = s; qt += 1
    while qh < qt:
        u = g.queue[qh]; qh += 1
        a = g.head[u]
        while a >= 0:
            if g.res[a] > 0.0 and g.level[g.to[a]] < 0:
                g.level[g.to[a]] = g.level[u] + 1
                g.queue[qt] = g.to[a]; qt += 1
            a = g.nxt[a]
    return g.level[t] >= 0


cdef double blocking_flow(Net *g, int32_t s, int32_t t) noexcept nogil:
    """Augment along level-graph paths (iterative DFS with current-arc pointers)."""
    cdef int32_t i, u, a, depth = 0
    cdef double total = 0.0, push
    for i in range(g.nv):
        g.it[i] = g.head[i]
    u = s
    while True:
        if u == t:
            push = INFINITY
            for i in range(depth):
                if g.res[g.stack[i]] < push:
                    push = g.res[g.stack[i]]
            for i in range(depth):
                g.res[g.stack[i]] -= push
                g.res[g.stack[i] ^ 1] += push
            total += push
            depth = 0
            u = s
            continue
        a = g.it[u]
        while a >= 0 and not (g.res[a] > 0.0 and g.level[g.to[a]] == g.level[u] + 1):
            a = g.nxt[a]
        g.it[u] = a
        if a >= 0:
            g.stack[depth] = a; depth += 1
            u = g.to[a]
        else:
            if u == s:
                break
            g.level[u] = -1            # dead end: never enter u again in this phase
            depth -= 1
            u = g.to[g.stack[depth] ^ 1]
            g.it[u] = g.nxt[g.it[u]]
    return total


cdef double max_flow(Net *g, int32_t s, int32_t t) noexcept nogil:
    cdef double total = 0.0
    while bfs_levels(g, s, t):
        total += blocking_flow(g, s, t)
    return total


cdef int32_t grow_ball(int32_t c, int32_t max_ball, const int64_t[::1] nptr,
                       const int32_t[::1] nhe, const int64_t[::1] hptr,
                       const int32_t[::1] hnodes, int32_t[::1] local,
                       int32_t[::1] ball) noexcept nogil:
    """BFS over hyperedges from c; ``local[x]`` = index in the ball (else -1). Returns |B|."""
    cdef int32_t b = 1, head = 0, x, e
    cdef int64_t i, j
    ball[0] = c
    local[c] = 0
    while head < b and b < max_ball:
        x = ball[head]; head += 1
        for i in range(nptr[x], nptr[x + 1]):
            e = nhe[i]
            for j in range(hptr[e], hptr[e + 1]):
                if local[hnodes[j]] < 0 and b < max_ball:
                    local[hnodes[j]] = b
                    ball[b] = hnodes[j]; b += 1
    return b


cdef inline int32_t _members_in_ball(int32_t e, const int64_t[::1] hptr,
                                     const int32_t[::1] hnodes,
                                     const int32_t[::1] local) noexcept nogil:
    """Members of hyperedge e inside the ball (``local[v] >= 0``)."""
    cdef int32_t cnt = 0
    cdef int64_t j
    for j in range(hptr[e], hptr[e + 1]):
        cnt += local[hnodes[j]] >= 0
    return cnt


cdef double ball_cut(Net *g, int32_t b, const int32_t[::1] ball, int32_t[::1] local,
                     int32_t[::1] hmark, int32_t stamp, const int64_t[::1] nptr,
                     const int32_t[::1] nhe, const int64_t[::1] hptr,
                     const int32_t[::1] hnodes, const double[::1] hw,
                     const double[::1] work, double big) noexcept nogil:
    """Build the ball network (see module docstring) and return its min cut, or -1 on OOM."""
    cdef int32_t i, x, e, cnt, sink = b, ae
    cdef int64_t p, j
    cdef int32_t nv = b + 1, ne = 2 * b
    for i in range(b):          # size the network: hyperedges with >= 2 ball members
        x = ball[i]
        for p in range(nptr[x], nptr[x + 1]):
            e = nhe[p]
            if hmark[e] == stamp:
                continue
            hmark[e] = stamp
            cnt = _members_in_ball(e, hptr, hnodes, local)
            if cnt >= 2:
                nv += 2
                ne += 2 + 4 * cnt
    if net_reserve(g, nv, ne) < 0:
        return -1.0
    g.nv = nv
    g.ne = 0
    for i in range(nv):
        g.head[i] = -1
    for i in range(1, b):
        add_arc(g, i, sink, work[ball[i]])
    ae = b + 1
    stamp += 1
    for i in range(b):
        x = ball[i]
        for p in range(nptr[x], nptr[x + 1]):
            e = nhe[p]
            if hmark[e] == stamp:
                continue
            hmark[e] = stamp
            cnt = _members_in_ball(e, hptr, hnodes, local)
            if cnt < 2:
                continue
            add_arc(g, ae, ae + 1, hw[e])
            for j in range(hptr[e], hptr[e + 1]):
                if local[hnodes[j]] >= 0:
                    add_arc(g, local[hnodes[j]], ae, big)
                    add_arc(g, ae + 1, local[hnodes[j]], big)
            ae += 2
    return max_flow(g, 0, sink)


def local_cut_bounds(const int64_t[::1] hptr, const int32_t[::1] hnodes,
                     const double[::1] hw, const int64_t[::1] nptr, const int32_t[::1] nhe,
                     const double[::1] work, const int32_t[::1] order,
                     const double[::1] upper, double floor, int32_t max_ball,
                     double deadline):
    """Local cut bound of the classes in ``order`` (sorted by ``upper`` descending).

    Stops when ``upper[c]`` (an upper bound on class c's value) is at most the best
    value found or ``floor``, or at ``deadline`` (monotonic seconds; <= 0: none).
    Returns ``(best, argbest, evaluated)``; best = -1 when nothing beat ``floor``.
    """
    cdef Py_ssize_t q = work.shape[0], m = hw.shape[0]
    cdef int32_t[::1] local = np.full(q, -1, dtype=np.int32)
    cdef int32_t[::1] ball = np.empty(max(max_ball, 1), dtype=np.int32)
    cdef int32_t[::1] hmark = np.zeros(max(m, 1), dtype=np.int32)
    cdef Net g
    cdef int32_t c, b, i, stamp = 0, arg = -1
    cdef Py_ssize_t idx, done = 0
    cdef double best = floor, val, big = 1.0
    cdef bint oom = False
    for i in range(m):
        big += hw[i]
    for i in range(q):
        big += work[i]
    g.nv = g.ne = g.cap_v = g.cap_e = 0
    g.head = g.nxt = g.to = g.level = g.it = g.queue = g.stack = NULL
    g.res = NULL
    with nogil:
        for idx in range(order.shape[0]):
            c = order[idx]
            if upper[c] <= best or (deadline > 0 and (idx & 15) == 0 and now() > deadline):
                break
            b = grow_ball(c, max_ball, nptr, nhe, hptr, hnodes, local, ball)
            stamp += 2
            val = ball_cut(&g, b, ball, local, hmark, stamp, nptr, nhe, hptr, hnodes, hw,
                           work, big)
            for i in range(b):
                local[ball[i]] = -1
            if val < 0:
                oom = True
                break
            done += 1
            val += work[c]
            if val > best:
                best, arg = val, c
        net_free(&g)
    if oom:
        raise MemoryError("local cut bound: out of memory for the flow network")
    return (best if arg >= 0 else -1.0), arg, done



# ---------------------------------------------------------------------------------
# Station (boundary) bound kernels, see ``bounds/stations.py`` for the proof.

def reach_works(const int64_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                const int32_t[::1] topo, const double[::1] work, double deadline=INFINITY,
                Py_ssize_t block_words=64):
    """Work of the descendants of each node of a DAG, the node itself included (exact, by
    uint64 bitset reachability); pass the predecessor CSR and the reversed order for the
    ancestors. None when ``deadline`` (monotonic seconds) passes first; Ctrl-C is seen
    between blocks (KeyboardInterrupt).

    The targets are taken in blocks of ``64 * block_words`` nodes, so memory is
    O(q * block_words) words whatever q is; per block one pass over the DAG ORs the
    successors' rows, and each row's weighted popcount is read from per-byte tables of
    partial work sums (8 lookups per nonzero word). O((q + m) * q / 64) word operations
    in all plus O(q * 256 / 8) for the tables.
    """
    cdef Py_ssize_t q = work.shape[0], nb = max(min(block_words, (q + 63) // 64), 1)
    cdef Py_ssize_t b0, i, w, j, t, v, u, pos, byte
    cdef int64_t p
    cdef unsigned long long x
    cdef double acc
    cdef unsigned long long[:, ::1] bits = np.zeros((q, nb), dtype=np.uint64)
    cdef double[:, ::1] table = np.zeros((8 * nb, 256), dtype=np.float64)
    cdef double[::1] out = np.zeros(q)
    b0 = 0
    with nogil:
        while b0 < q:
            if now() > deadline:
                with gil:
                    return None
            with gil:                           # Ctrl-C between blocks (<= ~0.2 s each)
                PyErr_CheckSignals()
            for pos in range(8 * nb):           # table[pos][byte]: work of the byte's bits
                for byte in range(1, 256):
                    t = b0 + 8 * pos + __builtin_ctzll(byte)
                    table[pos, byte] = table[pos, byte & (byte - 1)] + (
                        work[t] if t < q else 0.0)
            for i in range(q - 1, -1, -1):      # reverse topological order
                v = topo[i]
                for w in range(nb):
                    bits[v, w] = 0
                if b0 <= v < b0 + 64 * nb:
                    bits[v, (v - b0) >> 6] = (<unsigned long long> 1) << ((v - b0) & 63)
                for p in range(succ_ptr[v], succ_ptr[v + 1]):
                    u = succ_idx[p]
                    for w in range(nb):
                        bits[v, w] |= bits[u, w]
                acc = 0.0
                for w in range(nb):
                    x = bits[v, w]
                    if x:
                        for j in range(8):
                            acc += table[8 * w + j, (x >> (8 * j)) & 255]
                out[v] += acc
            b0 += 64 * nb
    return np.asarray(out)


cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil


cdef double _net_open(Net *g, const double[::1] work, const double[::1] hw, int64_t nv,
                      int64_t ne, str what) except -1.0:
    """Empty network sized for nv vertices and ne arcs; returns an "infinite" capacity
    (4x every finite weight together). MemoryError when it cannot be allocated."""
    cdef double big = 1.0
    cdef Py_ssize_t i
    for i in range(hw.shape[0]):
        big += hw[i]
    for i in range(work.shape[0]):
        big += work[i]
    g.nv = g.ne = g.cap_v = g.cap_e = 0
    g.head = g.nxt = g.to = g.level = g.it = g.queue = g.stack = NULL
    g.res = NULL
    if ne > 2_000_000_000 or nv > 2_000_000_000 or \
            net_reserve(g, <int32_t> nv, <int32_t> ne) < 0:
        net_free(g)
        raise MemoryError(f"{what}: out of memory for the flow network")
    return 4.0 * big


def boundary_cut(const int64_t[::1] pred_ptr, const int32_t[::1] pred_idx,
                 const int64_t[::1] hptr, const int32_t[::1] hnodes,
                 const double[::1] hw, const int32_t[::1] hsrc, const double[::1] work,
                 const int8_t[::1] force, double lam):
    """``min over ideals I`` (forced classes respected) of
    ``outcut(I) + lam * work(I) + (1 - lam) * work(V - I)``, one s-t min cut.

    S-side = I. Arc c -> p (inf) for each precedence p -> c keeps I an ideal; per
    hyperedge e with producer class x: x -> a_e (w_e), a_e -> y (inf) for the other
    members y, so w_e is cut exactly when x is in I and some member is not; c -> t
    (lam work) and s -> c ((1 - lam) work); ``force[c]`` = 1 adds s -> c (inf), 2 adds
    c -> t (inf). Dinic, O(V^2 E) worst case. Returns inf when a forced-in class has a
    forced-out ancestor (no such ideal).
    """
    cdef Py_ssize_t q = work.shape[0], m = hw.shape[0], i
    cdef int64_t p
    cdef int32_t s = <int32_t> (q + m), t = <int32_t> (q + m + 1)
    cdef Net g
    cdef double total
    cdef double big = _net_open(&g, work, hw, q + m + 2,
                                2 * (pred_ptr[q] + hptr[m] + 3 * q + m) + 4, "boundary cut")
    with nogil:
        g.nv = <int32_t> (q + m + 2)
        for i in range(g.nv):
            g.head[i] = -1
        for i in range(q):
            for p in range(pred_ptr[i], pred_ptr[i + 1]):
                add_arc(&g, <int32_t> i, pred_idx[p], big)
            if lam * work[i] > 0.0:
                add_arc(&g, <int32_t> i, t, lam * work[i])
            if (1.0 - lam) * work[i] > 0.0:
                add_arc(&g, s, <int32_t> i, (1.0 - lam) * work[i])
            if force[i] == 1:
                add_arc(&g, s, <int32_t> i, big)
            elif force[i] == 2:
                add_arc(&g, <int32_t> i, t, big)
        for i in range(m):
            add_arc(&g, hsrc[i], <int32_t> (q + i), hw[i])
            for p in range(hptr[i], hptr[i + 1]):
                if hnodes[p] != hsrc[i]:
                    add_arc(&g, <int32_t> (q + i), hnodes[p], big)
        total = max_flow(&g, s, t)
        net_free(&g)
    return INFINITY if total >= big else total


def window_cut(const int64_t[::1] hptr, const int32_t[::1] hnodes, const double[::1] hw,
               const double[::1] work, const int8_t[::1] force):
    """``min f(S)`` over sets S of classes with ``force == 1`` classes in S and
    ``force == 2`` classes out of S (no convexity asked), one s-t min cut: s -> c (inf)
    for forced-in classes, c -> t (work; inf when forced out), and for each hyperedge e
    the gadget x -> a_e (inf), a_e -> b_e (w_e), b_e -> x (inf) over its members x,
    cut exactly when S splits e (0 when nothing is forced in: S = empty; inf when a
    class is forced both ways). Dinic, O(V^2 E) worst case.
    """
    cdef Py_ssize_t q = work.shape[0], m = hw.shape[0], i
    cdef int64_t p
    cdef int32_t s = <int32_t> (q + 2 * m), t = <int32_t> (q + 2 * m + 1)
    cdef Net g
    cdef double total
    cdef double big = _net_open(&g, work, hw, q + 2 * m + 2,
                                2 * (2 * hptr[m] + 2 * q + m) + 4, "window cut")
    with nogil:
        g.nv = <int32_t> (q + 2 * m + 2)
        for i in range(g.nv):
            g.head[i] = -1
        for i in range(q):
            if force[i] == 1:
                add_arc(&g, s, <int32_t> i, big)
            elif force[i] == 2:
                add_arc(&g, <int32_t> i, t, big)
            if force[i] != 2 and work[i] > 0.0:
                add_arc(&g, <int32_t> i, t, work[i])
        for i in range(m):
            add_arc(&g, <int32_t> (q + 2 * i), <int32_t> (q + 2 * i + 1), hw[i])
            for p in range(hptr[i], hptr[i + 1]):
                add_arc(&g, hnodes[p], <int32_t> (q + 2 * i), big)
                add_arc(&g, <int32_t> (q + 2 * i + 1), hnodes[p], big)
        total = max_flow(&g, s, t)
        net_free(&g)
    return INFINITY if total >= big else total
