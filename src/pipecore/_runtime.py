"""Time budgets and progress reporting shared by every long-running method.

Convention for long work: a method runs its native kernel in chunks (a
generation, a sweep, a batch of moves), and between chunks checks
``budget.expired()``, reports ``progress(fraction, best)`` and lets
``KeyboardInterrupt`` end the loop, returning the best answer found so far with
status ``interrupted``.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Callable, Optional

ProgressFn = Callable[[float, float], None]  # (fraction done in [0, 1], best value so far)


class Budget:
    """A wall-clock budget started at construction; ``time_limit=None`` means unlimited."""

    __slots__ = ("start", "time_limit")

    def __init__(self, time_limit: Optional[float] = None):
        if time_limit is not None and not (time_limit > 0):
            raise ValueError(f"time_limit must be > 0 seconds, got {time_limit!r}")
        self.start = time.perf_counter()
        self.time_limit = time_limit

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def remaining(self) -> float:
        if self.time_limit is None:
            return math.inf
        return max(0.0, self.time_limit - self.elapsed())

    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def fraction(self) -> float:
        """Share of the budget used (0 when unlimited)."""
        if self.time_limit is None:
            return 0.0
        return min(1.0, self.elapsed() / self.time_limit)

    def sub(self, share: float) -> "Budget":
        """A budget for a sub-task: ``share`` of what remains (unlimited stays unlimited)."""
        rem = self.remaining()
        return Budget(None if math.isinf(rem) else max(rem * share, 1e-3))


def no_progress(fraction: float, best: float) -> None:
    """Progress callback that does nothing."""


class ProgressBar:
    """A one-line progress bar on stderr for the CLI: ``[#####.....]  52%  best 17.79``."""

    def __init__(self, label: str, stream=None, width: int = 30, min_interval: float = 0.1):
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.min_interval = min_interval
        self._last = 0.0
        self._shown = False

    def __call__(self, fraction: float, best: float) -> None:
        now = time.perf_counter()
        if now - self._last < self.min_interval and fraction < 1.0:
            return
        self._last = now
        fraction = min(max(fraction, 0.0), 1.0)
        filled = int(round(fraction * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        best_s = f"{best:.6g}" if math.isfinite(best) else "-"
        self.stream.write(f"\r{self.label} [{bar}] {fraction * 100:3.0f}%  best {best_s}  ")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
