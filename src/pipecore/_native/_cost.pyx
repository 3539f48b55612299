"""Stage-cost kernel: O(n + m) evaluation and O(deg) move deltas.

Cost of a stage S (DESIGN.md section 1)::

    f(S) = sum_{v in S} work[v] + sum_{u in In(S)} comm[u] + sum_{u in Out(S)} comm[u]

One pass over the successor lists finds, for every producer u, the set of other
stages that read u's tensor; each such stage receives comm[u] once, and u's
stage sends comm[u] once if that set is non-empty. A stamp array of length k
deduplicates stages per producer, so the pass is O(n + m + k) time, O(k) extra
memory, and is correct for any stage vector (valid or not).
"""
from libc.stdint cimport int32_t


cdef void stage_costs_into(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                           const double[::1] work, const double[::1] comm,
                           const int32_t[::1] stage,
                           double[::1] w_out, double[::1] recv_out, double[::1] send_out,
                           int32_t[::1] mark) noexcept nogil:
    """Accumulate per-stage work, received and sent communication (outputs zeroed by caller,
    ``mark`` filled with -1)."""
    cdef Py_ssize_t n = work.shape[0]
    cdef Py_ssize_t u, e
    cdef int32_t s, t
    cdef bint sent
    for u in range(n):
        s = stage[u]
        w_out[s] += work[u]
        sent = False
        for e in range(succ_ptr[u], succ_ptr[u + 1]):
            t = stage[succ_idx[e]]
            if t != s and mark[t] != u:
                mark[t] = <int32_t>u
                recv_out[t] += comm[u]
                sent = True
        if sent:
            send_out[s] += comm[u]


cdef void comm_contribution(int32_t u, double sign,
                            const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                            const double[::1] comm, const int32_t[::1] stage,
                            double[::1] delta, int32_t[::1] mark, int32_t stamp) noexcept nogil:
    """Add ``sign`` times producer u's communication terms to ``delta`` (O(outdeg u))."""
    cdef int32_t s = stage[u], t
    cdef Py_ssize_t e
    cdef bint sent = False
    cdef double c = comm[u]
    if c == 0.0:
        return
    for e in range(succ_ptr[u], succ_ptr[u + 1]):
        t = stage[succ_idx[e]]
        if t != s and mark[t] != stamp:
            mark[t] = stamp
            delta[t] += sign * c
            sent = True
    if sent:
        delta[s] += sign * c


cdef void move_delta_into(int32_t v, int32_t new_stage,
                          const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                          const int32_t[::1] pred_ptr, const int32_t[::1] pred_idx,
                          const double[::1] work, const double[::1] comm,
                          int32_t[::1] stage, double[::1] delta,
                          int32_t[::1] mark, int32_t* stamp) noexcept nogil:
    """Add to ``delta`` the change of every stage cost when v moves to ``new_stage``.

    Only v's own terms and those of its predecessors can change, so this costs
    O(outdeg v + sum of outdeg over pred(v)). ``stage`` is restored on return.
    ``stamp`` is a running counter for ``mark`` (two values used per call).
    """
    cdef int32_t old = stage[v]
    cdef Py_ssize_t e
    cdef int32_t u
    if old == new_stage:
        return
    delta[old] -= work[v]
    delta[new_stage] += work[v]
    # remove old terms of v and its predecessors
    stamp[0] += 1
    comm_contribution(v, -1.0, succ_ptr, succ_idx, comm, stage, delta, mark, stamp[0])
    for e in range(pred_ptr[v], pred_ptr[v + 1]):
        u = pred_idx[e]
        stamp[0] += 1
        comm_contribution(u, -1.0, succ_ptr, succ_idx, comm, stage, delta, mark, stamp[0])
    stage[v] = new_stage
    stamp[0] += 1
    comm_contribution(v, 1.0, succ_ptr, succ_idx, comm, stage, delta, mark, stamp[0])
    for e in range(pred_ptr[v], pred_ptr[v + 1]):
        u = pred_idx[e]
        stamp[0] += 1
        comm_contribution(u, 1.0, succ_ptr, succ_idx, comm, stage, delta, mark, stamp[0])
    stage[v] = old


cdef Py_ssize_t _first_out_of_range(const int32_t[::1] stage, Py_ssize_t k) noexcept nogil:
    """Index of the first stage outside 0..k-1, or -1."""
    cdef Py_ssize_t u
    for u in range(stage.shape[0]):
        if stage[u] < 0 or stage[u] >= k:
            return u
    return -1


cdef int _check(const int32_t[::1] stage, Py_ssize_t n, Py_ssize_t k) except -1:
    cdef Py_ssize_t bad
    if stage.shape[0] != n:
        raise ValueError(f"stage vector has {stage.shape[0]} entries for {n} nodes")
    with nogil:
        bad = _first_out_of_range(stage, k)
    if bad >= 0:
        raise ValueError(f"stage[{bad}] = {stage[bad]} is outside 0..{k - 1}")
    return 0


cdef int _check_around(const int32_t[::1] stage, Py_ssize_t k, int v,
                       const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                       const int32_t[::1] pred_ptr, const int32_t[::1] pred_idx) except -1:
    """Range-check the stages a move of v reads: v, its neighbours and its predecessors'
    successors."""
    cdef Py_ssize_t e, f
    cdef int32_t u
    cdef bint ok = 0 <= stage[v] < k
    with nogil:
        for e in range(succ_ptr[v], succ_ptr[v + 1]):
            ok = ok and 0 <= stage[succ_idx[e]] < k
        for e in range(pred_ptr[v], pred_ptr[v + 1]):
            u = pred_idx[e]
            ok = ok and 0 <= stage[u] < k
            for f in range(succ_ptr[u], succ_ptr[u + 1]):
                ok = ok and 0 <= stage[succ_idx[f]] < k
    if not ok:
        raise ValueError(f"a stage read by the move of node {v} is outside 0..{k - 1}")
    return 0


def stage_breakdown(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                    const double[::1] work, const double[::1] comm,
                    const int32_t[::1] stage, double[::1] w_out,
                    double[::1] recv_out, double[::1] send_out):
    """Fill per-stage work, received and sent communication (arrays of length k).

    Raises ValueError when a stage is outside ``0..k-1`` (the kernel indexes by stage)."""
    cdef Py_ssize_t k = w_out.shape[0], i
    if recv_out.shape[0] != k or send_out.shape[0] != k:
        raise ValueError("output arrays differ in length")
    _check(stage, work.shape[0], k)
    cdef int32_t[::1] mark = _full_int32(k, -1)
    with nogil:
        for i in range(k):
            w_out[i] = 0.0
            recv_out[i] = 0.0
            send_out[i] = 0.0
        stage_costs_into(succ_ptr, succ_idx, work, comm, stage, w_out, recv_out, send_out, mark)


def bottleneck(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
               const double[::1] work, const double[::1] comm,
               const int32_t[::1] stage, int k):
    """Return ``max_i f(S_i)`` in one O(n + m + k) pass (ValueError on a stage outside 0..k-1)."""
    _check(stage, work.shape[0], k)
    cdef double[::1] w = _zeros(k), r = _zeros(k), s = _zeros(k)
    cdef int32_t[::1] mark = _full_int32(k, -1)
    cdef double best = 0.0, c
    cdef Py_ssize_t i
    with nogil:
        stage_costs_into(succ_ptr, succ_idx, work, comm, stage, w, r, s, mark)
        for i in range(k):
            c = w[i] + r[i] + s[i]
            if c > best:
                best = c
    return best


def move_delta(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
               const int32_t[::1] pred_ptr, const int32_t[::1] pred_idx,
               const double[::1] work, const double[::1] comm,
               int32_t[::1] stage, int v, int new_stage, double[::1] delta):
    """Add to ``delta`` (length k) the stage-cost change of moving v to ``new_stage``.

    O(deg(v) + deg of v's predecessors) plus an O(k) scratch array: only the stages the
    move reads are range-checked (ValueError), so the call stays independent of n."""
    cdef Py_ssize_t k = delta.shape[0]
    if stage.shape[0] != work.shape[0]:
        raise ValueError(f"stage vector has {stage.shape[0]} entries for {work.shape[0]} nodes")
    if not (0 <= v < work.shape[0] and 0 <= new_stage < k):
        raise ValueError(f"node {v} or stage {new_stage} out of range")
    _check_around(stage, k, v, succ_ptr, succ_idx, pred_ptr, pred_idx)
    cdef int32_t[::1] mark = _full_int32(k, -1)
    cdef int32_t stamp = 0
    with nogil:
        move_delta_into(v, new_stage, succ_ptr, succ_idx, pred_ptr, pred_idx,
                        work, comm, stage, delta, mark, &stamp)


cdef double[::1] _zeros(Py_ssize_t k):
    cdef double[::1] a = _array_d(k)
    a[:] = 0.0
    return a


cdef double[::1] _array_d(Py_ssize_t k):
    from array import array
    return array("d", bytes(8 * k))


cdef int32_t[::1] _full_int32(Py_ssize_t k, int32_t value):
    from array import array
    cdef int32_t[::1] a = array("i", bytes(4 * k))
    a[:] = value
    return a
