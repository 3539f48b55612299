"""Search baselines for MCM partitioning at a fixed budget of cost-model evaluations.

- :func:`random_search`: uniform random chip per node, repaired by the same native
  greedy repair the policy's samples go through, scored by the MCM cost model.
- :func:`anneal`: simulated annealing with the native MCM kernel (one evaluation
  per feasible proposed move, O(deg + C) each; infeasible proposals are rejected
  before evaluation and not counted), started from the repaired work-balanced split.
- :func:`slicegraph`: pipecore's non-learned SliceGraph (``pipecore.solve(...,
  method="slicegraph")``, optimising the plain pipeline cost with the SRAM as
  memory cap), scored under the MCM model.

Every function returns a :class:`SearchResult` whose ``trace`` records the best
bottleneck against the number of evaluations, so methods compare at equal budgets.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .._native import _mcm
from .costmodel import MCMProblem
from .repair import greedy_repair, greedy_repair_batch

__all__ = ["SearchResult", "random_search", "anneal", "slicegraph"]


@dataclass
class SearchResult:
    """Best valid assignment found, its bottleneck and the best-so-far trace."""

    chip: np.ndarray | None
    bottleneck: float
    evaluations: int
    method: str
    wall_time: float = 0.0
    trace_evals: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    trace_best: np.ndarray = field(default_factory=lambda: np.zeros(0))
    stats: dict = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        if self.chip is None or not math.isfinite(self.bottleneck):
            return 0.0
        return math.inf if self.bottleneck == 0 else 1.0 / self.bottleneck

    def evals_to_reach(self, bottleneck: float) -> float:
        """Evaluations until the best-so-far bottleneck was <= ``bottleneck`` (inf if never)."""
        hit = np.flatnonzero(self.trace_best <= bottleneck * (1 + 1e-9))
        return float(self.trace_evals[hit[0]]) if hit.size else math.inf


def random_search(problem: MCMProblem, budget: int = 1000, *, seed: int = 0,
                  batch: int = 64, use_all_chips: bool = False) -> SearchResult:
    """Best of ``budget`` uniformly random proposals after greedy repair. O(budget (n + m) C)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    n, C = problem.graph.n, problem.C
    best, best_chip = math.inf, None
    evals, trace = [], []
    done = 0
    while done < budget:
        b = min(batch, budget - done)
        props = rng.integers(0, C, size=(b, n), dtype=np.int32)
        chips, ok, _ = greedy_repair_batch(problem, props, use_all_chips)
        bott, valid = problem.evaluate(chips)
        bott = np.where(valid & ok, bott, np.inf)
        run = np.minimum.accumulate(bott)
        i = int(np.argmin(bott))
        if bott[i] < best:
            best, best_chip = float(bott[i]), chips[i].copy()
        evals.append(done + 1 + np.arange(b))
        trace.append(np.minimum(run, trace[-1][-1] if trace else np.inf))
        done += b
    return SearchResult(best_chip, best, done, "random", time.perf_counter() - t0,
                        np.concatenate(evals), np.concatenate(trace))


def anneal(problem: MCMProblem, budget: int = 1000, *, seed: int = 0, init=None,
           use_all_chips: bool = False, t_start: float = 0.05, t_end: float = 1e-4,
           trace_points: int = 200) -> SearchResult:
    """Simulated annealing for ``budget`` evaluated moves (each one cost evaluation).

    Starts from ``init`` (a valid assignment) or the greedy repair of the
    work-balanced split; temperatures are relative to the start bottleneck. Moves
    shift a colocation class to an adjacent chip when all constraints stay met.
    """
    t0 = time.perf_counter()
    if init is None:
        rep = greedy_repair(problem, problem.reference_chips, use_all_chips=use_all_chips)
        if not rep.success:
            return SearchResult(None, math.inf, 0, "anneal", time.perf_counter() - t0,
                                stats={"message": "no valid start: " + rep.message})
        init = rep.chip
    chip = np.ascontiguousarray(init, dtype=np.int32).copy()
    if problem.violations(chip):
        raise ValueError("anneal: init is not valid: " + "; ".join(problem.violations(chip)))
    b0 = float(problem.evaluate(chip)[0][0])
    g, q, con = problem.graph, problem.quotient, problem.contraction
    best_chip = chip.copy()
    T = max(1, min(trace_points, budget))
    trace = np.full(T, b0)
    best, accepted, evaluated = _mcm.anneal(
        g.succ_ptr, g.succ_idx, g.pred_ptr, g.pred_idx, g.work, g.comm,
        con.member_ptr, con.member_idx, q.succ_ptr, q.succ_idx, q.pred_ptr, q.pred_idx,
        np.ascontiguousarray(q.mem), problem.inv_rate, problem.inv_bw, problem.lathops,
        problem.sram, bool(use_all_chips), chip, best_chip, int(budget),
        t_start * b0, t_end * b0, int(seed) & 0xFFFFFFFFFFFF, trace)
    evals = ((np.arange(T) + 1) * budget) // T
    bott = float(problem.evaluate(best_chip)[0][0])
    return SearchResult(best_chip, bott, int(evaluated), "anneal", time.perf_counter() - t0,
                        evals.astype(np.int64), trace, {"accepted": int(accepted), "start": b0})


def slicegraph(problem: MCMProblem, *, time_limit: float = 10.0, seed: int = 0,
               **options) -> SearchResult:
    """pipecore's SliceGraph on the plain pipeline cost, scored under the MCM model.

    Uses k = C stages and the smallest chip SRAM as memory cap; the partition is
    then evaluated (and, if the MCM model disagrees on validity, greedily repaired).
    Raises ``ValueError`` when the slicegraph method is not installed.
    """
    from ..solver import solve

    t0 = time.perf_counter()
    cap = float(problem.sram.min())
    res = solve(problem.graph, problem.C, method="slicegraph",
                mem_cap=cap if math.isfinite(cap) else None, time_limit=time_limit, seed=seed,
                **options)
    if res.partition is None:
        return SearchResult(None, math.inf, 0, "slicegraph", time.perf_counter() - t0,
                            stats={"message": res.message, "status": res.quality.value})
    chip = np.ascontiguousarray(res.partition.stage, dtype=np.int32)
    if problem.violations(chip):
        rep = greedy_repair(problem, chip)
        chip = rep.chip
    bott = float(problem.evaluate(chip)[0][0]) if chip is not None else math.inf
    return SearchResult(chip, bott, 0, "slicegraph", time.perf_counter() - t0,
                        stats={"pipeline_bottleneck": res.upper_bound, "status": res.quality.value})
