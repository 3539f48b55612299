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
from .result import SolveResult, Status

__all__ = ["solve", "METHODS", "available_methods", "get_method"]

#: name -> ("module", "function"); modules are imported on first use.
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

#: the upper-bound pipeline of ``method="auto"`` (see :func:`_auto`).
AUTO_ORDER = ("ideals", "slicegraph", "balanced", "uniform")


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
        Passed to the method (see each method's docstring), except the certificate
        options: ``bounds`` (default True: attach a proven lower bound with the
        budget left after the upper bound), ``mip_backend`` ("auto", "highs",
        "gurobi") and ``jobs`` (parallel MIPs).

    With ``method="auto"`` one budget covers the whole pipeline: exact DP over
    ideals when it fits, else SliceGraph (else the 1-D baselines), then local
    polish, then the certificate (combinatorial bounds and MIP bounds). The result
    says which method produced the UB and which the LB, with timings.
    """
    k = check_k(k)
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a pipecore.Graph, got {type(graph).__name__}")
    cap = check_mem_cap(graph, k, mem_cap)
    budget = Budget(time_limit)
    progress = progress or no_progress
    t0 = time.perf_counter()
    cert_opts = {key: options.pop(key) for key in _CERTIFY_OPTIONS if key in options}
    bounds = cert_opts.pop("bounds", True)

    if method == "auto":
        result, method = _auto(graph, k, cap, budget, seed, progress, options)
    else:
        fn = get_method(method)
        # one budget: leave a share for the certificate unless the method bounds itself
        share = _METHOD_SHARE if _mip_bounds_apply(graph) else _NO_MIP_SHARE
        sub = budget.sub(share) if (bounds and time_limit is not None
                                    and method != "mip") else budget
        result = fn(graph, k, mem_cap=cap, budget=sub, seed=seed, progress=progress, **options)
        result.timings.setdefault(method, time.perf_counter() - t0)
    if polish and result.partition is not None:
        result = _post_step("pipecore.algorithms.local_search", "polish_result", result,
                            mem_cap=cap, budget=budget, seed=seed)
    if bounds:  # after Ctrl-C only the instant combinatorial bound, no MIPs
        if result.status == Status.INTERRUPTED:
            cert_opts["mip"] = False
        result = _post_step("pipecore.bounds", "certify", result, graph=graph, k=k,
                            mem_cap=cap, budget=budget, method=method, **cert_opts)
    result.wall_time = time.perf_counter() - t0
    if result.partition is not None:
        problems = result.partition.violations(cap)
        if problems:  # a method bug must never reach the user as a silent wrong answer
            raise errors.SolverError(f"method {method!r} returned an invalid partition: "
                                     + "; ".join(problems))
    return result


#: options of ``solve()`` consumed by the certificate step, not passed to the method.
_CERTIFY_OPTIONS = ("bounds", "mip_backend", "jobs")

#: share of a time-limited budget an explicitly chosen method gets when bounds are on.
_METHOD_SHARE = 0.6

#: share of the (remaining) budget given to each upper-bound stage of ``auto``.
_AUTO_SHARES = {"ideals": 0.3, "slicegraph": 0.4}


#: share for the upper bound when the certificate will be combinatorial only (no MIPs).
_NO_MIP_SHARE = 0.95


def _mip_bounds_apply(graph) -> bool:
    """Whether the certificate step will run MIPs on this graph (else it takes ~no time)."""
    try:
        from .bounds import MIP_MAX_CLASSES
    except ImportError:
        return False
    return graph.n <= MIP_MAX_CLASSES


#: ``auto`` skips the exact DP when the graph has more ideals than this (counted with a cap,
#: which is cheap): beyond it the DP cannot finish in a typical budget anyway.
AUTO_MAX_IDEALS = 200_000


def _too_many_ideals(graph, cap) -> bool:
    try:
        from .algorithms.ideals import count_ideals

        return count_ideals(graph, cap=AUTO_MAX_IDEALS, mem_cap=cap) > AUTO_MAX_IDEALS
    except (ImportError, AttributeError, TypeError):
        return False


def _auto(graph, k, cap, budget, seed, progress, options):
    """The best pipeline for the upper bound: exact DP over ideals when it fits (it
    stops at its state cap otherwise), then SliceGraph, then the 1-D baselines; each
    later stage runs only if no optimum was proven. The rest of the budget is left
    for the certificate. Returns (result, method label)."""
    avail = set(available_methods())
    best: SolveResult | None = None
    used = []
    for name in AUTO_ORDER:
        if name not in avail:
            continue
        if name not in _AUTO_SHARES and best is not None:
            continue  # baselines only when nothing better produced a partition
        if name == "ideals" and _too_many_ideals(graph, cap):
            continue
        share = _AUTO_SHARES.get(name, 0.05)
        if name == "slicegraph" and not _mip_bounds_apply(graph):
            share = _NO_MIP_SHARE
        sub = budget.sub(share)
        t = time.perf_counter()
        try:
            res = get_method(name)(graph, k, mem_cap=cap, budget=sub, seed=seed,
                                   progress=progress, **options)
        except MemoryError:
            continue
        res.timings.setdefault(name, time.perf_counter() - t)
        used.append(name)
        if res.partition is not None and (best is None or res.upper_bound < best.upper_bound):
            if best is not None:
                res.timings = {**best.timings, **res.timings}
                res.lower_bound = max(res.lower_bound, best.lower_bound)
            best = res
        elif best is not None:
            best.timings.update(res.timings)
            best.lower_bound = max(best.lower_bound, res.lower_bound)
        if best is not None and best.partition is not None and (
                best.status == Status.OPTIMAL
                or best.upper_bound <= best.lower_bound * (1 + 1e-9)):
            break
        if budget.expired():
            break
    if best is None:
        best = SolveResult(None, status=Status.NO_SOLUTION, method="auto",
                           message="no upper-bound method produced a valid partition")
    best.stats.setdefault("auto_pipeline", used)
    return best, best.method or "auto"


def _post_step(module: str, func: str, result: SolveResult, **kwargs) -> SolveResult:
    """Apply an optional post-processing step if its module provides it."""
    try:
        step = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError):
        return result
    return step(result, **kwargs)
