"""Time budgets and progress reporting shared by every long-running method.

One :class:`Budget` is created by :func:`pipecore.solve` and handed down, through
the phases of the solve (:data:`PHASE_END`), to the methods and into the native
kernels, which compare :attr:`Budget.deadline` with the same monotonic clock
(``CLOCK_MONOTONIC``). Every share of the time limit is in :data:`PHASE_END`
and every minimum in :data:`FLOORS`; nothing else in pipecore divides time.

Convention for long work: a method runs its native kernel in chunks (a
generation, a sweep, a batch of moves) up to ``budget.deadline``, reports
``progress(fraction, best)`` between chunks and lets ``KeyboardInterrupt`` end
the loop, returning the best answer found so far with termination
``interrupted``.
"""
from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Callable, Optional, TextIO

from . import errors
from ._validate import as_float

__all__ = ["Budget", "ProgressFn", "ProgressBar", "no_progress", "clock", "PHASE_END",
           "PHASE_END_NO_MIP", "PHASE_END_QUICK", "SHARES", "FLOORS", "physical_memory",
           "require_memory"]

ProgressFn = Callable[[float, float], None]  # (fraction done in [0, 1], best value so far)

#: the clock of every budget; the native kernels read the same one (CLOCK_MONOTONIC).
clock = time.monotonic

#: where each phase of ``solve()`` ends, as a fraction of the time limit, when MIP bounds
#: will run. A phase that finishes early leaves its time to the next one.
PHASE_END: dict[str, float] = {
    "exact": 0.25,    # auto: the exact DP over ideals, before any heuristic
    "search": 0.45,   # auto: SliceGraph after the DP
    "refine": 0.55,   # auto: annealing from SliceGraph's partition (see SHARES); a named
                      # method (and the fallback of method="ideals") runs until here
    "polish": 0.65,   # local-search descent on the method's partition
    "bounds": 1.0,    # the certificate: combinatorial, scalable and MIP lower bounds
}
#: the same when the graph is too large for MIP bounds but not for the station bound
#: (its transitive closure takes ~2.5 s at 100k classes), which gets the last 10%.
PHASE_END_NO_MIP: dict[str, float] = {"exact": 0.25, "search": 0.7, "refine": 0.8,
                                      "polish": 0.9, "bounds": 1.0}
#: the same when only the quick bounds apply (well under a second): the search gets
#: nearly all the time.
PHASE_END_QUICK: dict[str, float] = {"exact": 0.25, "search": 0.75, "refine": 0.85,
                                     "polish": 0.95, "bounds": 1.0}
#: splits inside one method's budget.
SHARES: dict[str, float] = {
    "anneal_cooling": 0.9,   # annealing cools over this share of its budget, then descends
    # auto's refine phase lasts at most this share of the time limit, so that when
    # SliceGraph stops early the certificate still gets the time it would have had
    "refine": 0.1,
}
#: minimum seconds worth starting a step with; with less left the step is skipped.
FLOORS: dict[str, float] = {
    "mip": 0.5,         # a MIP (its model must load and pass presolve before it can stop)
    "fallback": 0.05,   # a fallback heuristic after an exact method gave up
}


def physical_memory() -> int:
    """Bytes of RAM of this machine (0 when the OS does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return 0


def require_memory(need: float, what: str) -> None:
    """Raise :class:`~pipecore.GraphTooLargeError` when ``what`` needs more than this
    machine's RAM (``need`` bytes, estimated before anything is allocated)."""
    from .errors import GraphTooLargeError

    have = physical_memory()
    if have and need > have:
        raise GraphTooLargeError(f"{what} needs about {need / 2**30:.1f} GiB; this machine "
                                 f"has {have / 2**30:.1f} GiB")


class Budget:
    """A wall-clock budget: ``time_limit`` seconds from creation (``None``: unlimited).

    Examples
    --------
    >>> b = Budget(10.0)
    >>> 9.0 < b.remaining() <= 10.0, b.expired()
    (True, False)
    >>> Budget(None).remaining()
    inf
    >>> half = b.until(0.5)          # a phase that must end halfway through
    >>> half.remaining() <= 5.0
    True
    """

    __slots__ = ("start", "deadline", "time_limit")

    def __init__(self, time_limit: Optional[float] = None, *, deadline: float | None = None,
                 start: float | None = None):
        if time_limit is not None:
            time_limit = as_float(time_limit, "time_limit", minimum=0.0, strict_minimum=True,
                                  allow_inf=True, error=errors.InvalidOptionError)
            if math.isinf(time_limit):
                time_limit = None
        self.start = clock() if start is None else start
        self.time_limit = time_limit
        self.deadline = (self.start + time_limit if time_limit is not None else math.inf)
        if deadline is not None:
            self.deadline = min(self.deadline, deadline)

    def elapsed(self) -> float:
        return clock() - self.start

    def remaining(self) -> float:
        return max(0.0, self.deadline - clock())

    def expired(self) -> bool:
        return clock() >= self.deadline

    @property
    def limited(self) -> bool:
        return math.isfinite(self.deadline)

    def fraction(self) -> float:
        """Share of the budget used (0 when unlimited)."""
        if not self.limited:
            return 0.0
        span = self.deadline - self.start
        return 1.0 if span <= 0 else min(1.0, self.elapsed() / span)

    def until(self, fraction: float) -> "Budget":
        """The part of this budget that ends at ``fraction`` of its span (unlimited stays
        unlimited). Used for the phases of :data:`PHASE_END`."""
        if not self.limited:
            return Budget(None)
        end = self.start + fraction * (self.deadline - self.start)
        return Budget(None, deadline=min(end, self.deadline))

    def child(self, seconds: float | None) -> "Budget":
        """A budget of at most ``seconds`` from now that never outlives this one."""
        b = Budget(None, deadline=self.deadline)
        if seconds is not None:
            b.deadline = min(b.deadline, clock() + max(0.0, seconds))
        return b

    def __repr__(self) -> str:
        if not self.limited:
            return "Budget(unlimited)"
        return f"Budget({self.remaining():.3g} s left)"


def no_progress(fraction: float, best: float) -> None:
    """Progress callback that does nothing."""


class ProgressBar:
    """A one-line progress bar on stderr for the CLI: ``[#####.....]  52%  best 17.79``.

    It draws as soon as it is created (so a long solve shows life at once) and at most
    every ``min_interval`` seconds after that.
    """

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30,
                 min_interval: float = 0.1):
        self.label = label
        self.stream: Any = stream or sys.stderr
        self.width = width
        self.min_interval = min_interval
        self._last = -math.inf
        self._shown = False
        self._best = math.inf
        self(0.0, math.inf)

    def __call__(self, fraction: float, best: float) -> None:
        now = clock()
        if math.isfinite(best):
            self._best = min(self._best, best)
        if now - self._last < self.min_interval and fraction < 1.0:
            return
        self._last = now
        fraction = min(max(fraction, 0.0), 1.0)
        filled = int(round(fraction * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        best_s = f"{self._best:.6g}" if math.isfinite(self._best) else "-"
        self.stream.write(f"\r{self.label} [{bar}] {fraction * 100:3.0f}%  best {best_s}  ")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
