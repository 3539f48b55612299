"""Graph kernels: Kahn's algorithm (the one implementation, three tie-breaking modes),
longest-path depth and strongly connected components."""
from libc.stdint cimport int32_t, uint8_t

import numpy as np


cdef inline bint _less(double ka, int32_t a, double kb, int32_t b) noexcept nogil:
    return ka < kb or (ka == kb and a < b)


cdef inline void _heap_push(int32_t[::1] heap, Py_ssize_t* size, const double[::1] keys,
                            int32_t v) noexcept nogil:
    cdef Py_ssize_t c = size[0], p
    size[0] += 1
    while c > 0:
        p = (c - 1) >> 1
        if _less(keys[v], v, keys[heap[p]], heap[p]):
            heap[c] = heap[p]
            c = p
        else:
            break
    heap[c] = v


cdef inline int32_t _heap_pop(int32_t[::1] heap, Py_ssize_t* size,
                              const double[::1] keys) noexcept nogil:
    cdef int32_t top = heap[0], x
    cdef Py_ssize_t p = 0, c
    size[0] -= 1
    if size[0] == 0:
        return top
    x = heap[size[0]]
    while True:
        c = 2 * p + 1
        if c >= size[0]:
            break
        if c + 1 < size[0] and _less(keys[heap[c + 1]], heap[c + 1], keys[heap[c]], heap[c]):
            c += 1
        if _less(keys[heap[c]], heap[c], keys[x], x):
            heap[p] = heap[c]
            p = c
        else:
            break
    heap[p] = x
    return top


cdef Py_ssize_t kahn_into(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                          int32_t[::1] indeg, const double[::1] keys, int mode,
                          int32_t[::1] buf, int32_t[::1] order) noexcept nogil:
    """Kahn's algorithm: ``indeg`` holds the in-degrees on entry (it is consumed), ``buf``
    is scratch of length n. Emits ready nodes FIFO, LIFO or by smallest key (see
    ``KahnMode``; ``keys`` is read only in KAHN_KEYS mode). O(n + m), or O((n + m) log n)
    with keys. Returns the number of nodes placed (< n on a cycle)."""
    cdef Py_ssize_t n = indeg.shape[0], head = 0, tail = 0, size = 0, placed = 0, i, e
    cdef int32_t u, v
    if mode == KAHN_LIFO:
        for i in range(n - 1, -1, -1):       # pops come out in index order
            if indeg[i] == 0:
                buf[size] = <int32_t>i
                size += 1
    else:
        for i in range(n):
            if indeg[i] == 0:
                if mode == KAHN_KEYS:
                    _heap_push(buf, &size, keys, <int32_t>i)
                else:
                    buf[tail] = <int32_t>i
                    tail += 1
    while True:
        if mode == KAHN_FIFO:
            if head == tail:
                break
            u = buf[head]
            head += 1
        elif mode == KAHN_LIFO:
            if size == 0:
                break
            size -= 1
            u = buf[size]
        else:
            if size == 0:
                break
            u = _heap_pop(buf, &size, keys)
        order[placed] = u
        placed += 1
        if mode == KAHN_LIFO:
            for e in range(succ_ptr[u + 1] - 1, succ_ptr[u] - 1, -1):
                v = succ_idx[e]
                indeg[v] -= 1
                if indeg[v] == 0:
                    buf[size] = v
                    size += 1
        else:
            for e in range(succ_ptr[u], succ_ptr[u + 1]):
                v = succ_idx[e]
                indeg[v] -= 1
                if indeg[v] == 0:
                    if mode == KAHN_KEYS:
                        _heap_push(buf, &size, keys, v)
                    else:
                        buf[tail] = v
                        tail += 1
    return placed


def kahn(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx, indeg, keys, bint lifo,
         int32_t[::1] order):
    """A topological order into ``order``; returns the number of nodes placed.

    ``indeg``: in-degree per node (copied, not modified). ``keys``: None for FIFO (or
    LIFO with ``lifo``), else one float per node, smallest first (ties by index).
    """
    cdef Py_ssize_t n = order.shape[0], placed
    cdef int32_t[::1] deg = np.array(indeg, dtype=np.int32, copy=True)
    cdef int32_t[::1] buf = np.empty(max(n, 1), dtype=np.int32)
    cdef double[::1] kv = np.zeros(1) if keys is None else np.ascontiguousarray(keys, dtype=np.float64)
    cdef int mode = KAHN_LIFO if lifo else (KAHN_FIFO if keys is None else KAHN_KEYS)
    if deg.shape[0] != n or (keys is not None and kv.shape[0] != n):
        raise ValueError("indeg, keys and order must have one entry per node")
    with nogil:
        placed = kahn_into(succ_ptr, succ_idx, deg, kv, mode, buf, order)
    return placed


def topological_order(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                      const int32_t[::1] pred_ptr, int32_t[::1] order):
    """Kahn FIFO (ties by index, deterministic) in O(n + m); returns how many nodes it
    placed. Fewer than n placed means the graph has a cycle among the unplaced nodes."""
    cdef Py_ssize_t n = order.shape[0], i
    cdef int32_t[::1] deg = np.empty(n, dtype=np.int32)
    for i in range(n):
        deg[i] = pred_ptr[i + 1] - pred_ptr[i]
    return kahn(succ_ptr, succ_idx, deg, None, False, order)


def depth(const int32_t[::1] order, const int32_t[::1] succ_ptr,
          const int32_t[::1] succ_idx, int32_t[::1] out):
    """Longest path (in edges) from any source to each node, along a topological order."""
    cdef Py_ssize_t n = order.shape[0], i, e
    cdef int32_t u, v
    with nogil:
        for i in range(n):
            out[i] = 0
        for i in range(n):
            u = order[i]
            for e in range(succ_ptr[u], succ_ptr[u + 1]):
                v = succ_idx[e]
                if out[v] < out[u] + 1:
                    out[v] = out[u] + 1


cdef int32_t _tarjan(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                     int32_t[::1] comp, int32_t[::1] index, int32_t[::1] low,
                     int32_t[::1] stack, int32_t[::1] call, int32_t[::1] edge) noexcept nogil:
    """Iterative Tarjan: ``call``/``edge`` are the DFS path and each frame's next edge, a
    visited node with ``comp`` < 0 is on ``stack``. Returns the component count. O(n + m)."""
    cdef Py_ssize_t n = comp.shape[0], r, depth, sp = 0
    cdef int32_t counter = 0, ncomp = 0, v, w, e
    for r in range(n):
        comp[r] = -1
        index[r] = -1
    for r in range(n):
        if index[r] >= 0:
            continue
        index[r] = counter
        low[r] = counter
        counter += 1
        stack[sp] = <int32_t>r
        sp += 1
        depth = 0
        call[0] = <int32_t>r
        edge[0] = succ_ptr[r]
        while depth >= 0:
            v = call[depth]
            e = edge[depth]
            if e < succ_ptr[v + 1]:
                edge[depth] = e + 1
                w = succ_idx[e]
                if index[w] < 0:            # tree edge: descend
                    index[w] = counter
                    low[w] = counter
                    counter += 1
                    stack[sp] = w
                    sp += 1
                    depth += 1
                    call[depth] = w
                    edge[depth] = succ_ptr[w]
                elif comp[w] < 0 and index[w] < low[v]:   # w on the stack
                    low[v] = index[w]
                continue
            if low[v] == index[v]:          # v roots a component: pop it
                while True:
                    sp -= 1
                    w = stack[sp]
                    comp[w] = ncomp
                    if w == v:
                        break
                ncomp += 1
            depth -= 1
            if depth >= 0 and low[v] < low[call[depth]]:
                low[call[depth]] = low[v]
    return ncomp


def strong_components(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                      int32_t[::1] comp):
    """Strongly connected components of the CSR digraph: ``comp[v]`` in 0..c-1 (sinks of
    the condensation first); returns c. Iterative Tarjan, O(n + m), no recursion."""
    cdef Py_ssize_t n = comp.shape[0]
    cdef int32_t c
    if succ_ptr.shape[0] != n + 1:
        raise ValueError("succ_ptr must have n + 1 entries")
    cdef int32_t[::1] index = np.empty(n, dtype=np.int32)
    cdef int32_t[::1] low = np.empty(n, dtype=np.int32)
    cdef int32_t[::1] stack = np.empty(n, dtype=np.int32)
    cdef int32_t[::1] call = np.empty(n, dtype=np.int32)
    cdef int32_t[::1] edge = np.empty(n, dtype=np.int32)
    with nogil:
        c = _tarjan(succ_ptr, succ_idx, comp, index, low, stack, call, edge)
    return c


cdef void order_positions(const int32_t[::1] order, const int32_t[::1] succ_ptr,
                          const int32_t[::1] succ_idx, const int32_t[::1] pred_ptr,
                          const int32_t[::1] pred_idx, const int32_t[::1] node_map,
                          int32_t[::1] pos, int32_t[::1] maxsucc, int32_t[::1] ppred_ptr,
                          int32_t[::1] ppred_idx, uint8_t[::1] cut_ok) noexcept nogil:
    """Position-indexed view of a node order, shared by the slicing decoders: ``pos``
    of every node, the last successor position ``maxsucc`` (-1: none) and the
    predecessor positions (CSR ``ppred_ptr``/``ppred_idx``) per position, and
    ``cut_ok[i]`` = a stage may end after position i (not inside a colocation class,
    always after the last). O(n + m)."""
    cdef Py_ssize_t n = order.shape[0], i, e, p = 0
    cdef int32_t v, mx
    for i in range(n):
        pos[order[i]] = <int32_t>i
    for i in range(n):
        v = order[i]
        mx = -1
        for e in range(succ_ptr[v], succ_ptr[v + 1]):
            if pos[succ_idx[e]] > mx:
                mx = pos[succ_idx[e]]
        maxsucc[i] = mx
        ppred_ptr[i] = <int32_t>p
        for e in range(pred_ptr[v], pred_ptr[v + 1]):
            ppred_idx[p] = pos[pred_idx[e]]
            p += 1
        cut_ok[i] = 1 if i + 1 == n else node_map[v] != node_map[order[i + 1]]
    ppred_ptr[n] = <int32_t>p
