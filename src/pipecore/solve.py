"""The one dispatch point: ``solve(graph, k, method=...)``.

Methods register here by name as ``module:function``; modules are imported only
when used. Every method function has the signature::

    fn(graph, k, *, mem_cap, budget, seed, progress, **options) -> SolveResult

and returns a valid partition of the original graph (or none, with a status
saying why). ``solve`` validates input, runs the method under one time budget,
then applies the post-steps that exist (polish, certificate).
"""
from __future__ import annotations

import importlib
import time
from typing import Any, Callable

from . import errors
from ._runtime import Budget, ProgressFn, no_progress
from .graph import Graph, check_k, check_mem_cap
from .result import SolveResult

__all__ = ["solve", "METHODS", "available_methods", "get_method"]

#: name -> ("module", "function"), in order of preference for ``method="auto"``.
METHODS: dict[str, tuple[str, str]] = {
    "ideals": ("pipecore.algorithms.ideals", "solve_ideals"),
    "slicegraph": ("pipecore.algorithms.slicegraph", "solve_slicegraph"),
    "anneal": ("pipecore.algorithms.local_search", "solve_anneal"),
    "local": ("pipecore.algorithms.local_search", "solve_local"),
    "mip": ("pipecore.bounds.mip", "solve_mip"),
    "random": ("pipecore.algorithms.baselines", "solve_random"),
    "balanced": ("pipecore.algorithms.baselines", "solve_balanced"),
    "uniform": ("pipecore.algorithms.baselines", "solve_uniform"),
}

#: what ``method="auto"`` tries, first available wins.
AUTO_ORDER = ("ideals", "slicegraph", "balanced")


def get_method(name: str) -> Callable[..., SolveResult]:
    """The function behind a method name; ``ValueError`` if unknown or not installed."""
    try:
        module, func = METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {sorted(METHODS)}") from None
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"method {name!r} is not available: {exc}") from None


def available_methods() -> list[str]:
    """Method names whose implementation imports on this installation."""
    out = []
    for name in METHODS:
        try:
            get_method(name)
        except ValueError:
            continue
        out.append(name)
    return out


def solve(graph: Graph, k: int, *, method: str = "auto", mem_cap: float | None = None,
          time_limit: float | None = None, seed: int | None = 0,
          progress: ProgressFn | None = None, polish: bool = True,
          **options: Any) -> SolveResult:
    """Partition ``graph`` into ``k`` pipeline stages minimising the bottleneck stage cost.

    Parameters
    ----------
    graph : Graph
    k : int
        Number of stages (>= 1); stages may be left empty.
    method : str
        A name in :data:`METHODS`, or ``"auto"`` for the best available.
    mem_cap : float, optional
        Per-stage memory capacity.
    time_limit : float, optional
        Wall-clock seconds for the whole solve; the best answer so far is returned
        when it runs out (status ``time_limit``) or on Ctrl-C (``interrupted``).
    seed : int, optional
        Seed for randomised methods (same seed, same answer).
    progress : callable, optional
        ``progress(fraction, best)`` called between chunks of work.
    polish : bool
        Run local search on the method's output when that module is installed.
    **options
        Passed to the method (see each method's docstring).
    """
    k = check_k(k)
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a pipecore.Graph, got {type(graph).__name__}")
    cap = check_mem_cap(graph, k, mem_cap)
    budget = Budget(time_limit)
    progress = progress or no_progress
    t0 = time.perf_counter()

    if method == "auto":
        names = [m for m in AUTO_ORDER if m in available_methods()]
        method = names[0]
    fn = get_method(method)
    result = fn(graph, k, mem_cap=cap, budget=budget, seed=seed, progress=progress, **options)
    result.timings.setdefault(method, time.perf_counter() - t0)
    if polish and result.partition is not None:
        result = _post_step("pipecore.algorithms.local_search", "polish_result", result,
                            mem_cap=cap, budget=budget, seed=seed)
    result = _post_step("pipecore.bounds", "certify", result, graph=graph, k=k,
                        mem_cap=cap, budget=budget, method=method)
    result.wall_time = time.perf_counter() - t0
    if result.partition is not None:
        problems = result.partition.violations(cap)
        if problems:  # a method bug must never reach the user as a silent wrong answer
            raise errors.SolverError(f"method {method!r} returned an invalid partition: "
                                     + "; ".join(problems))
    return result


def _post_step(module: str, func: str, result: SolveResult, **kwargs) -> SolveResult:
    """Apply an optional post-processing step if its module provides it."""
    try:
        step = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError):
        return result
    return step(result, **kwargs)
