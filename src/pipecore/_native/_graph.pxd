# Shared graph kernels, cimported by the other native modules.
from libc.stdint cimport int32_t, uint8_t

cdef enum KahnMode:
    KAHN_FIFO = 0     # ready nodes in the order they became ready (ties by index)
    KAHN_LIFO = 1     # the most recently readied node first (depth-first flavour)
    KAHN_KEYS = 2     # the ready node with the smallest key (ties by index)

cdef Py_ssize_t kahn_into(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                          int32_t[::1] indeg, const double[::1] keys, int mode,
                          int32_t[::1] buf, int32_t[::1] order) noexcept nogil

cdef void order_positions(const int32_t[::1] order, const int32_t[::1] succ_ptr,
                          const int32_t[::1] succ_idx, const int32_t[::1] pred_ptr,
                          const int32_t[::1] pred_idx, const int32_t[::1] node_map,
                          int32_t[::1] pos, int32_t[::1] maxsucc, int32_t[::1] ppred_ptr,
                          int32_t[::1] ppred_idx, uint8_t[::1] cut_ok) noexcept nogil
