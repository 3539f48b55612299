# Shared nogil helpers of the stage-cost kernel, cimported by other kernels.
from libc.stdint cimport int32_t

cdef void stage_costs_into(const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                           const double[::1] work, const double[::1] comm,
                           const int32_t[::1] stage,
                           double[::1] w_out, double[::1] recv_out, double[::1] send_out,
                           int32_t[::1] mark) noexcept nogil

cdef void comm_contribution(int32_t u, double sign,
                            const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                            const double[::1] comm, const int32_t[::1] stage,
                            double[::1] delta, int32_t[::1] mark, int32_t stamp) noexcept nogil

cdef void move_delta_into(int32_t v, int32_t new_stage,
                          const int32_t[::1] succ_ptr, const int32_t[::1] succ_idx,
                          const int32_t[::1] pred_ptr, const int32_t[::1] pred_idx,
                          const double[::1] work, const double[::1] comm,
                          int32_t[::1] stage, double[::1] delta,
                          int32_t[::1] mark, int32_t* stamp) noexcept nogil
