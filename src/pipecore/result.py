"""Solver results, in the spirit of ``scipy.optimize.OptimizeResult``.

Every result in pipecore (a solve, a method, a MIP, a bound) speaks the same two
words: :class:`Termination` says *why it stopped*, :class:`Quality` says *how good
the answer is*. A :class:`SolveResult` also keeps its provenance: the
:class:`Phase` records, in the order they ran, with the bound each achieved.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from .problem import OPTIMAL_RTOL

if TYPE_CHECKING:  # pragma: no cover
    from .partition import Partition

__all__ = ["SolveResult", "Termination", "Quality", "Phase"]


class Termination(str, Enum):
    """Why a solve (or one of its phases) stopped."""

    COMPLETED = "completed"        # ran to its natural end
    TIME_LIMIT = "time_limit"      # the time limit stopped it; the best so far is returned
    INTERRUPTED = "interrupted"    # Ctrl-C stopped it; the best so far is returned
    CAPPED = "capped"              # an exact method hit a state cap (ideals, memory, pairs)
    ERROR = "error"                # a solver failed (a MIP backend error, ...)

    def __str__(self) -> str:
        return self.value


class Quality(str, Enum):
    """How good the returned answer is."""

    OPTIMAL = "optimal"            # UB <= LB * (1 + OPTIMAL_RTOL): proven optimal
    FEASIBLE = "feasible"          # a valid partition; optimality not proven
    INFEASIBLE = "infeasible"      # proven: no partition meets the constraints
    NO_SOLUTION = "no_solution"    # none found, infeasibility not proven

    def __str__(self) -> str:
        return self.value


#: the worse of two terminations, for a solve made of several phases.
_TERMINATION_RANK = {Termination.COMPLETED: 0, Termination.CAPPED: 1,
                     Termination.TIME_LIMIT: 2, Termination.ERROR: 3,
                     Termination.INTERRUPTED: 4}


def worst_termination(*items: Termination) -> Termination:
    """The most severe of several terminations (interrupted > error > time limit > capped)."""
    return max(items, key=_TERMINATION_RANK.__getitem__, default=Termination.COMPLETED)


@dataclass(frozen=True)
class Phase:
    """One step of a solve: what ran, for how long, why it stopped and what it achieved.

    ``upper_bound`` is the bottleneck of the partition the step produced (``inf`` if
    none) and ``lower_bound`` the bound it proved (0 if none). ``detail`` holds
    step-specific numbers (sub-timings, counts).
    """

    name: str
    seconds: float
    termination: Termination = Termination.COMPLETED
    upper_bound: float = math.inf
    lower_bound: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seconds": self.seconds,
                "termination": self.termination.value,
                "upper_bound": _num(self.upper_bound), "lower_bound": _num(self.lower_bound),
                "detail": _jsonable(self.detail)}


@dataclass
class SolveResult:
    """Outcome of a solve: a partition (upper bound), a lower bound and how each was obtained.

    Attributes
    ----------
    partition : Partition or None
        The best valid partition found.
    upper_bound, lower_bound : float
        Its bottleneck, and a proven lower bound on the optimum (0 when none).
    quality, termination : Quality, Termination
        How good the answer is, and why the solve stopped.
    upper_bound_source, lower_bound_source : str
        The phase that produced the partition and the bound that proved ``lower_bound``.
    phases : list of Phase
        Every step in the order it ran (provenance and timings).
    method : str
        The method that was asked for (``"auto"``, ``"slicegraph"``, ...).

    ``gap = upper_bound / lower_bound - 1`` is never reported smaller than proven.
    """

    partition: "Partition | None"
    upper_bound: float = math.inf
    lower_bound: float = 0.0
    quality: Quality = Quality.NO_SOLUTION
    termination: Termination = Termination.COMPLETED
    upper_bound_source: str = ""
    lower_bound_source: str = ""
    phases: list[Phase] = field(default_factory=list)
    method: str = ""
    wall_time: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    @property
    def bottleneck(self) -> float:
        return self.upper_bound

    @property
    def gap(self) -> float:
        """``UB / LB - 1`` (0 when UB <= LB, ``inf`` without a positive bound or partition)."""
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
        """Whether a valid partition was found."""
        return self.partition is not None

    @property
    def timings(self) -> dict[str, float]:
        """Seconds per phase (phases that ran twice are summed)."""
        out: dict[str, float] = {}
        for p in self.phases:
            out[p.name] = out.get(p.name, 0.0) + p.seconds
        return out

    def settle_quality(self) -> None:
        """Set :attr:`quality` from the bounds (OPTIMAL when UB <= LB (1 + OPTIMAL_RTOL))."""
        if self.partition is None:
            if self.quality is not Quality.INFEASIBLE:
                self.quality = Quality.NO_SOLUTION
        elif self.upper_bound <= self.lower_bound * (1.0 + OPTIMAL_RTOL):
            self.quality = Quality.OPTIMAL
        else:
            self.quality = Quality.FEASIBLE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (strict JSON: non-finite numbers become ``null``)."""
        part = self.partition
        out: dict[str, Any] = {
            "quality": self.quality.value,
            "termination": self.termination.value,
            "method": self.method,
            "upper_bound": _num(self.upper_bound),
            "lower_bound": _num(self.lower_bound),
            "gap": _num(self.gap),
            "upper_bound_source": self.upper_bound_source,
            "lower_bound_source": self.lower_bound_source,
            "k": part.k if part is not None else None,
            "stage": part.stage.tolist() if part is not None else None,
            "stages": part.breakdown().to_records() if part is not None else None,
            "wall_time": self.wall_time,
            "phases": [p.to_dict() for p in self.phases],
            "stats": _jsonable({k: v for k, v in self.stats.items()}),
            "message": self.message,
        }
        return out

    def __repr__(self) -> str:
        return (f"SolveResult(quality={self.quality.value!r}, "
                f"termination={self.termination.value!r}, "
                f"upper_bound={self.upper_bound:.6g}, lower_bound={self.lower_bound:.6g}, "
                f"gap={self.gap:.3g}, wall_time={self.wall_time:.3g}s)")


def _num(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _jsonable(obj: Any) -> Any:
    """Strict-JSON copy: non-finite floats become None, numpy scalars Python numbers,
    anything else that is not JSON becomes its ``str``."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Enum):
        return obj.value
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)
