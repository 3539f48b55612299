"""Local search and simulated annealing on stage assignments (DESIGN.md section 2).

State: a stage per quotient node (colocation classes move whole), the stage
vector of the original nodes, and the k stage costs and memories, kept up to date
incrementally. Every move keeps all edges forward by construction:

* **move**: a class to the adjacent stage s+1 (all its successors already lie in
  stages > s) or s-1 (all its predecessors lie in stages < s);
* **swap**: class u from s to s+1 and class v from s+1 to s, each movable on its
  own and not adjacent to each other;
* **shift**: a class together with all its descendants (ancestors) inside its stage
  moves to s+1 (s-1) - the boundary between two stages shifts locally; capped at
  ``max_shift`` classes.

Memory caps are checked before a move (per-stage memory is kept). Under 1F1B
(``act``) stage t of k holds ``mem + (k - 1 - t) * act`` (``mem`` already counts one
micro-batch): the position count is at least the number of non-empty stages from
t on, so every accepted state is valid under the true 1F1B memory (conservative
when empty stages are not first). The cost change
of a move is the sum of :func:`move_delta_into` over the moved members, applied
one after the other, i.e. O(sum over moved nodes of outdeg + sum of outdeg of
their predecessors) plus O(k) to read the new maximum. Per-stage node lists are a
bucket array ordered by stage; a move to an adjacent stage is an O(1) swap at the
bucket boundary, so a random node of a given stage is drawn in O(1).

Descent accepts a move when it lowers (bottleneck, sum of squared stage costs)
lexicographically. Annealing minimises ``E = max_s c_s + lam * rms(c)`` (the rms
term rewards draining near-bottleneck stages) with Metropolis acceptance and a
geometric temperature schedule; the best bottleneck seen is kept. Costs are
recomputed exactly (O(n + m + k)) by :meth:`LocalState.resync` to stop float drift.
"""
from libc.math cimport INFINITY, exp, sqrt, pow
from libc.stdint cimport int32_t, uint64_t

import numpy as np

from pipecore._native._clock cimport now
from pipecore._native._cost cimport stage_costs_into, move_delta_into


cdef class LocalState:
    """Incremental stage-assignment state for descent and annealing (see module docstring)."""
    cdef public int k
    cdef public Py_ssize_t n, q
    cdef public double cap, best_val, deadline
    cdef public long moves_tried, moves_done
    cdef const int32_t[::1] succ_ptr, succ_idx, pred_ptr, pred_idx
    cdef const double[::1] work, comm, mem
    cdef const int32_t[::1] q_succ_ptr, q_succ_idx, q_pred_ptr, q_pred_idx
    cdef const int32_t[::1] member_ptr, member_idx
    cdef double[::1] qmem, qact, mult
    cdef const double[::1] act
    cdef int32_t[::1] stage, qstage, best_stage, kmark, bucket, bpos, bstart, sbuf, smark
    cdef double[::1] cost, smem, delta, kw, kr, ks
    cdef int32_t stamp, sstamp
    cdef uint64_t rng

    def __init__(self, graph, contraction, int k, mem, double cap_limit, stage,
                 uint64_t seed=1, act=None):
        """``mem``: memory per node as the problem counts it; ``cap_limit``: the cap with its
        tolerance applied (``Problem.cap_limit``, inf for none); ``act``: activation
        memory per node for the 1F1B schedule (None: plain)."""
        cq = contraction.graph
        self.k = k
        self.n = graph.n
        self.q = cq.n
        self.cap = cap_limit
        self.succ_ptr, self.succ_idx = graph.succ_ptr, graph.succ_idx
        self.pred_ptr, self.pred_idx = graph.pred_ptr, graph.pred_idx
        self.work, self.comm = graph.work, graph.comm
        self.mem = np.ascontiguousarray(mem, dtype=np.float64)
        self.q_succ_ptr, self.q_succ_idx = cq.succ_ptr, cq.succ_idx
        self.q_pred_ptr, self.q_pred_idx = cq.pred_ptr, cq.pred_idx
        self.member_ptr, self.member_idx = contraction.member_ptr, contraction.member_idx
        self.qmem = np.bincount(np.asarray(contraction.node_map), weights=self.mem,
                                minlength=self.q).astype(np.float64)
        self.act = np.zeros(self.n) if act is None else np.ascontiguousarray(act, dtype=np.float64)
        self.qact = np.bincount(np.asarray(contraction.node_map), weights=self.act,
                                minlength=self.q).astype(np.float64)
        self.mult = np.zeros(k) if act is None else np.arange(k - 1, -1, -1, dtype=np.float64)
        st = np.ascontiguousarray(stage, dtype=np.int32).copy()
        self.stage = st
        qst = np.empty(self.q, dtype=np.int32)
        qst[np.asarray(contraction.node_map)] = st
        self.qstage = qst
        self.best_stage = st.copy()
        self.kmark = np.full(k, -1, dtype=np.int32)
        self.cost = np.zeros(k)
        self.smem = np.zeros(k)
        self.delta = np.zeros(k)
        self.kw = np.zeros(k)
        self.kr = np.zeros(k)
        self.ks = np.zeros(k)
        order = np.argsort(qst, kind="stable").astype(np.int32)
        self.bucket = order
        bpos = np.empty(self.q, dtype=np.int32)
        bpos[order] = np.arange(self.q, dtype=np.int32)
        self.bpos = bpos
        bstart = np.zeros(k + 1, dtype=np.int32)
        np.cumsum(np.bincount(qst, minlength=k), out=bstart[1:])
        self.bstart = bstart.astype(np.int32)
        self.sbuf = np.empty(max(self.q, 1), dtype=np.int32)
        self.smark = np.zeros(max(self.q, 1), dtype=np.int32)
        self.stamp = 0
        self.sstamp = 0
        self.rng = seed * <uint64_t>0x9E3779B97F4A7C15ULL + <uint64_t>0x632BE59BD9B4E019ULL
        if self.rng == 0:
            self.rng = 1
        self.deadline = INFINITY
        self.moves_tried = 0
        self.moves_done = 0
        self.resync()
        self.best_val = self._max()

    # ------------------------------------------------------------------ basics
    def resync(self):
        """Recompute stage costs and memories exactly from the stage vector. O(n + m + k)."""
        cdef Py_ssize_t i
        with nogil:
            for i in range(self.k):
                self.kw[i] = 0.0
                self.kr[i] = 0.0
                self.ks[i] = 0.0
                self.kmark[i] = -1
                self.smem[i] = 0.0
            stage_costs_into(self.succ_ptr, self.succ_idx, self.work, self.comm, self.stage,
                             self.kw, self.kr, self.ks, self.kmark)
            for i in range(self.k):
                self.cost[i] = self.kw[i] + self.kr[i] + self.ks[i]
                self.kmark[i] = -1
            for i in range(self.n):
                self.smem[self.stage[i]] += self.mem[i] + self.mult[self.stage[i]] * self.act[i]
            self.stamp = 0

    cdef double _max(self) noexcept nogil:
        cdef double m = 0.0
        cdef Py_ssize_t i
        for i in range(self.k):
            if self.cost[i] > m:
                m = self.cost[i]
        return m

    cdef inline uint64_t _next(self) noexcept nogil:
        cdef uint64_t x = self.rng
        x ^= x >> 12
        x ^= x << 25
        x ^= x >> 27
        self.rng = x
        return x * <uint64_t>0x2545F4914F6CDD1DULL

    cdef inline double _unif(self) noexcept nogil:
        return (self._next() >> 11) * (1.0 / 9007199254740992.0)

    cdef inline Py_ssize_t _randint(self, Py_ssize_t m) noexcept nogil:
        return <Py_ssize_t>(self._next() % <uint64_t>m)

    # ------------------------------------------------------------------ move machinery
    cdef bint _can_forward(self, int32_t x) noexcept nogil:
        cdef int32_t s = self.qstage[x]
        cdef Py_ssize_t e
        if s + 1 >= self.k:
            return False
        for e in range(self.q_succ_ptr[x], self.q_succ_ptr[x + 1]):
            if self.qstage[self.q_succ_idx[e]] <= s:
                return False
        return True

    cdef bint _can_backward(self, int32_t x) noexcept nogil:
        cdef int32_t s = self.qstage[x]
        cdef Py_ssize_t e
        if s == 0:
            return False
        for e in range(self.q_pred_ptr[x], self.q_pred_ptr[x + 1]):
            if self.qstage[self.q_pred_idx[e]] >= s:
                return False
        return True

    cdef void _stage_members(self, int32_t x, int32_t t, bint with_delta) noexcept nogil:
        """Set every member of class x to stage t, accumulating the cost change in delta."""
        cdef Py_ssize_t i
        cdef int32_t v
        for i in range(self.member_ptr[x], self.member_ptr[x + 1]):
            v = self.member_idx[i]
            if with_delta:
                move_delta_into(v, t, self.succ_ptr, self.succ_idx, self.pred_ptr, self.pred_idx,
                                self.work, self.comm, self.stage, self.delta, self.kmark,
                                &self.stamp)
            self.stage[v] = t
        if self.stamp > 1000000000:
            for i in range(self.k):
                self.kmark[i] = -1
            self.stamp = 0

    cdef void _bucket_move(self, int32_t x, int32_t t) noexcept nogil:
        """Move class x to the adjacent stage t in the bucket array (O(1)) and in qstage."""
        cdef int32_t s = self.qstage[x], y, p, px
        if t == s + 1:
            p = self.bstart[t] - 1
            self.bstart[t] -= 1
        else:
            p = self.bstart[s]
            self.bstart[s] += 1
        px = self.bpos[x]
        y = self.bucket[p]
        self.bucket[p] = x
        self.bucket[px] = y
        self.bpos[y] = px
        self.bpos[x] = p
        self.qstage[x] = t

    cdef void _eval(self, double* newmax, double* newsq) noexcept nogil:
        cdef double m = 0.0, sq = 0.0, c
        cdef Py_ssize_t i
        for i in range(self.k):
            c = self.cost[i] + self.delta[i]
            if c > m:
                m = c
            sq += c * c
        newmax[0] = m
        newsq[0] = sq

    cdef double _sumsq(self) noexcept nogil:
        cdef double sq = 0.0
        cdef Py_ssize_t i
        for i in range(self.k):
            sq += self.cost[i] * self.cost[i]
        return sq

    cdef void _commit(self, int32_t* xs, int32_t* ts, int nx) noexcept nogil:
        """Accept the staged move: costs += delta, memory and buckets updated."""
        cdef Py_ssize_t i
        cdef int j
        for i in range(self.k):
            self.cost[i] += self.delta[i]
            self.delta[i] = 0.0
        for j in range(nx):
            self.smem[self.qstage[xs[j]]] -= self._cm(xs[j], self.qstage[xs[j]])
            self.smem[ts[j]] += self._cm(xs[j], ts[j])
            self._bucket_move(xs[j], ts[j])
        self.moves_done += 1

    cdef void _rollback(self, int32_t* xs, int nx) noexcept nogil:
        cdef Py_ssize_t i
        cdef int j
        for i in range(self.k):
            self.delta[i] = 0.0
        for j in range(nx - 1, -1, -1):
            self._stage_members(xs[j], self.qstage[xs[j]], False)

    cdef inline double _cm(self, int32_t x, int32_t t) noexcept nogil:
        """Memory class x holds in stage t."""
        return self.qmem[x] + self.mult[t] * self.qact[x]

    cdef bint _mem_fits(self, int32_t* xs, int32_t* ts, int nx) noexcept nogil:
        cdef int j
        cdef int32_t t0, t1 = -1
        cdef double add0 = 0.0, add1 = 0.0, out0 = 0.0, out1 = 0.0
        if self.cap == INFINITY:
            return True
        # moves touch at most two target stages; accumulate per target
        t0 = ts[0]
        for j in range(nx):
            if ts[j] == t0:
                add0 += self._cm(xs[j], t0)
            else:
                t1 = ts[j]
        if t1 < 0:
            return self.smem[t0] + add0 <= self.cap
        # a swap: t0 gains the classes moving to t0 (from t1) and loses those moving to t1
        for j in range(nx):
            if ts[j] == t1:
                add1 += self._cm(xs[j], t1)
                out0 += self._cm(xs[j], t0)
            else:
                out1 += self._cm(xs[j], t1)
        return (self.smem[t0] + add0 - out0 <= self.cap and self.smem[t1] + add1 - out1 <= self.cap)

    cdef int _build_shift(self, int32_t x, bint forward, int max_shift) noexcept nogil:
        """Closure of x inside its stage (descendants if forward, ancestors otherwise) into
        sbuf, in topological (forward) or reverse order; 0 if larger than max_shift."""
        cdef int32_t s = self.qstage[x], y, z
        cdef int head = 0, tail = 0
        cdef Py_ssize_t e, lo, hi
        self.sstamp += 1
        if self.sstamp > 2000000000:
            for e in range(self.q):
                self.smark[e] = 0
            self.sstamp = 1
        self.sbuf[tail] = x
        tail += 1
        self.smark[x] = self.sstamp
        while head < tail:
            y = self.sbuf[head]
            head += 1
            if forward:
                lo = self.q_succ_ptr[y]
                hi = self.q_succ_ptr[y + 1]
            else:
                lo = self.q_pred_ptr[y]
                hi = self.q_pred_ptr[y + 1]
            for e in range(lo, hi):
                z = self.q_succ_idx[e] if forward else self.q_pred_idx[e]
                if self.qstage[z] == s and self.smark[z] != self.sstamp:
                    if tail >= max_shift:
                        return 0
                    self.smark[z] = self.sstamp
                    self.sbuf[tail] = z
                    tail += 1
        return tail

    cdef int _propose(self, int kind, int32_t x, bint forward, int max_shift,
                      int32_t* xs, int32_t* ts) noexcept nogil:
        """Stage a move (members moved, delta filled); returns the number of classes moved,
        0 if the move is not possible (nothing staged)."""
        cdef int32_t s = self.qstage[x], t, v
        cdef int nx = 0, j
        cdef Py_ssize_t e, size
        t = s + 1 if forward else s - 1
        if t < 0 or t >= self.k:
            return 0
        if kind == 0:
            if not (self._can_forward(x) if forward else self._can_backward(x)):
                return 0
            xs[0] = x
            ts[0] = t
            nx = 1
        elif kind == 1:
            # swap x (s -> t) with a random class v of stage t (t -> s)
            if not (self._can_forward(x) if forward else self._can_backward(x)):
                return 0
            size = self.bstart[t + 1] - self.bstart[t]
            if size == 0:
                return 0
            v = self.bucket[self.bstart[t] + self._randint(size)]
            if not (self._can_backward(v) if forward else self._can_forward(v)):
                return 0
            for e in range(self.q_succ_ptr[x], self.q_succ_ptr[x + 1]):
                if self.q_succ_idx[e] == v:
                    return 0
            for e in range(self.q_pred_ptr[x], self.q_pred_ptr[x + 1]):
                if self.q_pred_idx[e] == v:
                    return 0
            xs[0] = x
            ts[0] = t
            xs[1] = v
            ts[1] = s
            nx = 2
        else:
            nx = self._build_shift(x, forward, max_shift)
            if nx <= 1:
                return 0  # too large, or a plain move (tried as kind 0)
            # every class of the closure must be able to go; closure guarantees validity
            for j in range(nx):
                xs[j] = self.sbuf[j]
                ts[j] = t
        if not self._mem_fits(xs, ts, nx):
            return 0
        for j in range(nx):
            self._stage_members(xs[j], ts[j], True)
        self.moves_tried += 1
        return nx

    # ------------------------------------------------------------------ drivers
    def descent(self, int max_sweeps=1000, int max_shift=16):
        """First-improvement descent on (bottleneck, sum of squares) with moves and shifts.

        Sweeps the classes in a random order until a sweep improves nothing, ``max_sweeps``
        or the deadline. O(sweeps * sum over classes of move cost). Returns improvements.
        """
        cdef int sweep, kind, d, nx
        cdef Py_ssize_t i, r, q = self.q
        cdef int32_t x, tmp
        cdef double curmax, cursq, nm, nsq
        cdef long improved = 0, before
        cdef int32_t* xs
        cdef int32_t* ts
        cdef int32_t[::1] perm = np.arange(q, dtype=np.int32)
        cdef int32_t[::1] xbuf = np.empty(max(q, 2), dtype=np.int32)
        cdef int32_t[::1] tbuf = np.empty(max(q, 2), dtype=np.int32)
        if self.k < 2 or q == 0:
            return 0
        xs = &xbuf[0]
        ts = &tbuf[0]
        with nogil:
            curmax = self._max()
            cursq = self._sumsq()
            for sweep in range(max_sweeps):
                before = improved
                for i in range(q - 1, 0, -1):
                    r = self._randint(i + 1)
                    tmp = perm[i]
                    perm[i] = perm[r]
                    perm[r] = tmp
                for i in range(q):
                    x = perm[i]
                    for kind in range(0, 3, 2):  # plain move, then shift
                        for d in range(2):
                            nx = self._propose(kind, x, d == 0, max_shift, xs, ts)
                            if nx == 0:
                                continue
                            self._eval(&nm, &nsq)
                            if nm < curmax * (1.0 - 1e-12) or (nm <= curmax and nsq < cursq * (1.0 - 1e-12)):
                                self._commit(xs, ts, nx)
                                curmax = nm
                                cursq = nsq
                                improved += 1
                            else:
                                self._rollback(xs, nx)
                    if (i & 255) == 0 and now() > self.deadline:
                        break
                if improved == before or now() > self.deadline:
                    break
        self.resync()
        self._update_best()
        return improved

    cdef void _update_best(self) noexcept nogil:
        cdef double m = self._max()
        cdef Py_ssize_t i
        if m < self.best_val:
            self.best_val = m
            for i in range(self.n):
                self.best_stage[i] = self.stage[i]

    def anneal(self, long steps, double t_start, double t_end, double lam=0.1,
               double p_swap=0.15, double p_shift=0.15, int max_shift=16):
        """``steps`` Metropolis steps with temperature t_start -> t_end geometrically.

        Each step draws a class, a direction and a move kind (swap with ``p_swap``, shift
        with ``p_shift``, else a plain move). Returns the number of accepted moves; the
        best bottleneck seen is kept (:meth:`best`).
        """
        cdef long step, accepted = 0
        cdef Py_ssize_t i
        cdef double T = t_start, ratio, u, curE, newE, nm, nsq, curmax, cursq, kinv
        cdef int kind, nx
        cdef int32_t x
        cdef bint forward
        cdef int32_t* xs
        cdef int32_t* ts
        cdef int32_t[::1] xbuf = np.empty(max(self.q, 2), dtype=np.int32)
        cdef int32_t[::1] tbuf = np.empty(max(self.q, 2), dtype=np.int32)
        if self.k < 2 or self.q == 0 or steps <= 0:
            return 0
        xs = &xbuf[0]
        ts = &tbuf[0]
        ratio = pow(t_end / t_start, 1.0 / steps) if t_start > 0 and t_end > 0 else 1.0
        kinv = 1.0 / self.k
        with nogil:
            curmax = self._max()
            cursq = self._sumsq()
            curE = curmax + lam * sqrt(cursq * kinv)
            for step in range(steps):
                x = <int32_t>self._randint(self.q)
                forward = (self._next() >> 63) != 0
                u = self._unif()
                kind = 1 if u < p_swap else (2 if u < p_swap + p_shift else 0)
                nx = self._propose(kind, x, forward, max_shift, xs, ts)
                if nx == 0:
                    T *= ratio
                    continue
                self._eval(&nm, &nsq)
                newE = nm + lam * sqrt(nsq * kinv)
                if newE <= curE or (T > 0 and self._unif() < exp((curE - newE) / T)):
                    self._commit(xs, ts, nx)
                    curE = newE
                    accepted += 1
                    if nm < self.best_val:
                        self.best_val = nm
                        for i in range(self.n):
                            self.best_stage[i] = self.stage[i]
                else:
                    self._rollback(xs, nx)
                T *= ratio
                if (step & 1023) == 0 and now() > self.deadline:
                    break
        self.resync()
        self._update_best()
        return accepted

    def restore_best(self):
        """Make the best assignment seen the current one."""
        cdef Py_ssize_t i
        for i in range(self.n):
            self.stage[i] = self.best_stage[i]
        self._reload()

    cdef void _reload(self):
        st = np.asarray(self.stage)
        qst = np.asarray(self.qstage)
        # members of a class share a stage: take each class's first member
        first = np.asarray(self.member_idx)[np.asarray(self.member_ptr)[:self.q]]
        qst[:] = st[first]
        order = np.argsort(qst, kind="stable").astype(np.int32)
        np.asarray(self.bucket)[:] = order
        np.asarray(self.bpos)[order] = np.arange(self.q, dtype=np.int32)
        bs = np.zeros(self.k + 1, dtype=np.int32)
        np.cumsum(np.bincount(qst, minlength=self.k), out=bs[1:])
        np.asarray(self.bstart)[:] = bs
        self.resync()

    def stage_array(self):
        return np.array(self.stage, copy=True)

    def best(self):
        """``(bottleneck, stage)`` of the best assignment seen."""
        return self.best_val, np.array(self.best_stage, copy=True)

    def current(self):
        return self._max()
