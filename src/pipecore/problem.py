"""The problem every method solves: a graph, a stage count and a memory model, validated once.

:class:`Problem` is built by :func:`pipecore.solve` (or by hand) and passed down to
every method, bound and kernel, so ``k``, the memory cap and the training
semantics are checked in one place. The numeric tolerances every component
shares are defined here and nowhere else.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

from . import errors
from ._runtime import require_memory
from ._validate import INT32_MAX, as_float, as_int
from .graph import Graph

if TYPE_CHECKING:  # pragma: no cover
    from .partition import Partition

__all__ = ["Problem", "Schedule", "MEM_RTOL", "OPTIMAL_RTOL", "ROUND_RTOL", "check_k"]

#: memory comparisons accept ``used <= cap * (1 + MEM_RTOL)`` (summation rounding only).
MEM_RTOL = 1e-12
#: a result is reported *optimal* when ``UB <= LB * (1 + OPTIMAL_RTOL)``. The reported
#: ``gap`` is always the honest ``UB / LB - 1``; this only names the quality.
OPTIMAL_RTOL = 1e-6
#: relative rounding of exact floating-point arguments: an exact method's own bound is
#: floored by it, and "strictly better" means better by more than it.
ROUND_RTOL = 1e-12


def check_k(k: Any) -> int:
    """``k`` as an int in ``1 .. 2**31 - 1`` (stage indices are int32), else
    :class:`~pipecore.InvalidStageCountError`.

    Examples
    --------
    >>> check_k(4)
    4
    >>> check_k(0)
    Traceback (most recent call last):
    ...
    pipecore.errors.InvalidStageCountError: k must be >= 1, got 0
    """
    return as_int(k, "k", minimum=1, maximum=INT32_MAX, error=errors.InvalidStageCountError)


class Schedule(str, Enum):
    """How the memory cap applies to a stage.

    ``PLAIN``: a stage holds ``sum(mem + act_mem)`` (one micro-batch in flight).
    ``ONE_F_ONE_B``: the 1F1B pipeline schedule; a stage holds its static memory plus
    the activations of every micro-batch in flight there, ``sum(mem) + f * sum(act_mem)``,
    where ``f`` is the number of non-empty stages from it to the last one (the last
    stage holds one micro-batch, the first of ``k'`` non-empty stages ``k'``). With the
    empty stages placed first this is DESIGN.md's ``k - i`` for stage ``i``; both have
    the same optimum, and pipecore's methods return 1F1B partitions with empty stages
    first, so they are valid under either reading.
    """

    PLAIN = "plain"
    ONE_F_ONE_B = "1f1b"


#: estimated peak bytes of a solve per node and per edge (measured: 1.34 GB for 1M nodes
#: and 2M edges, whole process); a graph that cannot fit is refused before any work.
SOLVE_BYTES_PER_NODE = 1000
SOLVE_BYTES_PER_EDGE = 200


@dataclass(frozen=True, eq=False)
class Problem:
    """A validated instance: ``graph`` split into ``k`` stages under a memory model.

    Parameters
    ----------
    graph : Graph
    k : int
        Number of stages, ``1 <= k <= 2**31 - 1``; stages may stay empty, and stages
        beyond the number of colocation classes always do (they cost nothing).
    mem_cap : float, optional
        Per-stage memory capacity (``None``: no cap).
    schedule : {"plain", "1f1b"}
        How the cap applies (see :class:`Schedule`).

    Raises
    ------
    InvalidStageCountError, InvalidCostError, InfeasibleMemoryError
        ``k`` is not an integer >= 1; the cap is not a finite number >= 0; or a
        necessary condition of feasibility fails (a node or a colocation class
        larger than the cap, or more memory in total than ``k`` stages hold).
    GraphTooLargeError
        Solving would need more memory than the machine has
        (:data:`SOLVE_BYTES_PER_NODE` per node plus :data:`SOLVE_BYTES_PER_EDGE` per edge).

    Examples
    --------
    >>> from pipecore import Graph
    >>> g = Graph(3, [0, 1], [1, 2], work=[1, 2, 3], mem=[1, 1, 1])
    >>> p = Problem(g, 2, mem_cap=2)
    >>> p.k, p.k_eff, p.cap_limit > 2
    (2, 2, True)
    """

    graph: Graph
    k: int
    mem_cap: float | None = None
    schedule: Schedule | str = Schedule.PLAIN
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.graph, Graph):
            raise TypeError(f"graph must be a pipecore.Graph, got {type(self.graph).__name__}")
        object.__setattr__(self, "k", check_k(self.k))
        g = self.graph
        require_memory(SOLVE_BYTES_PER_NODE * g.n + SOLVE_BYTES_PER_EDGE * g.m,
                       f"solving a graph of {g.n:,} nodes and {g.m:,} edges")
        try:
            schedule = Schedule(self.schedule)
        except ValueError:
            raise errors.InvalidGraphError(
                f"schedule must be one of {[s.value for s in Schedule]}, got {self.schedule!r}"
            ) from None
        object.__setattr__(self, "schedule", schedule)
        if self.mem_cap is not None:
            cap = as_float(self.mem_cap, "mem_cap", minimum=0.0, error=errors.InvalidCostError)
            object.__setattr__(self, "mem_cap", cap)
            self._check_memory()

    # ------------------------------------------------------------------ derived, cached
    @property
    def n_classes(self) -> int:
        """Number of colocation classes (the units every method places)."""
        return self.graph.contract().graph.n

    @property
    def k_eff(self) -> int:
        """``min(k, classes)``: more stages than classes only adds empty ones."""
        return min(self.k, self.n_classes)

    @property
    def cap_limit(self) -> float:
        """The cap every kernel compares stage memory against: ``cap * (1 + MEM_RTOL)``
        (``inf`` without a cap)."""
        return math.inf if self.mem_cap is None else self.mem_cap * (1.0 + MEM_RTOL)

    @property
    def is_training(self) -> bool:
        return self.graph.is_training

    @property
    def stage_mem(self) -> np.ndarray:
        """Memory per node as the plain schedule counts it: ``mem + act_mem``."""
        key = "stage_mem"
        if key not in self._cache:
            g = self.graph
            arr = g.mem + g.act_mem if g.act_mem.any() else g.mem
            self._cache[key] = arr
        out: np.ndarray = self._cache[key]
        return out

    def inflight(self, k: int | None = None) -> np.ndarray:
        """Activation multiplier of each of ``k`` stage positions (default ``k_eff``),
        for kernels that count memory by position with empty stages first:
        ones for the plain schedule, ``k, k-1, ..., 1`` for 1F1B."""
        k = self.k_eff if k is None else k
        if self.schedule is Schedule.PLAIN:
            return np.ones(k)
        return np.arange(k, 0, -1, dtype=np.float64)

    # ------------------------------------------------------------------ partitions
    def partition(self, stage: Any) -> "Partition":
        """A :class:`~pipecore.Partition` of this problem's graph with ``k`` stages."""
        from .partition import Partition

        return Partition(self.graph, stage, self.k)

    def expand(self, stage_eff: np.ndarray) -> "Partition":
        """A k-stage partition from a stage vector over ``k_eff`` stages: unchanged for the
        plain schedule, shifted so the empty stages come first for 1F1B."""
        stage = np.asarray(stage_eff, dtype=np.int64)
        if self.schedule is Schedule.ONE_F_ONE_B:
            used = int(stage.max()) + 1 if stage.size else 1
            stage = stage + (self.k - used)
        return self.partition(stage)

    def violations(self, partition: "Partition", limit: int = 10) -> list[str]:
        """Why ``partition`` is invalid for this problem (empty when valid)."""
        return partition.violations(self.mem_cap, schedule=self.schedule, limit=limit)

    def is_valid(self, partition: "Partition") -> bool:
        return not self.violations(partition, limit=1)

    # ------------------------------------------------------------------ validation
    def _check_memory(self) -> None:
        """Necessary conditions for feasibility (sufficient ones are NP-hard to decide)."""
        g, cap = self.graph, float(self.mem_cap)  # type: ignore[arg-type]
        limit = self.cap_limit
        need = g.mem + g.act_mem           # every stage holds at least one micro-batch
        if need.max() > limit:
            v = int(np.argmax(need))
            raise errors.InfeasibleMemoryError(
                f"node {g.name(v)!r} needs mem {need[v]:g} > mem_cap {cap:g}: no partition fits")
        con = g.contract()
        cls_need = np.bincount(con.node_map, weights=need, minlength=con.graph.n)
        if cls_need.max() > limit:
            c = int(np.argmax(cls_need))
            members = con.members(c)
            names = ", ".join(repr(g.name(int(v))) for v in members[:5])
            more = ", ..." if members.size > 5 else ""
            raise errors.InfeasibleMemoryError(
                f"nodes {names}{more} must share a stage (colocation group, training colour "
                f"class, or a cycle they create) but need mem {cls_need[c]:g} > mem_cap {cap:g}")
        total = float(need.sum())
        if total > self.k_eff * limit:
            raise errors.InfeasibleMemoryError(
                f"total mem {total:g} > k * mem_cap = {self.k_eff} * {cap:g}: "
                f"no {self.k}-partition fits")

    def __repr__(self) -> str:
        cap = "" if self.mem_cap is None else f", mem_cap={self.mem_cap:g}"
        sched = "" if self.schedule is Schedule.PLAIN else f", schedule={Schedule(self.schedule).value!r}"
        return f"Problem({self.graph!r}, k={self.k}{cap}{sched})"
