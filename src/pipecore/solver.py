"""The one dispatch point: :func:`solve` (``pipecore.solve``).

Methods register in :data:`METHODS` as ``"module:function"`` and are imported
only when used. Every method function is declared with
:func:`pipecore.options.method` (its name and options) and has the signature::

    fn(problem: Problem, budget: Budget, *, seed, progress, stop_at, **options) -> SolveResult

It returns a valid partition of ``problem`` (or none, saying why), its own proven
lower bound if it has one (an exact method's), and why it stopped; it may stop as
soon as its partition costs at most ``stop_at`` (a proven lower bound: nothing
better exists). :func:`solve` validates the problem and every option once,
splits one :class:`~pipecore._runtime.Budget` into phases
(:data:`~pipecore._runtime.PHASE_END`), runs them and records each as a
:class:`~pipecore.result.Phase`.
"""
from __future__ import annotations

import importlib
import math
from typing import Any, Callable, Mapping

from . import errors
from ._runtime import (FLOORS, PHASE_END, PHASE_END_NO_MIP, PHASE_END_QUICK, SHARES, Budget,
                       ProgressFn, clock, no_progress)
from ._validate import as_int
from .graph import Graph
from .options import Option, OptionSet
from .partition import Partition
from .problem import OPTIMAL_RTOL, Problem, Schedule
from .result import Phase, Quality, SolveResult, Termination, worst_termination

__all__ = ["solve", "METHODS", "available_methods", "get_method", "method_options"]

#: name -> "module:function"; modules are imported on first use.
METHODS: dict[str, str] = {
    "ideals": "pipecore.algorithms.ideals:solve_ideals",
    "slicegraph": "pipecore.algorithms.slicegraph:solve_slicegraph",
    "anneal": "pipecore.algorithms.local_search:solve_anneal",
    "local": "pipecore.algorithms.local_search:solve_local",
    "mip": "pipecore.algorithms.mip:solve_mip",
    "random": "pipecore.algorithms.baselines:solve_random",
    "balanced": "pipecore.algorithms.baselines:solve_balanced",
    "uniform": "pipecore.algorithms.baselines:solve_uniform",
}

#: the upper-bound pipeline of ``method="auto"``: the exact DP when the graph is narrow
#: enough, then SliceGraph; the 1-D baselines only if neither produced a partition.
AUTO_ORDER = ("ideals", "slicegraph")
AUTO_BASELINES = ("balanced", "uniform")

#: ``auto`` skips the exact DP when the graph has more ideals than this (counted with a
#: cap, which is cheap): beyond it the DP cannot finish in a typical budget anyway.
AUTO_MAX_IDEALS = 200_000

#: options of ``solve()`` itself (not of one method).
SOLVE_OPTIONS = OptionSet("solve()", [
    Option("fallback", str, "slicegraph", choices=("slicegraph", "balanced", "none"),
           help="what an exact method hands over to when it hits a cap (method='ideals')"),
])


def get_method(name: str) -> Callable[..., SolveResult]:
    """The function behind a method name; ``InvalidOptionError`` if unknown or not installed."""
    try:
        module, func = METHODS[name].split(":")
    except KeyError:
        raise errors.InvalidOptionError(
            f"unknown method {name!r}; choose from auto, {', '.join(sorted(METHODS))}") from None
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise errors.InvalidOptionError(f"method {name!r} is not available: {exc}") from None


def available_methods() -> list[str]:
    """Method names whose implementation imports on this installation."""
    out = []
    for name in METHODS:
        try:
            get_method(name)
        except errors.InvalidOptionError:
            continue
        out.append(name)
    return out


def method_options(method: str) -> list[OptionSet]:
    """The option sets ``solve(method=...)`` accepts, in lookup order (the method's own,
    or every auto-pipeline method's for ``"auto"``, then the certificate's and solve's)."""
    from .bounds.certificate import CERTIFICATE_OPTIONS

    names = [*AUTO_ORDER] if method == "auto" else [method]
    sets = [get_method(n).options for n in names]  # type: ignore[attr-defined]
    return [*sets, CERTIFICATE_OPTIONS, SOLVE_OPTIONS]


def _split_options(method: str, options: Mapping[str, Any]) -> tuple[dict[str, dict], dict, dict]:
    """Validate every option once: (per-method options, certificate options, solve options)."""
    sets = method_options(method)
    method_sets, cert_set, solve_set = sets[:-2], sets[-2], sets[-1]
    per_method: dict[str, dict] = {s.owner: {} for s in method_sets}
    cert: dict[str, Any] = {}
    own: dict[str, Any] = {}
    for key, value in options.items():
        targets = [s for s in method_sets if key in s]
        if targets:
            for s in targets:
                per_method[s.owner][key] = value
        elif key in cert_set:
            cert[key] = value
        elif key in solve_set:
            own[key] = value
        else:
            others = [n for s in (cert_set, solve_set) for n in s.options]
            first = method_sets[0]
            if len(method_sets) > 1:
                first = OptionSet("method 'auto'",
                                  [o for s in method_sets for o in s])
            raise errors.InvalidOptionError(first.unknown_message(key, others))
    validated = {s.owner: s.validate(per_method[s.owner]) for s in method_sets}
    return validated, cert_set.validate(cert), solve_set.validate(own)


def solve(graph: Graph, k: int, *, method: str = "auto", mem_cap: float | None = None,
          schedule: str = "plain", time_limit: float | None = None, seed: int | None = 0,
          progress: ProgressFn | None = None, polish: bool = True, bounds: bool = True,
          **options: Any) -> SolveResult:
    """Partition ``graph`` into ``k`` pipeline stages minimising the bottleneck stage cost.

    Parameters
    ----------
    graph : Graph
    k : int
        Number of stages (>= 1); stages may be left empty.
    method : str
        A name in :data:`METHODS`, or ``"auto"``: the exact DP over ideals when the
        graph is narrow enough, else (or when it hits a cap) SliceGraph.
    mem_cap : float, optional
        Per-stage memory capacity.
    schedule : {"plain", "1f1b"}
        How the cap applies (:class:`~pipecore.problem.Schedule`); under 1F1B a stage
        also holds the activations of its in-flight micro-batches.
    time_limit : float, optional
        Wall-clock seconds for the whole solve, certificate included; the best answer
        so far is returned when it runs out (termination ``time_limit``) or on Ctrl-C
        (``interrupted``). Without it every phase runs to its natural end.
    seed : int, optional
        Seed for randomised methods (same seed, same answer when no limit cuts in).
    progress : callable, optional
        ``progress(fraction, best)`` called between chunks of work.
    polish : bool
        Run local-search descent on the method's partition.
    bounds : bool
        Attach a proven lower bound (the certificate).
    **options
        The method's declared options (see ``pipecore.options_help(method)``), the
        certificate's (``mip``, ``mip_backend``, ``jobs``) and ``fallback``. An
        unknown or ill-typed option raises :class:`~pipecore.InvalidOptionError`.

    Returns
    -------
    SolveResult
        Partition, bounds, quality and termination, and the phases that produced them.

    Examples
    --------
    >>> import pipecore
    >>> g = pipecore.Graph(4, [0, 1, 2], [1, 2, 3], work=[1, 2, 3, 4], comm=[0.1] * 4)
    >>> res = pipecore.solve(g, 2)
    >>> res.quality.value, round(res.upper_bound, 6), res.gap < 1e-9  # LB rounded down safely
    ('optimal', 6.1, True)
    >>> pipecore.solve(g, 2, method="slicegraph", populaton=8)
    Traceback (most recent call last):
    ...
    pipecore.errors.InvalidOptionError: unknown option 'populaton' for method 'slicegraph' (did you mean 'population'?); ...
    """
    t0 = clock()
    problem = Problem(graph, k, mem_cap, schedule)
    if method != "auto" and method not in METHODS:
        raise errors.InvalidOptionError(
            f"unknown method {method!r}; choose from auto, {', '.join(sorted(METHODS))}")
    seed = None if seed is None else as_int(seed, "seed", minimum=0,
                                            error=errors.InvalidOptionError)
    if progress is not None and not callable(progress):
        raise errors.InvalidOptionError(f"progress must be callable, got {progress!r}")
    for flag, value in (("polish", polish), ("bounds", bounds)):
        if not isinstance(value, bool):
            raise errors.InvalidOptionError(f"{flag} must be True or False, got {value!r}")
    budget = Budget(time_limit)
    method_opts, cert_opts, solve_opts = _split_options(method, options)
    run = _Run(problem, budget, seed, progress or no_progress, method)
    run.execute_all(method, method_opts, cert_opts, solve_opts, polish=polish, bounds=bounds)
    result = run.result()
    result.wall_time = clock() - t0
    if result.partition is not None:
        problems = problem.violations(result.partition)
        if problems:  # a method bug must never reach the user as a silent wrong answer
            raise errors.SolverError(f"method {method!r} returned an invalid partition: "
                                     + "; ".join(problems))
    return result


class _Run:
    """The state of one solve: the best partition and bound so far, and the phases run."""

    def __init__(self, problem: Problem, budget: Budget, seed: int | None,
                 progress: ProgressFn, method: str):
        self.problem, self.budget, self.seed, self.method = problem, budget, seed, method
        self.progress = progress
        self.partition: Partition | None = None
        self.upper_bound = math.inf
        self.lower_bound = 0.0
        self.ub_source = ""
        self.lb_source = ""
        self.infeasible = False
        self.termination = Termination.COMPLETED
        self.phases: list[Phase] = []
        self.messages: list[str] = []
        self.stats: dict[str, Any] = {}
        from .bounds.certificate import mip_bounds_apply
        from .bounds.stations import station_bound_applies

        self.plan = (PHASE_END if mip_bounds_apply(problem) else
                     PHASE_END_NO_MIP if station_bound_applies(problem) else PHASE_END_QUICK)

    # ------------------------------------------------------------------ state
    @property
    def closed(self) -> bool:
        """Nothing left to do: proven optimal, proven infeasible, or interrupted."""
        if self.infeasible or self.termination is Termination.INTERRUPTED:
            return True
        return self.partition is not None and \
            self.upper_bound <= self.lower_bound * (1.0 + OPTIMAL_RTOL)

    @property
    def stop_at(self) -> float:
        return self.lower_bound * (1.0 + OPTIMAL_RTOL)

    def offer(self, partition, source: str) -> bool:
        """Keep ``partition`` if it is valid and strictly better; returns whether it was kept."""
        if partition is None or not self.problem.is_valid(partition):
            return False
        ub = partition.bottleneck
        if ub < self.upper_bound:
            self.partition, self.upper_bound, self.ub_source = partition, ub, source
            return True
        return False

    def prove(self, bound: float, source: str) -> None:
        if bound > self.lower_bound or (not self.lb_source and bound >= self.lower_bound):
            self.lower_bound, self.lb_source = bound, source

    def record(self, name: str, started: float, termination: Termination,
               ub: float = math.inf, lb: float = 0.0, detail: dict | None = None) -> None:
        self.phases.append(Phase(name, clock() - started, termination, ub, lb, detail or {}))
        if termination is not Termination.COMPLETED:
            self.termination = worst_termination(self.termination, termination)

    def phase_progress(self, start: float, end: float) -> ProgressFn:
        """Progress of one phase mapped onto the whole solve."""
        def report(fraction: float, best: float) -> None:
            frac = self.budget.fraction() if self.budget.limited else start + fraction * (end - start)
            self.progress(frac, min(best, self.upper_bound))
        return report

    # ------------------------------------------------------------------ phases
    def execute_all(self, *args: Any, **kwargs: Any) -> None:
        """:meth:`execute`; on Ctrl-C keep what was found, and when nothing was, add the
        instant work-balanced baseline (milliseconds) so an answer is always returned."""
        try:
            self.execute(*args, **kwargs)
        except KeyboardInterrupt:
            self.termination = Termination.INTERRUPTED
        if self.partition is None and self.termination is Termination.INTERRUPTED \
                and not self.infeasible:
            self.run_method("balanced", {}, Budget(1.0), 1.0, 1.0)

    def execute(self, method: str, method_opts: dict, cert_opts: dict, solve_opts: dict, *,
                polish: bool, bounds: bool) -> None:
        from .bounds.certificate import quick_bound

        started = clock()
        lb, source = quick_bound(self.problem, self.budget.until(self.plan["exact"]).deadline)
        self.prove(lb, source)
        self.record("bound:combinatorial", started, Termination.COMPLETED, lb=lb)
        self.progress(0.0, math.inf)
        if self.problem.k_eff == 1:
            self._single_stage()
            return
        if method == "auto":
            self._auto(method_opts, exact_mip=bounds and cert_opts["mip"])
        else:
            # a named method has no refine phase after it: it runs until plan["refine"]
            self.run_method(method, method_opts[f"method {method!r}"],
                            self.budget.until(self.plan["refine"]), 0.0, self.plan["refine"])
            if self.partition is None or not self.closed:
                self._fallback(method, solve_opts["fallback"])
        if polish and not self.closed and self.partition is not None:
            self._polish()
        if bounds and not self.closed:
            self._certify(cert_opts)

    def run_method(self, name: str, opts: dict, budget: Budget, f0: float, f1: float) -> SolveResult:
        started = clock()
        fn = get_method(name)
        try:
            res = fn(self.problem, budget, seed=self.seed, progress=self.phase_progress(f0, f1),
                     stop_at=self.stop_at, **opts)
        except KeyboardInterrupt:  # a method without its own handler: record the phase
            res = SolveResult(None, termination=Termination.INTERRUPTED, method=name)
        if self.offer(res.partition, name):
            pass
        self.prove(res.lower_bound, res.lower_bound_source or name)
        if res.quality is Quality.INFEASIBLE:
            self.infeasible = True
        if res.message:
            self.messages.append(res.message)
        self.record(name, started, res.termination, res.upper_bound, res.lower_bound, res.stats)
        return res

    def _single_stage(self) -> None:
        """k_eff = 1: the only partition puts everything in one stage (optimal by force)."""
        import numpy as np

        started = clock()
        part = self.problem.expand(np.zeros(self.problem.graph.n, dtype=np.int32))
        if not self.problem.is_valid(part):
            self.infeasible = True
            self.messages.append("a single stage is the only partition and it exceeds mem_cap")
            self.record("single_stage", started, Termination.COMPLETED)
            return
        self.offer(part, "single_stage")
        self.prove(self.upper_bound, "single_stage (the only partition)")
        self.record("single_stage", started, Termination.COMPLETED, self.upper_bound,
                    self.upper_bound)

    def _auto(self, method_opts: dict, exact_mip: bool) -> None:
        """The exact DP when the ideals are few, else SliceGraph, then the refine phase
        unless the certificate's exact MIP will search partitions itself (it gets the
        time instead: it proves whole rows optimal that annealing would only shorten)."""
        from .bounds.certificate import exact_mip_applies

        plan = self.plan
        if not self._too_wide(method_opts["method 'ideals'"]):
            self.run_method("ideals", method_opts["method 'ideals'"],
                            self.budget.until(plan["exact"]), 0.0, plan["exact"])
        if self.closed:
            return
        if not self.budget.expired():
            self.run_method("slicegraph", method_opts["method 'slicegraph'"],
                            self.budget.until(plan["search"]), plan["exact"], plan["search"])
        if self.partition is None and not self.closed:
            for name in AUTO_BASELINES:
                self.run_method(name, {}, self.budget.until(plan["search"]), plan["search"],
                                plan["search"])
                if self.partition is not None:
                    break
        if self.partition is not None and not self.closed and not self.budget.expired() \
                and not (exact_mip and exact_mip_applies(self.problem)):
            self._refine()

    def _refine(self) -> None:
        """Annealing from the incumbent (auto after SliceGraph): until ``plan["refine"]``
        and for at most ``SHARES["refine"]`` of the limit; without a limit, a tenth of
        the anneal method's default moves (``max(200000, 20 q)``). On random layered DAGs
        the order-slicing search stalls 1-4 % above what annealing from its answer
        reaches (bench/results/gap_dev_60s_refine.jsonl)."""
        from .algorithms.local_search import anneal_partition

        assert self.partition is not None, "refine runs only after a partition was found"
        started = clock()
        budget = self.budget.until(self.plan["refine"])
        opts: dict[str, Any] = {}
        if self.budget.time_limit is not None:
            budget = budget.child(SHARES["refine"] * self.budget.time_limit)
        else:
            opts["steps"] = max(200_000, 20 * self.problem.n_classes)
        before = self.upper_bound
        part, term = anneal_partition(
            self.problem, self.partition, budget=budget, seed=self.seed,
            progress=self.phase_progress(self.plan["search"], self.plan["refine"]), **opts)
        if term is Termination.TIME_LIMIT and not self.budget.expired():
            term = Termination.COMPLETED     # the phase's own share ran out, not the limit
        self.offer(part, f"{self.ub_source}+anneal")
        self.record("refine", started, term, self.upper_bound,
                    detail={"gain": before - self.upper_bound})

    def _too_wide(self, ideal_opts: dict) -> bool:
        from .algorithms.ideals import count_ideals

        cap = min(AUTO_MAX_IDEALS, ideal_opts.get("max_ideals") or AUTO_MAX_IDEALS)
        started = clock()
        n = count_ideals(self.problem, cap=cap,
                         deadline=self.budget.until(self.plan["exact"]).deadline)
        self.stats["ideals_counted"] = n if 0 <= n <= cap else f"> {cap}" if n > cap else "?"
        self.record("count_ideals", started, Termination.COMPLETED, detail={"ideals": n})
        return n > cap or n < 0

    def _fallback(self, method: str, fallback: str) -> None:
        """Hand over once to ``fallback`` when an exact method stopped at a cap."""
        last = self.phases[-1]
        if (fallback == "none" or self.infeasible or method != "ideals"
                or last.termination not in (Termination.CAPPED, Termination.TIME_LIMIT)):
            return
        budget = self.budget.until(self.plan["refine"])
        if budget.remaining() < FLOORS["fallback"]:
            return
        self.messages.append(f"the exact DP stopped ({last.termination.value}); "
                             f"fell back to {fallback}")
        self.run_method(fallback, {}, budget, 0.0, self.plan["refine"])

    def _polish(self) -> None:
        from .algorithms.local_search import polish_partition

        assert self.partition is not None, "polish runs only after a partition was found"
        started = clock()
        budget = self.budget.until(self.plan["polish"])
        before = self.upper_bound
        term = Termination.COMPLETED
        try:
            part = polish_partition(self.problem, self.partition, budget=budget, seed=self.seed,
                                    stop_at=self.stop_at)
        except KeyboardInterrupt:
            part, term = None, Termination.INTERRUPTED
        self.offer(part, f"{self.ub_source}+polish" if self.ub_source else "polish")
        if term is Termination.COMPLETED and budget.limited and budget.expired():
            term = Termination.TIME_LIMIT
        self.record("polish", started, term, self.upper_bound,
                    detail={"gain": before - self.upper_bound})

    def _certify(self, cert_opts: dict) -> None:
        from .bounds.certificate import certify

        cert = certify(self.problem, self.partition, budget=self.budget,
                       lower_bound=self.lower_bound, progress=self.phase_progress(
                           self.plan["polish"], 1.0), **cert_opts)
        for phase in cert.phases:
            self.phases.append(phase)
            if phase.termination is not Termination.COMPLETED:
                self.termination = worst_termination(self.termination, phase.termination)
        self.prove(cert.lower_bound, cert.source)
        if cert.partition is not None and self.offer(cert.partition, "mip:exact"):
            self.messages.append("the exact MIP found a better partition")
        if cert.infeasible and self.partition is None:
            self.infeasible = True
            self.messages.append("the exact MIP proves that no partition meets the memory cap")

    # ------------------------------------------------------------------ result
    def result(self) -> SolveResult:
        lb = self.lower_bound
        if self.partition is not None and lb > self.upper_bound:
            lb = self.upper_bound  # tolerance noise only: the optimum is at most UB
        res = SolveResult(self.partition, upper_bound=self.upper_bound, lower_bound=lb,
                          termination=self.termination, upper_bound_source=self.ub_source,
                          lower_bound_source=self.lb_source, phases=self.phases,
                          method=self.method, stats=self.stats,
                          message=" ".join(dict.fromkeys(self.messages)))
        if self.infeasible and self.partition is None:
            res.quality = Quality.INFEASIBLE
        res.settle_quality()
        return res
