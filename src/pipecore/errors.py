"""Exception hierarchy.

Every problem with user input raises a subclass of :class:`InvalidGraphError`
(itself a ``ValueError``), so callers can catch one family; the subclasses say
exactly what was wrong and name the offending node, field or value.
"""
from __future__ import annotations

from typing import Any, Iterable


class PipecoreError(Exception):
    """Base class of every pipecore exception."""


class InvalidGraphError(PipecoreError, ValueError):
    """The graph or the problem posed on it is invalid."""


class EmptyGraphError(InvalidGraphError):
    """The graph has no nodes."""


class CycleError(InvalidGraphError):
    """The graph has a directed cycle; ``cycle`` lists its nodes in order."""

    def __init__(self, message: str, cycle: Iterable[Any] = ()) -> None:
        super().__init__(message)
        self.cycle = list(cycle)


class SelfLoopError(InvalidGraphError):
    """An edge goes from a node to itself."""


class InvalidCostError(InvalidGraphError):
    """A cost (work, comm, mem) is negative, NaN or infinite, or has the wrong shape."""


class UnknownNodeError(InvalidGraphError):
    """An edge or a partition names a node that does not exist."""


class DuplicateNodeError(InvalidGraphError):
    """Two nodes share one id."""


class InvalidStageCountError(InvalidGraphError):
    """The number of stages k is not an integer >= 1."""


class InfeasibleMemoryError(InvalidGraphError):
    """No k-partition can respect the memory cap."""


class InvalidPartitionError(InvalidGraphError):
    """A stage assignment is malformed (wrong length, stage out of range)."""


class GraphTooLargeError(PipecoreError, MemoryError):
    """Solving this graph needs more memory than the machine has (estimated up front, so
    the process fails with this message instead of being killed by the system)."""


class FileFormatError(PipecoreError, ValueError):
    """A file is malformed; the message names the field and its position."""


class SolverError(PipecoreError, RuntimeError):
    """A solver or backend failed in a way the caller cannot fix by changing input."""


class InvalidOptionError(PipecoreError, ValueError):
    """A solver option is unknown, has the wrong type or is out of range; the message
    lists what is accepted."""


class BudgetExceededError(PipecoreError, RuntimeError):
    """An exact method hit its configured cap before finishing.

    Attributes
    ----------
    reason : str
        Which cap: ``"ideals"``, ``"memory"``, ``"pairs"`` or ``"time"``.
    partition : Partition or None
        The best valid partition known when the cap was hit.
    stats : dict
        What the method had counted (ideals, pairs, ...).
    """

    def __init__(self, message: str, reason: str, partition: Any = None,
                 stats: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.partition = partition
        self.stats = dict(stats or {})
