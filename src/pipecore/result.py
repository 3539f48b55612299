"""Solver results, in the spirit of ``scipy.optimize.OptimizeResult``."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .partition import Partition

__all__ = ["SolveResult", "Status"]


class Status:
    """Why a solve stopped."""

    OPTIMAL = "optimal"            # UB proven equal to LB (within tolerance)
    FEASIBLE = "feasible"          # a valid partition, optimality not proven
    TIME_LIMIT = "time_limit"      # stopped by the time limit; best so far returned
    INTERRUPTED = "interrupted"    # stopped by Ctrl-C; best so far returned
    CAPPED = "capped"              # an exact method hit its state cap
    INFEASIBLE = "infeasible"      # proven: no partition meets the constraints
    NO_SOLUTION = "no_solution"    # none found (infeasibility not proven)


@dataclass
class SolveResult:
    """Outcome of a solve: a partition (upper bound), a lower bound and how each was obtained.

    ``gap = upper_bound / lower_bound - 1`` is never reported smaller than proven:
    ``lower_bound`` is always a valid bound on the optimum (0 when nothing better is
    known), so ``gap`` is ``inf`` when ``lower_bound`` is 0 and the UB is positive.
    """

    partition: Partition | None
    upper_bound: float = math.inf
    lower_bound: float = 0.0
    status: str = Status.FEASIBLE
    method: str = ""
    lower_bound_method: str = ""
    wall_time: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    @property
    def bottleneck(self) -> float:
        return self.upper_bound

    @property
    def gap(self) -> float:
        ub, lb = self.upper_bound, self.lower_bound
        if not math.isfinite(ub):
            return math.inf
        if ub <= lb:
            return 0.0
        if lb <= 0.0:
            return math.inf
        return ub / lb - 1.0

    @property
    def success(self) -> bool:
        return self.partition is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the partition as a stage list)."""
        def num(x):
            return x if math.isfinite(x) else None

        return {
            "status": self.status,
            "method": self.method,
            "upper_bound": num(self.upper_bound),
            "lower_bound": num(self.lower_bound),
            "lower_bound_method": self.lower_bound_method,
            "gap": num(self.gap),
            "k": self.partition.k if self.partition is not None else None,
            "stage": self.partition.stage.tolist() if self.partition is not None else None,
            "stage_costs": (self.partition.stage_costs().tolist()
                            if self.partition is not None else None),
            "wall_time": self.wall_time,
            "timings": dict(self.timings),
            "stats": {k: v for k, v in self.stats.items() if _jsonable(v)},
            "message": self.message,
        }

    def __repr__(self) -> str:
        return (f"SolveResult(status={self.status!r}, method={self.method!r}, "
                f"upper_bound={self.upper_bound:.6g}, lower_bound={self.lower_bound:.6g}, "
                f"gap={self.gap:.3g}, wall_time={self.wall_time:.3g}s)")


def _jsonable(v) -> bool:
    return isinstance(v, (int, float, str, bool, type(None), list, dict))
