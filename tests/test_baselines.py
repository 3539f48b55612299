"""1-D baselines (uniform, work-balanced, memory-aware) and random search."""
import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import pipecore
from pipecore._runtime import Budget
from pipecore.algorithms.baselines import (_Sampler, balanced_split, random_partition,
                                           solve_balanced, solve_random, solve_uniform,
                                           uniform_split)
from pipecore.generators import layered_dag
from pipecore.problem import Problem
from pipecore.result import Quality, Termination

from oracle import brute_force, is_valid_reference, run_method, small_graphs


@given(small_graphs(max_nodes=9, groups=True), st.integers(1, 5))
def test_splits_are_valid(g, k):
    for split in (uniform_split, balanced_split):
        p = split(g, k)
        assert is_valid_reference(g, p.stage, k)


def test_balanced_split_balances_work():
    g = layered_dag(2000, seed=0)
    p = balanced_split(g, 8)
    w = p.breakdown().work
    assert w.max() <= g.total_work / 8 + g.work.max() + 1e-9
    u = uniform_split(g, 8)
    counts = np.bincount(u.stage, minlength=8)
    assert counts.max() - counts.min() <= 1


@settings(max_examples=60)
@given(small_graphs(max_nodes=9, groups=True), st.integers(1, 5), st.floats(1.0, 2.0))
def test_memory_aware_splits_respect_the_cap_or_say_none(g, k, slack):
    cap = float(max(g.mem.max(), g.mem.sum() / k * slack))
    cap = max(cap, float(np.bincount(g.contract().node_map, weights=g.mem).max()))
    for split, solver in ((uniform_split, solve_uniform), (balanced_split, solve_balanced)):
        p = split(g, k, mem_cap=cap)
        res = run_method(solver, g, k, mem_cap=cap)
        if p is None:
            assert res.partition is None and res.quality is Quality.NO_SOLUTION
        else:
            assert is_valid_reference(g, p.stage, k, cap)
            assert res.partition.is_valid(cap)


def test_memory_aware_split_differs_from_plain_when_cap_binds():
    g = pipecore.Graph(4, [0, 1, 2], [1, 2, 3], [1, 1, 1, 10], mem=[3, 3, 1, 1])
    plain = balanced_split(g, 2)
    assert not plain.is_valid(6.0)  # the work split puts 3 + 3 + 1 together
    capped = balanced_split(g, 2, mem_cap=6.0)
    assert capped.is_valid(6.0)
    assert capped.stage.tolist() == [0, 0, 1, 1]


@settings(max_examples=40)
@given(small_graphs(max_nodes=9, groups=True), st.integers(1, 5), st.integers(0, 2**31))
def test_random_partitions_are_valid(g, k, seed):
    p = random_partition(g, k, seed=seed)
    assert is_valid_reference(g, p.stage, k)


def test_random_sampler_reaches_every_valid_partition():
    g = pipecore.Graph(4, [0, 0], [1, 2], [1, 2, 3, 4])
    k = 3
    valid = {s for s in itertools.product(range(k), repeat=g.n)
             if is_valid_reference(g, s, k)}
    sampler = _Sampler(Problem(g, k))
    rng = np.random.default_rng(0)
    seen = {tuple(sampler.sample(rng).tolist()) for _ in range(6000)}
    assert seen == valid


@settings(max_examples=30)
@given(small_graphs(max_nodes=6, groups=True), st.integers(1, 3))
def test_random_search_bounded_by_brute_force_and_deterministic(g, k):
    opt, _ = brute_force(g, k)
    a = run_method(solve_random, g, k, seed=3, samples=200)
    b = run_method(solve_random, g, k, seed=3, samples=200)
    assert a.upper_bound >= opt - 1e-9
    assert np.array_equal(a.partition.stage, b.partition.stage)


def test_random_search_budget_and_cap():
    g = layered_dag(3000, seed=2)
    res = run_method(solve_random, g, 8, budget=Budget(0.3), samples=10**9)
    assert res.termination is Termination.TIME_LIMIT and res.partition.is_valid()
    h = pipecore.Graph(3, [0, 1], [1, 2], [1, 1, 1], mem=[2, 2, 2])
    res = run_method(solve_random, h, 2, mem_cap=3.0, samples=50)
    assert res.partition is None and res.stats["rejected"] == 50


def test_methods_reachable_from_solve():
    g = layered_dag(300, seed=1)
    options = {"random": {"samples": 100}, "anneal": {"steps": 5000},
               "slicegraph": {"generations": 3}}
    for m in ("uniform", "balanced", "random", "local", "anneal", "slicegraph"):
        res = pipecore.solve(g, 4, method=m, time_limit=1.0, polish=False,
                             **options.get(m, {}))
        assert res.partition is not None and res.partition.is_valid(), m
