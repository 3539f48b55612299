"""Method ``"mip"``: the exact MIP (:func:`pipecore.bounds.mip.formulations.exact_model`)
solved by HiGHS or Gurobi, as an upper-bound method with its own proven lower bound."""
from __future__ import annotations

import math
from typing import Any

from .._runtime import Budget, ProgressFn, no_progress
from ..options import Option, method
from ..partition import Partition
from ..problem import Problem
from ..result import Quality, SolveResult, Termination

__all__ = ["solve_mip"]

#: at most this share of the budget may go to building and loading the model (neither
#: step can be interrupted); a bigger model is not built.
MODEL_SHARE = 0.5


def _without_mip(problem: Problem, start: Partition | None, reason: str,
                 budget: Budget) -> SolveResult:
    """The warm start alone when the model is too big to build (termination capped, or
    time_limit when only the budget is short)."""
    term = Termination.TIME_LIMIT if budget.limited and "left" in reason else Termination.CAPPED
    msg = f"{reason}; returned the work-balanced start without the MIP"
    if start is None:
        return SolveResult(None, quality=Quality.NO_SOLUTION, termination=term, method="mip",
                           message=msg)
    out = SolveResult(start, upper_bound=start.bottleneck, termination=term,
                      upper_bound_source="balanced", method="mip", message=msg)
    out.settle_quality()
    return out


@method("mip", (
    Option("backend", str, "auto", choices=("auto", "highs", "gurobi"), help="MIP solver"),
    Option("threads", int, 1, minimum=1, maximum=256, help="solver threads"),
))
def solve_mip(problem: Problem, budget: Budget, *, seed: int | None = 0,
              progress: ProgressFn = no_progress, stop_at: float = 0.0,
              backend: str = "auto", threads: int = 1) -> SolveResult:
    """The exact MIP on one backend, warm-started from the work-balanced split when valid.

    T is bounded below by the combinatorial bound and above by the warm start's
    bottleneck. Returns the best incumbent as the partition (evaluated exactly on the
    original graph) and the solver's dual bound, rounded down safely, as the lower
    bound. Exponential in the worst case; under a time budget it returns the best
    found with termination ``time_limit``.
    """
    from ..bounds.certificate import CERT_TOLERANCE, quick_bound, safe_floor
    from ..bounds.mip import solve_model
    from ..bounds.mip.formulations import (PipelineInstance, exact_model, model_size_problem,
                                           part_of_stage)
    from .baselines import _balanced

    inst = PipelineInstance.build(problem)
    comb, _ = quick_bound(problem)
    start: Partition | None = _balanced(problem)
    if start is not None and not problem.is_valid(start):
        start = None
    ub = start.bottleneck if start is not None else math.inf
    too_big = model_size_problem(inst, inst.k, budget.remaining() * MODEL_SHARE)
    if too_big:
        return _without_mip(problem, start, too_big, budget)
    cm = exact_model(inst, t_lower=comb,
                     t_upper=ub * (1 + 1e-9) + 1e-12 if math.isfinite(ub) else math.inf)
    warm = None
    if start is not None:
        from ..bounds.certificate import _compact

        warm = cm.warm_start(part_of_stage("exact", inst.k, inst.class_stage(_compact(start.stage))))
    try:
        res = solve_model(cm.model, backend=backend, threads=threads, warm_start=warm,
                          tolerance=CERT_TOLERANCE, mip_rel_gap=1e-9, mip_abs_gap=1e-10,
                          deadline=budget.deadline)
    except KeyboardInterrupt:  # Ctrl-C: the warm start is the best answer so far
        out = _without_mip(problem, start, "interrupted", budget)
        out.termination = Termination.INTERRUPTED
        return out
    part = start
    if res.x is not None:
        cand = problem.expand(cm.decode_stage(res.x))
        if problem.is_valid(cand) and (part is None or cand.bottleneck < part.bottleneck):
            part = cand
    stats: dict[str, Any] = {"mip_backend": res.backend, "mip_quality": res.quality.value,
                             "mip_dual_bound": res.dual_bound}
    if res.quality is Quality.INFEASIBLE and start is None:
        return SolveResult(None, quality=Quality.INFEASIBLE, method="mip", stats=stats,
                           message="the exact MIP is infeasible: no partition meets the "
                                   "memory cap")
    lb = safe_floor(res.dual_bound, problem) if res.quality is not Quality.INFEASIBLE else 0.0
    term = res.termination if res.termination is not Termination.ERROR else Termination.COMPLETED
    if part is None:
        return SolveResult(None, lower_bound=lb, quality=Quality.NO_SOLUTION, termination=term,
                           lower_bound_source="mip:exact", method="mip", stats=stats,
                           message=res.message)
    lb = min(lb, part.bottleneck)
    out = SolveResult(part, upper_bound=part.bottleneck, lower_bound=lb, termination=term,
                      upper_bound_source="mip", lower_bound_source="mip:exact" if lb > 0 else "",
                      method="mip", stats=stats, message=res.message)
    out.settle_quality()
    return out
