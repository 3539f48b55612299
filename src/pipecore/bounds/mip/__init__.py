"""Solver-neutral MIP layer: models, backends (HiGHS, Gurobi) and pipeline formulations."""
from .backends import BACKENDS, SolverOptions, available_backends, solve_model
from .model import MipModel, MipResult, MipStatus

__all__ = ["MipModel", "MipResult", "MipStatus", "SolverOptions", "solve_model",
           "available_backends", "BACKENDS"]


def solve_mip(graph, k, *, mem_cap=None, budget=None, seed=None, progress=None,
              backend: str = "auto", warm_start=None, threads: int = 1, **_):
    """Method ``"mip"``: the exact MIP (:func:`formulations.exact_model`) on one backend.

    Warm-started from ``warm_start`` (a :class:`Partition` or stage vector) or the
    work-balanced split when valid; T is bounded below by the combinatorial bound
    and above by the warm start's bottleneck. Returns the best incumbent as the
    partition (evaluated exactly on the original graph) and the solver's dual bound,
    rounded down safely, as the lower bound. Exponential in the worst case; under a
    time budget it returns the best found with status ``time_limit``.
    """
    import math

    import numpy as np

    from ...partition import Partition
    from ...result import SolveResult, Status
    from .. import CERT_TOLERANCE, combinatorial_bound, safe_floor
    from .formulations import PipelineInstance, exact_model, part_of_stage

    inst = PipelineInstance.build(graph, k, mem_cap)
    comb = combinatorial_bound(graph, k, mem_cap).value
    start = None
    if warm_start is not None:
        st = warm_start.stage if isinstance(warm_start, Partition) else np.asarray(warm_start)
        start = Partition(graph, st, k)
    else:
        from ...algorithms.baselines import balanced_split

        start = balanced_split(graph, k)
    if not start.is_valid(mem_cap):
        start = None
    ub = start.bottleneck if start is not None else math.inf
    cm = exact_model(inst, t_lower=comb,
                     t_upper=ub * (1 + 1e-9) + 1e-12 if math.isfinite(ub) else math.inf)
    warm = cm.warm_start(part_of_stage("exact", k, inst.class_stage(start.stage))) if start else None
    rem = budget.remaining() if budget is not None else math.inf
    res = solve_model(cm.model, backend=backend, time_limit=None if math.isinf(rem) else max(rem, 0.05),
                      threads=threads, warm_start=warm, tolerance=CERT_TOLERANCE,
                      mip_rel_gap=1e-9, mip_abs_gap=1e-10)
    part = start
    if res.x is not None:
        cand = Partition(graph, cm.decode_stage(res.x), k)
        if cand.is_valid(mem_cap) and (part is None or cand.bottleneck < part.bottleneck):
            part = cand
    lb = safe_floor(res.dual_bound, graph) if res.status != "infeasible" or start is None else 0.0
    if res.status == "infeasible" and start is None:
        return SolveResult(None, status=Status.INFEASIBLE, method="mip", wall_time=res.wall_time,
                           message="the exact MIP is infeasible: no partition meets the memory cap",
                           stats={"mip_backend": res.backend})
    if part is None:
        return SolveResult(None, status=Status.NO_SOLUTION, method="mip", lower_bound=lb,
                           lower_bound_method="mip:exact", message=res.message,
                           stats={"mip_backend": res.backend})
    ubv = part.bottleneck
    lb = min(lb, ubv)
    from .. import OPTIMAL_RTOL

    if ubv <= lb * (1 + OPTIMAL_RTOL):
        status = Status.OPTIMAL
    elif res.status == "time_limit":
        status = Status.TIME_LIMIT
    elif res.status == "interrupted":
        status = Status.INTERRUPTED
    else:
        status = Status.FEASIBLE
    return SolveResult(part, upper_bound=ubv, lower_bound=lb, status=status, method="mip",
                       lower_bound_method="mip:exact", wall_time=res.wall_time,
                       timings={"mip": res.wall_time},
                       stats={"mip_backend": res.backend, "mip_status": res.status,
                              "mip_dual_bound": res.dual_bound}, message=res.message)


__all__.append("solve_mip")
