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
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import errors
from .._native import _slicing
from .._runtime import Budget, no_progress
from ..graph import Graph, check_k, check_mem_cap
from ..partition import Partition
from ..result import SolveResult, Status

__all__ = ["slice_order", "solve_slicegraph", "seed_orders", "expand_order", "topo_members"]


def _make_slicer(graph: Graph, con, k: int, mem_cap, max_store: int = 20_000_000):
    return _slicing.Slicer(graph, con, k, mem_cap, max_store)


def _check_order(graph: Graph, con, order) -> np.ndarray:
    order = np.ascontiguousarray(order, dtype=np.int64)
    n = graph.n
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        raise errors.InvalidPartitionError("order must be a permutation of the n node indices")
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n)
    back = np.flatnonzero(pos[graph.src] >= pos[graph.dst])
    if back.size:
        e = int(back[0])
        raise errors.InvalidPartitionError(
            f"order is not topological: edge {graph.name(int(graph.src[e]))!r} -> "
            f"{graph.name(int(graph.dst[e]))!r} goes backward")
    cls = con.node_map[order]
    runs = 1 + int(np.count_nonzero(cls[1:] != cls[:-1]))
    if runs != con.graph.n:
        raise errors.InvalidPartitionError(
            "order splits a colocation group (members of a group must be contiguous)")
    return order.astype(np.int32)


def slice_order(graph: Graph, order, k: int, mem_cap: float | None = None
                ) -> tuple[float, Partition | None]:
    """Optimal k-slicing of a topological order: ``(bottleneck, partition)``.

    ``order`` lists every node once, edges forward, colocation groups contiguous. The
    result is the best partition whose stages are contiguous runs of ``order`` (cuts
    only between groups) under the exact cost model and the memory cap;
    ``(inf, None)`` when no slicing fits the cap. See :mod:`pipecore._native._slicing`
    for the algorithm (exact; about S*(1+indeg) to enumerate the S segments that can
    matter, ~n^2/k, plus O(S) per bisection step).
    """
    k = check_k(k)
    cap = check_mem_cap(graph, k, mem_cap)
    con = graph.contract()
    order = _check_order(graph, con, order)
    sl = _make_slicer(graph, con, k, cap)
    val, stage, _ = sl.slice_order(order)
    if not math.isfinite(val):
        return math.inf, None
    return float(val), Partition(graph, stage, k)


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
    dfs = np.empty(q, dtype=np.int32)
    _slicing.kahn_lifo(g.succ_ptr, g.succ_idx, g.pred_ptr, dfs)
    out["dfs"] = dfs
    weight = np.ascontiguousarray(g.work + g.comm)
    top, bottom = np.empty(q), np.empty(q)
    _slicing.path_levels(out["bfs"], g.succ_ptr, g.succ_idx, weight, top, bottom)
    for name, keys in (("critical_path", -bottom), ("asap", top), ("alap", top + bottom)):
        order = np.empty(q, dtype=np.int32)
        _slicing.kahn_keys(g.succ_ptr, g.succ_idx, g.pred_ptr, np.ascontiguousarray(keys), order)
        out[name] = order
    return out


class _Decoder:
    """Population decoding, optionally on two threads (the kernel releases the GIL)."""

    def __init__(self, graph, con, k, cap, workers: int, max_store: int):
        self.slicers = [_make_slicer(graph, con, k, cap, max_store) for _ in range(max(1, workers))]
        # decoding always runs off the main thread, so Ctrl-C reaches the main thread at
        # once; :meth:`abort` then stops the native loops at their next deadline check
        self.pool = ThreadPoolExecutor(len(self.slicers))

    def set_deadline(self, deadline: float) -> None:
        for s in self.slicers:
            s.deadline = deadline

    def fitness(self, keys: np.ndarray, ub: float = math.inf) -> np.ndarray:
        out = np.empty(keys.shape[0])
        if keys.shape[0] < 2:
            self.pool.submit(self.slicers[0].decode_batch, keys, out, ub).result()
            return out
        parts = np.array_split(np.arange(keys.shape[0]), len(self.slicers))
        futs = [self.pool.submit(s.decode_batch, np.ascontiguousarray(keys[p]),
                                 out[p[0]:p[-1] + 1], ub)
                for s, p in zip(self.slicers, parts) if p.size]
        for f in futs:
            f.result()
        return out

    def abort(self) -> None:
        """Make running native decodes stop at their next deadline check."""
        self.set_deadline(-math.inf)

    def close(self):
        self.pool.shutdown(wait=True)

    def stats(self) -> dict:
        return {"dp_checks": int(sum(s.checks for s in self.slicers)),
                "dp_recompute_mode": int(sum(s.recompute_mode_calls for s in self.slicers)),
                "dp_unproven": int(sum(s.unproven for s in self.slicers))}


def solve_slicegraph(graph: Graph, k: int, *, mem_cap=None, budget: Budget | None = None,
                     seed=0, progress=None, population: int | None = None,
                     generations: int | None = None, elite: float = 0.2,
                     mutants: float = 0.15, rho: float = 0.7, patience: int | None = None,
                     workers: int | None = None, max_store: int = 20_000_000,
                     prune: float | None = -1.0, seeded: bool = True, **_) -> SolveResult:
    """BRKGA over topological orders with the exact slicing DP as fitness (SliceGraph).

    Options: ``population`` (default 64, 24 above 5,000 classes), ``generations`` (default:
    until the time limit, else 300), ``elite``/``mutants`` (fractions of the population),
    ``rho`` (probability a child inherits the elite parent's key), ``patience``
    (stop after this many generations without improvement; default 200), ``workers``
    (decoding threads; default 2 above 2,000 classes when the machine has two cores; the
    answer does not depend on it), ``max_store`` (segments the DP may store before
    switching to recomputation), ``prune`` (a child whose order cannot beat
    ``(1 + prune) * best`` keeps its balanced-cut value instead of an exact DP: one
    feasibility check instead of ~20; default 0.005 above 2,000 classes, off below;
    ``None`` disables), ``seeded`` (put the BFS/DFS/critical-path/ASAP/ALAP orders in the
    initial population; default True). Per generation: O(P * (decode + DP)).
    """
    budget = budget or Budget(None)
    progress = progress or no_progress
    k = check_k(k)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    con = graph.contract()
    q = con.graph.n
    P = int(population or (64 if q <= 5000 else 24))
    if P < 2:
        raise ValueError("population must be >= 2")
    if not (0 < elite < 1 and 0 <= mutants < 1 and elite + mutants < 1 and 0 < rho < 1):
        raise ValueError("need 0 < elite, 0 <= mutants, elite + mutants < 1, 0 < rho < 1")
    limited = budget.time_limit is not None
    if generations is None:
        generations = 10**9 if limited else 300
    if patience is None:
        patience = 200
    n_elite = max(1, int(round(elite * P)))
    n_mut = int(round(mutants * P))
    n_child = P - n_elite - n_mut

    if workers is None:
        workers = 2 if q > 2000 and (os.cpu_count() or 1) >= 2 else 1
    if prune is not None and prune < 0:
        prune = 0.005 if q > 2000 else None
    dec = _Decoder(graph, con, k, mem_cap, workers, max_store)
    # keep ~15% of the budget for the polish step solve() runs afterwards
    deadline = _slicing.clock() + 0.85 * budget.remaining() if limited else math.inf
    dec.set_deadline(deadline)

    def out_of_time() -> bool:
        return budget.expired() or _slicing.clock() > deadline

    best_val, best_keys = math.inf, None
    status = Status.FEASIBLE
    gens = 0
    t_best = math.nan
    history: list[float] = []
    try:
        seeds = seed_orders(con) if seeded else {}
        pop = rng.random((P, q))
        fit = np.full(P, math.inf)
        for i, order in enumerate(seeds.values()):
            if i >= P:
                break
            pop[i] = _keys_from_order(order, q)
        # seeds first, one by one, so a huge graph still gets an answer under a short budget
        step = len(dec.slicers)
        for i in range(0, P, step):
            fit[i:i + step] = dec.fitness(pop[i:i + step])
            j = i + int(np.argmin(fit[i:i + step]))
            if fit[j] < best_val:
                best_val, best_keys = float(fit[j]), pop[j].copy()
                t_best = time.perf_counter() - t0
            if out_of_time():
                status = Status.TIME_LIMIT
                break
        progress(budget.fraction(), best_val)
        stall = 0
        while status == Status.FEASIBLE and gens < generations and stall < patience:
            rank = np.argsort(fit, kind="stable")
            pop, fit = pop[rank], fit[rank]
            elite_keys = pop[:n_elite]
            children = np.empty((n_child + n_mut, q))
            if n_child:
                ea = rng.integers(0, n_elite, n_child)
                nb = rng.integers(n_elite, P, n_child)
                take = rng.random((n_child, q)) < rho
                children[:n_child] = np.where(take, elite_keys[ea], pop[nb])
            if n_mut:
                children[n_child:] = rng.random((n_mut, q))
            ub = best_val * (1 + prune) if prune is not None else math.inf
            child_fit = dec.fitness(children, ub)
            pop = np.concatenate([elite_keys, children])
            fit = np.concatenate([fit[:n_elite], child_fit])
            gens += 1
            i = int(np.argmin(fit))
            if fit[i] < best_val * (1 - 1e-12):
                best_val, best_keys = float(fit[i]), pop[i].copy()
                t_best = time.perf_counter() - t0
                stall = 0
            else:
                stall += 1
            history.append(best_val)
            frac = budget.fraction() if limited else gens / max(1, min(generations, 10**6))
            progress(frac, best_val)
            if out_of_time():
                status = Status.TIME_LIMIT
    except KeyboardInterrupt:
        status = Status.INTERRUPTED
        dec.abort()
    finally:
        dec.close()
    stats = {"generations": gens, "population": P, "quotient_nodes": q, "time_to_best": t_best,
             "workers": len(dec.slicers), **dec.stats()}
    # the slicers also saw decodes cut short by an interrupt: take their best
    val, stage = min((s.best() for s in dec.slicers), key=lambda t: t[0])
    if not math.isfinite(val):
        msg = ("no slicing of any decoded order fits the memory cap" if best_keys is not None
               else "stopped before any order was decoded")
        return SolveResult(None, status=Status.NO_SOLUTION if status == Status.FEASIBLE else status,
                           method="slicegraph", stats=stats, message=msg,
                           timings={"slicegraph": time.perf_counter() - t0})
    part = Partition(graph, stage, k)
    stats["history_tail"] = history[-5:]
    return SolveResult(part, upper_bound=part.bottleneck, status=status, method="slicegraph",
                       stats=stats, timings={"slicegraph": time.perf_counter() - t0})
