"""SliceGraph: BRKGA over topological orders with the exact slicing DP as fitness.

DESIGN.md section 2. A chromosome is one random key per quotient node (colocation
classes stay whole); the decoder is Kahn's algorithm emitting the ready node
with the smallest key, expanded to original nodes; its fitness is the optimal
k-slicing of that order under the full cost model (:class:`Slicer`, native).
Some topological order's optimal slicing is a global optimum, so the search
space loses nothing. Evolution is the standard biased random-key GA: the elite
survive, mutants are fresh random vectors, and each child takes every key from
its elite parent with probability ``rho``. The initial population is seeded with
BFS, DFS, critical-path and ASAP orders. Everything is deterministic for a seed
(numpy ``Generator``), except where a time limit cuts the run short.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as futures_wait
from typing import Any

import numpy as np

from .. import errors
from .._native import _graph, _slicing
from .._runtime import Budget, ProgressFn, clock, no_progress
from ..graph import Graph
from ..options import Option, method
from ..partition import Partition
from ..problem import ROUND_RTOL, Problem, Schedule
from ..result import Quality, SolveResult, Termination

__all__ = ["slice_order", "solve_slicegraph", "seed_orders", "expand_order", "topo_members",
           "make_slicer"]


def make_slicer(problem: Problem, k: int | None = None,
                max_store: int = 20_000_000) -> Any:
    """The native slicing DP for ``problem`` with ``k`` stages (default ``k_eff``)."""
    g = problem.graph
    return _slicing.Slicer(g, g.contract(), problem.k_eff if k is None else k,
                           problem.stage_mem, problem.cap_limit, max_store,
                           one_f_one_b=problem.schedule is Schedule.ONE_F_ONE_B)


def _check_order(graph: Graph, con, order) -> np.ndarray:
    order = np.ascontiguousarray(order, dtype=np.int64)
    n = graph.n
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        raise errors.InvalidPartitionError("order must be a permutation of the n node indices")
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n)
    src, dst = graph.precedence_edges()   # training graphs: forward order only (section 1b)
    back = np.flatnonzero(pos[src] >= pos[dst])
    if back.size:
        e = int(back[0])
        raise errors.InvalidPartitionError(
            f"order is not topological: edge {graph.name(int(src[e]))!r} -> "
            f"{graph.name(int(dst[e]))!r} goes backward")
    cls = con.node_map[order]
    runs = 1 + int(np.count_nonzero(cls[1:] != cls[:-1]))
    if runs != con.graph.n:
        raise errors.InvalidPartitionError(
            "order splits a colocation group (members of a group must be contiguous)")
    return order.astype(np.int32)


def slice_order(graph: Graph, order: Any, k: int, mem_cap: float | None = None,
                schedule: str = "plain") -> tuple[float, Partition | None]:
    """Optimal k-slicing of a topological order: ``(bottleneck, partition)``.

    ``order`` lists every node once, edges forward, colocation groups contiguous. The
    result is the best partition whose stages are contiguous runs of ``order`` (cuts
    only between groups) under the exact cost model and the memory cap;
    ``(inf, None)`` when no slicing fits the cap. See :mod:`pipecore._native._slicing`
    for the algorithm (exact; about S*(1+indeg) to enumerate the S segments that can
    matter, ~n^2/k, plus O(S) per bisection step).
    """
    problem = Problem(graph, k, mem_cap, schedule)
    order = _check_order(graph, graph.contract(), order)
    val, stage, _ = make_slicer(problem).slice_order(order)
    if not math.isfinite(val):
        return math.inf, None
    return float(val), problem.expand(stage)


def topo_members(con) -> np.ndarray:
    """Members of every class (layout of ``con.member_ptr``) in a topological order of the
    original graph, so that expanding a quotient order gives a topological order. O(n)."""
    order = np.asarray(con.original.topological_order())
    return np.ascontiguousarray(order[np.argsort(con.node_map[order], kind="stable")],
                                dtype=np.int32)


def expand_order(con, qorder) -> np.ndarray:
    """Topological order of the original nodes from a quotient order: classes contiguous,
    members of a class in topological order. O(n)."""
    qorder = np.asarray(qorder, dtype=np.int64)
    sizes = np.diff(con.member_ptr)[qorder]
    starts = con.member_ptr[:-1][qorder].astype(np.int64)
    offs = np.repeat(starts - (np.cumsum(sizes) - sizes), sizes) + np.arange(int(sizes.sum()))
    return np.ascontiguousarray(topo_members(con)[offs], dtype=np.int32)


def _keys_from_order(order: np.ndarray, q: int) -> np.ndarray:
    keys = np.empty(q, dtype=np.float64)
    keys[order] = (np.arange(q) + 0.5) / q
    return keys


def seed_orders(con) -> dict[str, np.ndarray]:
    """Good quotient orders to seed the population: BFS (Kahn FIFO), DFS (Kahn LIFO),
    critical path first (largest bottom level, work + comm), and ASAP (smallest top level). O(n log n + m)."""
    g = con.graph
    q = g.n
    out: dict[str, np.ndarray] = {}
    out["bfs"] = np.asarray(g.topological_order(), dtype=np.int32)
    indeg = np.diff(g.pred_ptr).astype(np.int32)
    dfs = np.empty(q, dtype=np.int32)
    _graph.kahn(g.succ_ptr, g.succ_idx, indeg, None, True, dfs)
    out["dfs"] = dfs
    weight = np.ascontiguousarray(g.work + g.comm)
    top, bottom = np.empty(q), np.empty(q)
    _slicing.path_levels(out["bfs"], g.succ_ptr, g.succ_idx, weight, top, bottom)
    for name, keys in (("critical_path", -bottom), ("asap", top), ("alap", top + bottom)):
        order = np.empty(q, dtype=np.int32)
        _graph.kahn(g.succ_ptr, g.succ_idx, indeg, keys, False, order)
        out[name] = order
    return out


def _wait(fut: Any) -> Any:
    """``fut.result()`` in 50 ms waits: a SIGINT the OS delivered to a worker thread only
    raises KeyboardInterrupt once the main thread runs Python code again."""
    while True:
        try:
            return fut.result(timeout=0.05)
        except FutureTimeout:
            continue


class _Decoder:
    """Population decoding, optionally on two threads (the kernel releases the GIL)."""

    def __init__(self, problem: Problem, workers: int, max_store: int):
        self.slicers = [make_slicer(problem, max_store=max_store) for _ in range(max(1, workers))]
        # decoding always runs off the main thread, so Ctrl-C reaches the main thread at
        # once; :meth:`abort` then stops the native loops at their next deadline check
        self.pool = ThreadPoolExecutor(len(self.slicers))

    def set_deadline(self, deadline: float) -> None:
        for s in self.slicers:
            s.deadline = deadline

    def fitness(self, keys: np.ndarray, ub: float = math.inf) -> np.ndarray:
        out = np.empty(keys.shape[0])
        if keys.shape[0] < 2:
            self.running = [self.pool.submit(self.slicers[0].decode_batch, keys, out, ub)]
            _wait(self.running[0])
            return out
        parts = np.array_split(np.arange(keys.shape[0]), len(self.slicers))
        futs = [self.pool.submit(s.decode_batch, np.ascontiguousarray(keys[p]),
                                 out[p[0]:p[-1] + 1], ub)
                for s, p in zip(self.slicers, parts) if p.size]
        self.running = futs
        for f in futs:
            _wait(f)
        return out

    def abort(self) -> None:
        """Make running native decodes stop at their next deadline check."""
        self.set_deadline(-math.inf)
        self.aborted = True

    def close(self):
        """Shut the pool down; after :meth:`abort` (Ctrl-C) without waiting for a decode
        still inside a step that does not check the deadline (it ends by itself)."""
        aborted = getattr(self, "aborted", False)
        self.pool.shutdown(wait=not aborted, cancel_futures=True)
        if aborted:  # give the decodes a moment to finish their current step
            futures_wait(getattr(self, "running", []), timeout=0.3)

    def stats(self) -> dict:
        return {"dp_checks": int(sum(s.checks for s in self.slicers)),
                "dp_recompute_mode": int(sum(s.recompute_mode_calls for s in self.slicers)),
                "dp_unproven": int(sum(s.unproven for s in self.slicers))}



OPTIONS = (
    Option("population", int, None, minimum=2, nullable=True,
           help="chromosomes per generation (default 64, 24 above 5,000 classes)"),
    Option("generations", int, None, minimum=0, nullable=True,
           help="generation cap (default: until the time limit, else 300)"),
    Option("elite", float, 0.2, minimum=0.0, maximum=1.0, strict=True,
           help="fraction of the population kept as elite"),
    Option("mutants", float, 0.15, minimum=0.0, maximum=1.0,
           help="fraction replaced by fresh random chromosomes"),
    Option("rho", float, 0.7, minimum=0.0, maximum=1.0, strict=True,
           help="probability a child inherits its elite parent's key"),
    Option("patience", int, 200, minimum=1,
           help="stop after this many generations without improvement"),
    Option("workers", int, None, minimum=1, maximum=64, nullable=True,
           help="decoding threads (default 2 above 2,000 classes on >= 2 cores)"),
    Option("max_store", int, 20_000_000, minimum=1,
           help="segments the slicing DP may store before recomputing"),
    Option("prune", float, -1.0, minimum=-1.0, nullable=True,
           help="skip the exact DP of a child that cannot beat (1 + prune) * best "
                "(-1: 0.005 above 2,000 classes, off below; None: off)"),
    Option("seeded", bool, True, help="seed the population with BFS/DFS/critical-path/"
                                      "ASAP/ALAP orders"),
)


class _BRKGA:
    """Biased random-key GA over topological orders; fitness = the optimal slicing."""

    def __init__(self, problem: Problem, budget: Budget, rng: np.random.Generator,
                 progress: ProgressFn, stop_at: float, opts: dict[str, Any]):
        self.problem, self.budget, self.rng, self.progress = problem, budget, rng, progress
        self.con = problem.graph.contract()
        self.q = q = self.con.graph.n
        self.P = P = int(opts["population"] or (64 if q <= 5000 else 24))
        if not (opts["elite"] + opts["mutants"] < 1):
            raise errors.InvalidOptionError(
                "options 'elite' + 'mutants' of method 'slicegraph' must be < 1, got "
                f"{opts['elite']} + {opts['mutants']}")
        self.n_elite = max(1, int(round(opts["elite"] * P)))
        self.n_mut = min(int(round(opts["mutants"] * P)), P - self.n_elite)
        self.n_child = P - self.n_elite - self.n_mut
        self.rho = opts["rho"]
        self.generations = opts["generations"]
        if self.generations is None:
            self.generations = 10**9 if budget.limited else 300
        self.patience = opts["patience"]
        workers = opts["workers"]
        if workers is None:
            workers = 2 if q > 2000 and (os.cpu_count() or 1) >= 2 else 1
        prune = opts["prune"]
        self.prune = (0.005 if q > 2000 else None) if prune is not None and prune < 0 else prune
        self.stop_at = stop_at
        self.dec = _Decoder(problem, workers, opts["max_store"])
        self.dec.set_deadline(budget.deadline)
        self.best_val, self.gens, self.t_best = math.inf, 0, math.nan
        self.history: list[float] = []
        self.t0 = clock()

    def done(self) -> bool:
        return self.budget.expired() or self.best_val <= self.stop_at

    def _improve(self, pop: np.ndarray, fit: np.ndarray) -> bool:
        i = int(np.argmin(fit))
        if fit[i] < self.best_val * (1 - ROUND_RTOL):
            self.best_val, self.t_best = float(fit[i]), clock() - self.t0
            return True
        return False

    def initial(self, seeded: bool) -> tuple[np.ndarray, np.ndarray]:
        """Seed orders first, one decoder batch at a time, so a huge graph still gets an
        answer under a short budget."""
        P, q = self.P, self.q
        pop = self.rng.random((P, q))
        fit = np.full(P, math.inf)
        for i, order in enumerate((seed_orders(self.con) if seeded else {}).values()):
            if i >= P:
                break
            pop[i] = _keys_from_order(order, q)
        step = len(self.dec.slicers)
        for i in range(0, P, step):
            fit[i:i + step] = self.dec.fitness(pop[i:i + step])
            self._improve(pop[i:i + step], fit[i:i + step])
            if self.done():
                break
        self.progress(self.budget.fraction(), self.best_val)
        return pop, fit

    def generation(self, pop: np.ndarray, fit: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        rank = np.argsort(fit, kind="stable")
        pop, fit = pop[rank], fit[rank]
        elite_keys = pop[:self.n_elite]
        children = np.empty((self.n_child + self.n_mut, self.q))
        if self.n_child:
            ea = self.rng.integers(0, self.n_elite, self.n_child)
            nb = self.rng.integers(self.n_elite, self.P, self.n_child)
            take = self.rng.random((self.n_child, self.q)) < self.rho
            children[:self.n_child] = np.where(take, elite_keys[ea], pop[nb])
        if self.n_mut:
            children[self.n_child:] = self.rng.random((self.n_mut, self.q))
        ub = self.best_val * (1 + self.prune) if self.prune is not None else math.inf
        child_fit = self.dec.fitness(children, ub)
        pop = np.concatenate([elite_keys, children])
        fit = np.concatenate([fit[:self.n_elite], child_fit])
        self.gens += 1
        improved = self._improve(pop, fit)
        self.history.append(self.best_val)
        limited = self.budget.limited
        self.progress(self.budget.fraction() if limited
                      else self.gens / max(1, min(self.generations, 10**6)), self.best_val)
        return pop, fit, improved

    def run(self, seeded: bool) -> Termination:
        term = Termination.COMPLETED
        try:
            pop, fit = self.initial(seeded)
            stall = 0
            while not self.done() and self.gens < self.generations and stall < self.patience:
                pop, fit, improved = self.generation(pop, fit)
                stall = 0 if improved else stall + 1
            if self.budget.expired():
                term = Termination.TIME_LIMIT
        except KeyboardInterrupt:
            term = Termination.INTERRUPTED
            self.dec.abort()
        finally:
            self.dec.close()
        return term

    def stats(self) -> dict[str, Any]:
        return {"generations": self.gens, "population": self.P, "quotient_nodes": self.q,
                "time_to_best": self.t_best, "workers": len(self.dec.slicers),
                "history_tail": self.history[-5:], **self.dec.stats()}


@method("slicegraph", OPTIONS)
def solve_slicegraph(problem: Problem, budget: Budget, *, seed: int | None = 0,
                     progress: ProgressFn = no_progress, stop_at: float = 0.0,
                     **opts: Any) -> SolveResult:
    """BRKGA over topological orders with the exact slicing DP as fitness (SliceGraph).

    Options are declared in :data:`OPTIONS`. Per generation: O(P * (decode + DP)).
    Stops at the time limit, after ``generations``, after ``patience`` generations
    without improvement, or once the best slicing reaches ``stop_at`` (a proven
    lower bound).
    """
    opts = {**{o.name: o.default for o in OPTIONS}, **opts}
    ga = _BRKGA(problem, budget, np.random.default_rng(seed), progress, stop_at, opts)
    term = ga.run(opts["seeded"])
    stats = ga.stats()
    # the slicers also saw decodes cut short by an interrupt: take their best
    val, stage = min((s.best() for s in ga.dec.slicers), key=lambda t: t[0])
    if not math.isfinite(val):
        msg = ("no slicing of any decoded order fits the memory cap"
               if term is Termination.COMPLETED else "stopped before any order was decoded")
        return SolveResult(None, quality=Quality.NO_SOLUTION, termination=term,
                           method="slicegraph", stats=stats, message=msg)
    part = problem.expand(stage)
    return SolveResult(part, upper_bound=part.bottleneck, quality=Quality.FEASIBLE,
                       termination=term, upper_bound_source="slicegraph", method="slicegraph",
                       stats=stats)
