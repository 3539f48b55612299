# The one native clock: CLOCK_MONOTONIC seconds, the base of pipecore._runtime.clock
# (time.monotonic), so a Budget's deadline can be compared inside nogil loops.
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC


cdef inline double now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + 1e-9 * ts.tv_nsec
