"""Local search, annealing and polish: always valid, never worse, incremental costs exact."""

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pipecore
from pipecore import Partition
from pipecore._native import _local
from pipecore._runtime import Budget
from pipecore.algorithms.baselines import balanced_split, random_partition
from pipecore.algorithms.local_search import (anneal_partition, polish_partition, solve_anneal,
                                              solve_local)
from pipecore.problem import Problem
from pipecore.generators import dnn_like, layered_dag
from pipecore.io import load_graph
from pipecore.result import Quality, Termination

from oracle import (brute_force, is_valid_reference, msr_path, reference_stage_costs, run_method,
                    small_graphs)


def _cap(g, k, capped):
    if not capped:
        return None
    cap = float(max(g.mem.max(), g.mem.sum() / k * 1.4))
    if g.group is not None:
        has = g.group >= 0
        cap = max(cap, float(np.bincount(g.contract().node_map, weights=g.mem).max()))
    return cap


@settings(max_examples=60)
@given(small_graphs(max_nodes=8, groups=True), st.integers(1, 4), st.booleans(),
       st.integers(0, 2**31))
def test_anneal_never_returns_an_invalid_partition(g, k, capped, seed):
    cap = _cap(g, k, capped)
    res = run_method(solve_anneal, g, k, mem_cap=cap, seed=seed, steps=3000)
    if res.partition is None:
        assert res.quality is Quality.NO_SOLUTION
        return
    assert is_valid_reference(g, res.partition.stage, k, cap)
    assert res.upper_bound == pytest.approx(max(reference_stage_costs(g, res.partition.stage, k)),
                                            rel=1e-9, abs=1e-12)


@settings(max_examples=30)
@given(small_graphs(max_nodes=6, groups=True), st.integers(1, 3), st.booleans())
def test_anneal_and_local_are_bounded_by_brute_force(g, k, capped):
    cap = _cap(g, k, capped)
    opt, _ = brute_force(g, k, cap)
    for fn, opts in ((solve_anneal, {"steps": 2000}), (solve_local, {})):
        res = run_method(fn, g, k, mem_cap=cap, seed=0, **opts)
        if res.partition is not None:
            assert res.upper_bound >= opt - 1e-9


@settings(max_examples=40)
@given(small_graphs(max_nodes=9, groups=True), st.integers(2, 5), st.integers(0, 2**31))
def test_incremental_costs_match_exact_evaluation(g, k, seed):
    """The best value the kernel records from its incremental updates equals the exact
    bottleneck of the stage vector it saved, and every state it walks through is valid."""
    part = random_partition(g, k, seed=seed)
    con = g.contract()
    st_ = _local.LocalState(g, con, k, g.mem, np.inf, part.stage, seed + 1)
    for _ in range(5):
        st_.anneal(200, 1.0, 0.01, 0.1, 0.3, 0.3, 8)
        cur = st_.stage_array()
        assert is_valid_reference(g, cur, k)
        assert st_.current() == pytest.approx(max(reference_stage_costs(g, cur, k)), abs=1e-9)
    val, best = st_.best()
    assert val == pytest.approx(Partition(g, best, k).bottleneck, rel=1e-9, abs=1e-9)
    assert val <= part.bottleneck + 1e-9


@settings(max_examples=40)
@given(small_graphs(max_nodes=9, groups=True), st.integers(1, 5), st.booleans(),
       st.integers(0, 2**31))
def test_polish_keeps_valid_and_never_worse(g, k, capped, seed):
    cap = _cap(g, k, capped)
    part = random_partition(g, k, seed=seed)
    if not part.is_valid(cap):
        return
    out = polish_partition(Problem(g, k, cap), part, budget=Budget(None), seed=seed)
    assert out.is_valid(cap)
    assert out.bottleneck <= part.bottleneck + 1e-12


@settings(max_examples=40)
@given(small_graphs(max_nodes=9, groups=True), st.integers(1, 5), st.booleans(),
       st.integers(0, 2**31))
def test_anneal_from_a_partition_keeps_valid_and_never_worse(g, k, capped, seed):
    cap = _cap(g, k, capped)
    problem = Problem(g, k, cap)
    part = random_partition(g, k, seed=seed)
    out, term = anneal_partition(problem, part, seed=seed, steps=2000)
    if not part.is_valid(cap):
        assert out is part           # nothing to start from: handed back untouched
        return
    assert term is Termination.COMPLETED
    assert is_valid_reference(g, out.stage, k, cap)
    assert out.bottleneck <= part.bottleneck + 1e-12


def test_anneal_from_a_partition_improves_the_balanced_split_within_its_budget():
    g = layered_dag(300, seed=1)
    problem = Problem(g, 16)
    start = pipecore.solve(g, 16, method="balanced", polish=False, bounds=False).partition
    t = time.monotonic()
    out, term = anneal_partition(problem, start, budget=Budget(1.0), seed=0)
    assert time.monotonic() - t < 1.5
    assert term in (Termination.COMPLETED, Termination.TIME_LIMIT)   # the clock schedule
    assert problem.is_valid(out) and out.bottleneck < 0.97 * start.bottleneck


def test_polish_stops_at_a_proven_bound():
    g = layered_dag(50, seed=0)
    part = balanced_split(g, 3)
    assert polish_partition(Problem(g, 3), part, stop_at=part.bottleneck) is part


def test_local_search_improves_the_balanced_split_on_a_real_graph():
    g = load_graph(msr_path("layer_gnmt_inference"))
    k, cap = 6, g.metadata["mem_cap"]
    base = balanced_split(g, k, mem_cap=cap)
    res = run_method(solve_local, g, k, mem_cap=cap, seed=0)
    assert res.partition.is_valid(cap)
    assert res.upper_bound < base.bottleneck


def test_anneal_reaches_reference_on_op_bert():
    g = load_graph(msr_path("op_bert_l-3_inference"))
    res = run_method(solve_anneal, g, 3, mem_cap=g.metadata["mem_cap"], seed=0, steps=300_000)
    assert res.partition.is_valid(g.metadata["mem_cap"])
    assert res.upper_bound <= 27.9185676799125 * 1.01


def test_anneal_deterministic_and_time_limited():
    g = dnn_like(10, seed=2)
    a = run_method(solve_anneal, g, 4, seed=5, steps=20_000)
    b = run_method(solve_anneal, g, 4, seed=5, steps=20_000)
    assert np.array_equal(a.partition.stage, b.partition.stage)
    import time
    t0 = time.perf_counter()
    c = run_method(solve_anneal, g, 4, seed=5, budget=Budget(0.5))
    assert time.perf_counter() - t0 < 1.0
    assert c.partition.is_valid()


def test_anneal_ctrl_c_returns_best_so_far():
    g = layered_dag(400, seed=3)
    calls = []

    def progress(frac, best):
        calls.append(best)
        if len(calls) == 2:
            raise KeyboardInterrupt

    res = run_method(solve_anneal, g, 6, seed=0, steps=500_000, progress=progress)
    assert res.termination is Termination.INTERRUPTED
    assert res.partition.is_valid()
    assert res.upper_bound <= balanced_split(g, 6).bottleneck + 1e-9


def test_memory_cap_with_no_valid_start():
    h = pipecore.Graph(3, [0, 1], [1, 2], [1, 1, 1], mem=[2, 2, 2])
    for fn in (solve_local, solve_anneal):
        res = run_method(fn, h, 2, mem_cap=3.0, seed=0)
        assert res.partition is None and res.quality is Quality.NO_SOLUTION


def test_polish_partition_on_large_graph_is_fast_and_better():
    g = layered_dag(20_000, seed=1)
    part = balanced_split(g, 32)
    out = polish_partition(Problem(g, 32), part, budget=Budget(2.0), seed=0)
    assert out.is_valid() and out.bottleneck < part.bottleneck
