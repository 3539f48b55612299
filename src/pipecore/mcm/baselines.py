"""Search baselines for MCM partitioning at an equal budget of cost-model work.

Budget accounting (every method alike): the unit is one *evaluation* = one full
O(n + m) scoring of a partition = ``n + m`` cost-model steps. Incremental and partial
evaluations are charged their steps: an annealing move pays the node and edge visits
of its delta (plus C for the new bottleneck), a chip exchange a full evaluation, the
slicing decoder its segment sweeps and every (segment, chip) cost it forms plus the
full evaluations of the cut and of its answer (see :mod:`pipecore._native._mcm`).
A method stops when its charged work reaches ``budget`` evaluations; its trace records
the best bottleneck against the evaluations charged so far.

- :func:`random_search`: random partitions that are valid by construction: uniform
  random priority keys give a random topological order, a uniformly random chip path
  (any permutation for a free chip order) places its stages, and the order is cut at
  rate-weighted work quantiles (``decoder="cut"``, one evaluation each) or sliced
  optimally (``decoder="dp"``). ``decoder="repair"`` is the paper's sampler: a uniform
  random chip per node, greedily repaired.
- :func:`anneal`: simulated annealing with shift (boundary), swap and, for a free chip
  order, chip-exchange moves (native), from the rate-weighted cut of a BFS order.
- :func:`brkga`: SliceGraph for the MCM: the biased random-key GA of
  :mod:`pipecore.algorithms.slicegraph` (same defaults, same seed orders) over priority
  keys plus one key per chip (the chip path: chips by increasing key), each chromosome
  decoded by the MCM slicing DP.
- :func:`evolve`: the generations of that GA from any population (known fitness rows
  are not decoded again), so another search can hand over its best samples.
- :func:`slicegraph`: pipecore's own SliceGraph (``pipecore.solve``), time-limited and
  not held to the budget, on the plain pipeline cost, placed along the first path.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .._validate import as_float
from ..errors import InvalidOptionError
from ..options import Option
from ..result import Quality
from .costmodel import MCMProblem

__all__ = ["SearchResult", "random_search", "anneal", "brkga", "evolve", "seed_chromosomes",
           "slicegraph", "Tracker"]


#: every tuning option of the MCM searches, validated by the one option machinery
#: (:mod:`pipecore.options`): the same types, ranges and messages as ``solve()``.
_OPTIONS = {o.name: o for o in (
    Option("seed", int, 0, minimum=0),
    Option("batch", int, 16, minimum=1),
    Option("population", int, 64, minimum=2),
    Option("trace_points", int, 200, minimum=1),
    Option("prune", float, 0.02, minimum=0),
    Option("use_all_chips", bool, False),
    Option("seeded", bool, True),
    Option("t_start", float, 0.05, minimum=0),
    Option("t_end", float, 1e-4, minimum=0),
    Option("p_swap", float, 0.2, minimum=0, maximum=1),
    Option("p_perm", float, 0.02, minimum=0, maximum=1),
    Option("elite", float, 0.2, minimum=0, maximum=1, strict=True, strict_max=True),
    Option("mutants", float, 0.15, minimum=0, maximum=1, strict_max=True),
    Option("rho", float, 0.7, minimum=0, maximum=1, strict=True, strict_max=True),
)}


def _checked(name: str, **options) -> None:
    """Raise :class:`~pipecore.errors.InvalidOptionError` for an ill-typed or out-of-range
    option of search ``name``."""
    for key, value in options.items():
        _OPTIONS[key].validate(value, name)


def _budget_ok(budget) -> float:
    return as_float(budget, "budget (evaluations)", minimum=0, strict_minimum=True,
                    error=InvalidOptionError)


@dataclass
class SearchResult:
    """Best valid assignment found, its bottleneck and the best-so-far trace.

    ``evaluations`` is the charged cost-model work (in full evaluations);
    ``trace_evals``/``trace_best`` the best bottleneck after that much work."""

    chip: np.ndarray | None
    bottleneck: float
    evaluations: float
    method: str
    wall_time: float = 0.0
    trace_evals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    trace_best: np.ndarray = field(default_factory=lambda: np.zeros(0))
    stats: dict = field(default_factory=dict)

    @property
    def quality(self) -> Quality:
        """``feasible`` when a valid assignment was found, else ``no_solution``."""
        return Quality.FEASIBLE if self.chip is not None else Quality.NO_SOLUTION

    @property
    def throughput(self) -> float:
        if self.chip is None or not math.isfinite(self.bottleneck):
            return 0.0
        return math.inf if self.bottleneck == 0 else 1.0 / self.bottleneck

    def evals_to_reach(self, bottleneck: float) -> float:
        """Evaluations until the best-so-far bottleneck was <= ``bottleneck`` (inf if never)."""
        hit = np.flatnonzero(self.trace_best <= bottleneck * (1 + 1e-9))
        return float(self.trace_evals[hit[0]]) if hit.size else math.inf

    def best_at(self, evals: float) -> float:
        """Best bottleneck within the first ``evals`` evaluations (inf before the first)."""
        i = np.searchsorted(self.trace_evals, evals * (1 + 1e-12), side="right") - 1
        return float(self.trace_best[i]) if i >= 0 else math.inf


class Tracker:
    """Best-so-far bookkeeping for a search charged in evaluations."""

    def __init__(self):
        self.spent = 0.0
        self.best = math.inf
        self.best_chip = None
        self.evals: list = []
        self.trace: list = []

    def add(self, chips: np.ndarray, values: np.ndarray, costs: np.ndarray) -> None:
        """Record a batch in order: row b cost ``costs[b]`` evaluations and scored ``values[b]``."""
        for b in range(len(values)):
            self.spent += float(costs[b])
            if values[b] < self.best:
                self.best, self.best_chip = float(values[b]), chips[b].copy()
            self.evals.append(self.spent)
            self.trace.append(self.best)

    def result(self, method: str, t0: float, **stats) -> SearchResult:
        return SearchResult(self.best_chip, self.best, self.spent, method,
                            time.perf_counter() - t0, np.asarray(self.evals, dtype=float),
                            np.asarray(self.trace, dtype=float), stats)


def _keys_from_order(order: np.ndarray, q: int) -> np.ndarray:
    keys = np.empty(q)
    keys[order] = (np.arange(q) + 0.5) / q
    return keys


def random_search(problem: MCMProblem, budget: float = 1000, *, seed: int = 0,
                  decoder: str = "cut", batch: int = 16, use_all_chips: bool = False,
                  prune: float = 0.02) -> SearchResult:
    """Best of random valid partitions until ``budget`` evaluations are spent.

    ``decoder``: ``"cut"`` (random order + random path, rate-weighted work cut: one
    evaluation each), ``"dp"`` (the same orders sliced optimally; decodes that cannot
    beat ``(1 + prune) * best`` keep their cut), or ``"repair"`` (uniform random chip
    per node + greedy repair: one evaluation each)."""
    budget = _budget_ok(budget)
    _checked("random_search", seed=seed, batch=batch, use_all_chips=use_all_chips, prune=prune)
    if decoder not in ("cut", "dp", "repair"):
        raise ValueError(f"decoder must be 'cut', 'dp' or 'repair', got {decoder!r}")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    tr = Tracker()
    q, C = problem.quotient.n, problem.C
    while tr.spent < budget:
        if decoder == "repair":
            from .repair import greedy_repair_batch

            props = rng.integers(0, problem.C, size=(batch, problem.graph.n), dtype=np.int32)
            chips, ok, _ = greedy_repair_batch(problem, props, use_all_chips)
            val, valid = problem.evaluate(chips)
            val = np.where(ok & valid, val, np.inf)
            cost = np.ones(batch)
        else:
            ub = tr.best * (1 + prune) if decoder == "dp" else math.inf
            perms = problem.perms_from_keys(rng.random((batch, C)))
            chips, val, cost = problem.decode(rng.random((batch, q)), perms,
                                              dp=decoder == "dp", ub=ub,
                                              use_all_chips=use_all_chips)
        keep = np.cumsum(cost) - cost < budget - tr.spent  # rows started within the budget
        tr.add(chips[keep], val[keep], cost[keep])
    return tr.result(f"random-{decoder}", t0)


def _cut_start(problem: MCMProblem, use_all_chips: bool):
    """Rate-weighted work cut of the BFS order along the first path (one evaluation)."""
    keys = _keys_from_order(problem.qtopo, problem.quotient.n)
    chips, val, cost = problem.decode(keys[None], problem.paths[:1], dp=False,
                                      use_all_chips=use_all_chips)
    return chips[0], float(val[0]), float(cost[0])


def anneal(problem: MCMProblem, budget: float = 1000, *, seed: int = 0, init=None,
           perm=None, use_all_chips: bool = False, t_start: float = 0.05,
           t_end: float = 1e-4, p_swap: float = 0.2, p_perm: float = 0.02,
           trace_points: int = 200) -> SearchResult:
    """Simulated annealing until ``budget`` evaluations of cost-model work are spent.

    Starts from ``init`` (a valid assignment; ``perm`` its chip path, derived when
    omitted) or the rate-weighted cut of the BFS order. Moves: shift a class to the
    adjacent stage, swap classes of adjacent stages (``p_swap``), exchange two chips'
    contents (free order only, ``p_perm``). Temperatures are relative to the start
    bottleneck and cool geometrically with the work spent."""
    budget = _budget_ok(budget)
    _checked("anneal", seed=seed, use_all_chips=use_all_chips, t_start=t_start, t_end=t_end,
             p_swap=p_swap, p_perm=p_perm, trace_points=trace_points)
    if not (0 <= p_swap and 0 <= p_perm and p_swap + p_perm <= 1):
        raise ValueError("anneal: need p_swap, p_perm >= 0 and p_swap + p_perm <= 1")
    t0 = time.perf_counter()
    spent0 = 0.0
    if init is None:
        init, b0, spent0 = _cut_start(problem, use_all_chips)
        if not math.isfinite(b0):
            return SearchResult(None, math.inf, spent0, "anneal", time.perf_counter() - t0,
                                stats={"message": "no valid start (SRAM)"})
    chip = np.ascontiguousarray(init, dtype=np.int32).copy()
    bad = problem.violations(chip)
    if bad:
        raise ValueError("anneal: init is not valid: " + "; ".join(bad))
    perm = problem.chip_order(chip) if perm is None else np.asarray(perm, dtype=np.int32)
    if not problem.free_order:
        perm = np.arange(problem.C, dtype=np.int32)
    perm = np.ascontiguousarray(perm, dtype=np.int32).copy()
    b0 = float(problem.evaluate(chip)[0][0])
    best_chip, best_perm = chip.copy(), perm.copy()
    T = max(1, int(trace_points))
    trace = np.full(T, b0)
    left = max(budget - spent0, 0.0)
    best, accepted, moves, steps = problem.kernel.anneal(
        chip, perm, best_chip, best_perm, left * problem.unit, t_start * b0, t_end * b0,
        int(seed) & 0xFFFFFFFFFFFF, float(p_swap), float(p_perm), bool(use_all_chips), trace)
    evals = spent0 + (np.arange(1, T + 1) / T) * left
    bott = float(problem.evaluate(best_chip)[0][0])
    return SearchResult(best_chip, bott, spent0 + steps / problem.unit, "anneal",
                        time.perf_counter() - t0, evals, np.minimum(trace, b0),
                        {"accepted": int(accepted), "moves": int(moves), "start": b0,
                         "perm": best_perm.tolist()})


def brkga(problem: MCMProblem, budget: float = 1000, *, seed: int = 0, population: int = 64,
          elite: float = 0.2, mutants: float = 0.15, rho: float = 0.7, seeded: bool = True,
          prune: float = 0.02, use_all_chips: bool = False) -> SearchResult:
    """SliceGraph on the MCM model until ``budget`` evaluations are spent.

    A chromosome is one key per colocation class plus one chip-path key; it decodes to
    Kahn's smallest-key order, sliced optimally onto the path's chips by the MCM DP
    (:meth:`MCMProblem.decode`); a child that cannot beat ``(1 + prune) * best`` keeps
    its cut value (cheaper decodes: the pruning SliceGraph itself uses on large graphs).
    Defaults and seed orders (BFS, DFS, critical-path, ASAP, ALAP) follow
    :func:`pipecore.algorithms.slicegraph.solve_slicegraph`; each seed order goes on the
    first candidate path and on its best-cut path (:func:`seed_chromosomes`)."""
    budget = _budget_ok(budget)
    _checked("brkga", seed=seed, population=population, elite=elite, mutants=mutants, rho=rho,
             seeded=seeded, prune=prune, use_all_chips=use_all_chips)
    if population < 2 or not (0 < elite < 1 and 0 <= mutants < 1 and elite + mutants < 1
                              and 0 < rho < 1):
        raise ValueError("brkga: need population >= 2, 0 < elite, 0 <= mutants, "
                         "elite + mutants < 1, 0 < rho < 1")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    q, C, P = problem.quotient.n, problem.C, int(population)
    tr = Tracker()
    pop = rng.random((P, q + C))
    if seeded:  # seed orders on their best-cut paths and on the first candidate path
        rows = seed_chromosomes(problem, _keys_from_order(problem.paths[0], C), tr, budget)[:P]
        pop[:len(rows)] = rows
    gens = evolve(problem, budget, tr, rng, pop, elite=elite, mutants=mutants, rho=rho,
                  prune=prune, use_all_chips=use_all_chips)
    return tr.result("slicegraph-mcm", t0, generations=gens)


def seed_chromosomes(problem: MCMProblem, chip_keys: np.ndarray, tracker: Tracker | None = None,
                     budget: float = math.inf) -> np.ndarray:
    """SliceGraph's seed orders (BFS, DFS, critical path, ASAP, ALAP) as node keys.

    Without ``tracker``: (5, q + C) rows, each with the chip keys ``chip_keys``. With it
    (and a package of several candidate chip paths): each order is first cut at
    rate-weighted work quantiles on every candidate path (one evaluation per (order,
    path), charged to ``tracker``; the cut partitions count as found) and also placed on
    the path where its cut is cheapest. Those rows come first, cheapest cut first, then
    the five rows on ``chip_keys``; duplicates are dropped, so 5 to 10 rows. Why: the
    chip path decides as much as the order (t5-small on mesh-2x4-het: the critical-path
    order gives 54.42 on the first path and 39.94 on the best one), and the cut ranks
    paths well enough for a handful of evaluations. The screen is skipped when it would
    take the tracker past ``budget``. O(5 K) evaluations for K candidate paths."""
    from ..algorithms.slicegraph import seed_orders

    q, C = problem.quotient.n, problem.C
    orders = list(seed_orders(problem.contraction).values())
    node_keys = np.stack([_keys_from_order(o, q) for o in orders])
    chip_keys = np.asarray(chip_keys, dtype=np.float64)
    rows = [np.concatenate([nk, chip_keys]) for nk in node_keys]
    paths = problem.paths
    K = len(paths)
    if (tracker is None or not problem.free_order or K < 2
            or tracker.spent + len(orders) * K > budget):
        return np.stack(rows)
    screened = []
    for nk in node_keys:
        chips, val, cost = problem.decode(np.repeat(nk[None], K, axis=0), paths, dp=False)
        tracker.add(chips, val, cost)
        best = int(np.argmin(val))
        screened.append((float(val[best]), np.concatenate([nk, _keys_from_order(paths[best], C)])))
    screened.sort(key=lambda item: item[0])
    out: list = []
    for row in [r for _, r in screened] + rows:
        if not any(np.array_equal(row, o) for o in out):
            out.append(row)
    return np.stack(out)


def _elite_mutants(P: int, elite: float, mutants: float) -> tuple[int, int]:
    return max(1, round(elite * P)), round(mutants * P)


def children_per_generation(P: int, elite: float = 0.2, mutants: float = 0.15) -> int:
    """Decodes per generation of :func:`evolve`: the crossover children and the mutants."""
    return P - _elite_mutants(P, elite, mutants)[0]


def evolve(problem: MCMProblem, budget: float, tr: Tracker, rng: np.random.Generator,
           pop: np.ndarray, fit: np.ndarray | None = None, *, elite: float = 0.2,
           mutants: float = 0.15, rho: float = 0.7, prune: float = 0.02,
           use_all_chips: bool = False) -> int:
    """The BRKGA generations of :func:`brkga` from population ``pop`` (P, q + C), charged
    to ``tr`` until it has spent ``budget`` evaluations in all. ``fit``: the known
    bottlenecks of the rows (NaN = decode it; known rows were charged when first decoded),
    so a search can hand over its best samples without paying for them twice. Returns
    the number of generations. Each generation costs about (1 - elite) P decodes."""
    q = problem.quotient.n
    pop = np.asarray(pop, dtype=np.float64)
    if pop.ndim != 2 or pop.shape[1] != q + problem.C or pop.shape[0] < 2:
        raise ValueError(f"evolve: pop must be (P >= 2, {q + problem.C}) keys, got {pop.shape}")
    if fit is not None and np.shape(fit) != (pop.shape[0],):
        raise ValueError(f"evolve: fit must have {pop.shape[0]} values, got {np.shape(fit)}")
    P, width = pop.shape
    n_elite, n_mut = _elite_mutants(P, elite, mutants)

    def fitness(keys):
        ub = tr.best * (1 + prune)
        perms = problem.perms_from_keys(keys[:, q:])
        chips, val, cost = problem.decode(np.ascontiguousarray(keys[:, :q]), perms, ub=ub,
                                          use_all_chips=use_all_chips)
        keep = np.cumsum(cost) - cost < budget - tr.spent
        tr.add(chips[keep], val[keep], cost[keep])
        return np.where(keep, val, np.inf)

    fit = np.full(P, np.nan) if fit is None else np.asarray(fit, dtype=np.float64).copy()
    todo = np.flatnonzero(np.isnan(fit))
    for i in range(0, todo.size, 8):
        fit[todo[i:i + 8]] = fitness(pop[todo[i:i + 8]])
    gens = 0
    while tr.spent < budget:
        rank = np.argsort(fit, kind="stable")
        pop, fit = pop[rank], fit[rank]
        n_child = P - n_elite - n_mut
        ea, nb = rng.integers(0, n_elite, n_child), rng.integers(n_elite, P, n_child)
        take = rng.random((n_child, width)) < rho
        kids = np.concatenate([np.where(take, pop[ea], pop[nb]), rng.random((n_mut, width))])
        pop = np.concatenate([pop[:n_elite], kids])
        fit = np.concatenate([fit[:n_elite], fitness(kids)])
        gens += 1
    return gens


def slicegraph(problem: MCMProblem, *, time_limit: float = 10.0, seed: int = 0,
               **options) -> SearchResult:
    """pipecore's SliceGraph on the plain pipeline cost, scored under the MCM model.

    Uses k = C stages and the smallest chip SRAM as memory cap; stage s runs on chip
    ``paths[0][s]``; the partition is then evaluated (and greedily repaired if the MCM
    model disagrees on validity). Not held to an evaluation budget (time-limited).
    """
    from ..solver import solve

    as_float(time_limit, "slicegraph: time_limit", minimum=0, strict_minimum=True,
             error=InvalidOptionError)
    t0 = time.perf_counter()
    cap = float(problem.sram.min())
    res = solve(problem.graph, problem.C, method="slicegraph",
                mem_cap=cap if math.isfinite(cap) else None, time_limit=time_limit, seed=seed,
                **options)
    if res.partition is None:
        return SearchResult(None, math.inf, 0, "slicegraph", time.perf_counter() - t0,
                            stats={"message": res.message, "quality": res.quality.value})
    chip: np.ndarray | None = np.ascontiguousarray(
        problem.paths[0][np.asarray(res.partition.stage)], dtype=np.int32)
    if problem.violations(chip):
        from .repair import greedy_repair

        chip = greedy_repair(problem, chip).chip
    bott = float(problem.evaluate(chip)[0][0]) if chip is not None else math.inf
    return SearchResult(chip, bott, 0, "slicegraph", time.perf_counter() - t0,
                        stats={"pipeline_bottleneck": res.upper_bound, "quality": res.quality.value})
