"""Graph kernels: Kahn's topological sort and depth (longest path in edges)."""
from libc.stdint cimport int32_t


def topological_order(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                      const int32_t[::1] pred_ptr, int32_t[::1] order):
    """Kahn's algorithm in O(n + m); fills ``order`` and returns how many nodes it placed.

    Fewer than n placed means the graph has a cycle (the unplaced nodes contain it).
    Ties are broken by node index (FIFO queue seeded in index order), so the order is
    deterministic.
    """
    cdef Py_ssize_t n = order.shape[0]
    cdef Py_ssize_t head = 0, tail = 0, u, e
    cdef int32_t v
    from array import array
    cdef int32_t[::1] indeg = array("i", bytes(4 * n))
    with nogil:
        for u in range(n):
            indeg[u] = pred_ptr[u + 1] - pred_ptr[u]
            if indeg[u] == 0:
                order[tail] = <int32_t>u
                tail += 1
        while head < tail:
            u = order[head]
            head += 1
            for e in range(succ_ptr[u], succ_ptr[u + 1]):
                v = succ_idx[e]
                indeg[v] -= 1
                if indeg[v] == 0:
                    order[tail] = v
                    tail += 1
    return tail


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
