# Shared graph kernels, cimported by the other native modules.
from libc.stdint cimport int32_t

cdef enum KahnMode:
    KAHN_FIFO = 0     # ready nodes in the order they became ready (ties by index)
    KAHN_LIFO = 1     # the most recently readied node first (depth-first flavour)
    KAHN_KEYS = 2     # the ready node with the smallest key (ties by index)

cdef Py_ssize_t kahn_into(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                          int32_t[::1] indeg, const double[::1] keys, int mode,
                          int32_t[::1] buf, int32_t[::1] order) noexcept nogil
