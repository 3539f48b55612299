"""Component (tower) bound (bounds/components.py) against brute force and the exact DP."""
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle import (assert_bound_below_optimum, brute_force, capped_problems, is_valid_reference,
                    reference_stage_costs, small_graphs)
from pipecore import Graph, generators, solve
from pipecore.bounds.components import _SumDP, component_bound, split_components
from pipecore.problem import Problem

EPS = 1e-9


def _join(a: Graph, b: Graph, head: bool, stem: bool, rng: np.random.Generator) -> Graph:
    """Disjoint union of a and b, plus optionally a join node fed by a sink of each and
    a stem node feeding a source of each (the two-tower shape)."""
    n = a.n + b.n
    src = list(a.src) + [a.n + int(x) for x in b.src]
    dst = list(a.dst) + [a.n + int(x) for x in b.dst]
    work = list(a.work) + list(b.work)
    comm = list(a.comm) + list(b.comm)
    mem = list(a.mem) + list(b.mem)
    for extra, on in (("head", head), ("stem", stem)):
        if not on:
            continue
        v = n
        n += 1
        ends = [int(rng.integers(0, a.n)), a.n + int(rng.integers(0, b.n))]
        for u in ends:
            src.append(u if extra == "head" else v)
            dst.append(v if extra == "head" else u)
        work.append(float(rng.integers(0, 8)) / 4)
        comm.append(float(rng.integers(0, 8)) / 4)
        mem.append(1.0)
    return Graph(n, src, dst, work, comm, mem)


def _brute_minsum(graph: Graph, t: float) -> np.ndarray:
    """Per b, the least total stage cost over chains of any number of nonempty parts,
    each part <= t, exactly b of them costing more than t / 2."""
    n = graph.n
    best = np.full(n + 1, np.inf)
    for stage in itertools.product(range(n), repeat=n):
        if not is_valid_reference(graph, stage, n):
            continue
        costs = [c for s, c in enumerate(reference_stage_costs(graph, stage, n))
                 if s in stage]                       # nonempty parts only
        if max(costs) <= t + EPS:
            b = sum(c > t / 2 + EPS for c in costs)
            best[b] = min(best[b], sum(costs))
    return best


@settings(max_examples=200, deadline=None)
@given(small_graphs(max_nodes=4), st.integers(0, 40))
def test_sum_pass_is_the_brute_force_min_sum(graph, t4):
    t = t4 / 4
    dp = _SumDP(Problem(graph, 1), math.inf, graph.n, math.inf)
    assert dp.ok
    got = dp.minsum(t, math.inf)
    want = _brute_minsum(graph, t)
    assert got.shape == want.shape
    # exact where it matters: the least cost with at most b big parts, for every b
    for g, w in zip(np.minimum.accumulate(got), np.minimum.accumulate(want)):
        assert (math.isinf(g) and math.isinf(w)) or g == pytest.approx(w, abs=1e-9)


@settings(max_examples=1500, deadline=None)
@given(capped_problems)
def test_component_bound_below_brute_force(prob):
    """Small random DAGs are often disconnected: the bound applies to many of them."""
    assert_bound_below_optimum(
        lambda problem, opt: component_bound(problem, 0.0, opt * 2 + 1.0, rtol=1e-9)[0], prob,
        EPS)


@settings(max_examples=200, deadline=None)
@given(small_graphs(max_nodes=3, min_nodes=2), small_graphs(max_nodes=3, min_nodes=2),
       st.booleans(), st.booleans(), st.integers(2, 3), st.integers(0, 2 ** 32 - 1))
def test_component_bound_on_joined_towers_below_brute_force(a, b, head, stem, k, seed):
    """Two towers with a join and/or a stem that the split deletes (Claim 1)."""
    graph = _join(a, b, head, stem, np.random.default_rng(seed))
    opt, _ = brute_force(graph, k)
    lb, details = component_bound(Problem(graph, k), 0.0, opt * 2 + 1.0, rtol=1e-9)
    assert lb <= opt + EPS


def _two_towers(blocks: int, seed: int) -> Graph:
    rng = np.random.default_rng(seed)
    a = generators.dnn_like(blocks, branches=1, seed=seed)
    b = generators.dnn_like(blocks, branches=1, seed=seed + 100)
    return _join(a, b, head=True, stem=False, rng=rng)


@pytest.mark.parametrize("k", [2, 4, 8])
def test_component_bound_below_exact_dp_and_above_average(k):
    g = _two_towers(3, seed=1)
    res = solve(g, k, method="ideals", time_limit=60)
    assert res.quality.value == "optimal"
    p = Problem(g, k)
    avg = float(g.work.sum()) / k
    lb, details = component_bound(p, avg, res.upper_bound * 1.5, rtol=1e-9)
    assert lb <= res.upper_bound * (1 + 1e-9)
    assert details["deleted"] >= 1 and len(details["components"]) == 2
    if k == 8:   # communication matters at high k: the bound beats W/k
        assert lb > avg * 1.01


def test_split_finds_the_towers_and_skips_what_it_cannot_use():
    g = _two_towers(3, seed=2)
    split = split_components(Problem(g, 4))
    assert split is not None
    drop, subs = split
    # the last level: the join node and the towers' sinks
    assert 1 <= drop.size <= 3 and len(subs) == 2
    assert sum(s.graph.n for s in subs) == g.n - drop.size
    chain = generators.dnn_like(4, seed=0)     # one tower: nothing to split
    avg = float(chain.work.sum()) / 8
    lb, details = component_bound(Problem(chain, 8), avg, 2 * avg)
    assert lb == avg and details["skipped"] == "no split into narrow components"
    lb, details = component_bound(Problem(g, 8), 5.0, 5.0)
    assert lb == 5.0 and details["skipped"] == "no gap"
    assert split_components(Problem(g, 4), max_ideals=3) is None
