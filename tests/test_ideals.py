"""Exact DP over ideals: reference optima, brute force, caps, fallback, CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import (MSR_GRAPHS, brute_force, is_valid_reference, msr_path, msr_reference,
                    reference_stage_costs, small_graphs)

import pipecore
from pipecore import BudgetExceededError, Graph, Partition, Problem, Quality, Termination
from pipecore._runtime import Budget
from pipecore.algorithms import ideals
from pipecore.algorithms.ideals import count_ideals, solve_exact

REF = msr_reference()


def _check(graph, k, cap, res, expect):
    """res is optimal, valid against the literal oracle and equal to ``expect``."""
    if math.isinf(expect):
        assert res.partition is None and res.quality is Quality.INFEASIBLE
        return
    assert res.quality is Quality.OPTIMAL
    stage = res.partition.stage
    assert is_valid_reference(graph, stage, k, cap)
    got = max(reference_stage_costs(graph, stage, k))
    assert got == pytest.approx(expect, rel=1e-9, abs=1e-12)
    assert res.upper_bound == pytest.approx(expect, rel=1e-9, abs=1e-12)
    assert res.lower_bound <= res.upper_bound


# ----------------------------------------------------------------------------- reference optima
@pytest.mark.parametrize("name", MSR_GRAPHS)
def test_reproduces_reference_optimum(name):
    g = pipecore.load_graph(msr_path(name))
    k, cap = REF[name]["k"], g.metadata["mem_cap"]
    assert k == g.metadata["k"]
    res = solve_exact(g, k, mem_cap=cap)
    assert res.quality is Quality.OPTIMAL
    assert res.partition.is_valid(cap)
    assert res.partition.graph is g and res.partition.k == k
    assert res.upper_bound == pytest.approx(REF[name]["optimum"], rel=1e-9)
    assert res.partition.bottleneck == pytest.approx(REF[name]["optimum"], rel=1e-9)
    assert res.lower_bound == pytest.approx(REF[name]["optimum"], rel=1e-9)


@pytest.mark.parametrize("name", MSR_GRAPHS)
def test_reference_optimum_without_warm_start(name):
    """The DP alone (no heuristic upper bound to prune with) reaches the same optimum."""
    g = pipecore.load_graph(msr_path(name))
    res = solve_exact(g, REF[name]["k"], mem_cap=g.metadata["mem_cap"], warm_start=False)
    assert res.quality is Quality.OPTIMAL and res.partition.is_valid(g.metadata["mem_cap"])
    assert res.upper_bound == pytest.approx(REF[name]["optimum"], rel=1e-9)


def test_gnmt_reduction_matches_reference_lattice():
    """Zero-work leaf contraction gives the 17,914 ideals of the published artifact."""
    g = pipecore.load_graph(msr_path("layer_gnmt_inference"))
    assert count_ideals(Problem(g, 6, g.metadata["mem_cap"])) == 17_914
    assert count_ideals(g, cap=100_000, reduce=False) > 100_000


@pytest.mark.parametrize("name", ["layer_bert24_inference", "op_bert_l-3_inference"])
def test_reference_optimum_without_reduction(name):
    g = pipecore.load_graph(msr_path(name))
    res = solve_exact(g, REF[name]["k"], mem_cap=g.metadata["mem_cap"], reduce=False)
    assert res.upper_bound == pytest.approx(REF[name]["optimum"], rel=1e-9)


def test_solve_dispatch_and_public_name():
    g = pipecore.load_graph(msr_path("op_bert_l-3_inference"))
    res = pipecore.solve(g, 3, method="ideals", mem_cap=g.metadata["mem_cap"])
    assert res.upper_bound == pytest.approx(REF["op_bert_l-3_inference"]["optimum"], rel=1e-9)
    assert res.partition.is_valid(g.metadata["mem_cap"])
    assert pipecore.solve_exact is solve_exact


# ----------------------------------------------------------------------------- brute force
@st.composite
def problems(draw, groups=False, caps=False, max_nodes=7):
    g = draw(small_graphs(max_nodes=max_nodes, groups=groups))
    k = draw(st.integers(1, 3))
    cap = None
    if caps:
        total, top = float(g.mem.sum()), float(g.mem.max())
        if groups and g.group is not None:
            has = g.group >= 0
            top = max(top, float(np.bincount(g.group[has], weights=g.mem[has]).max()))
        lo = max(top, total / k)
        cap = draw(st.sampled_from([lo, lo + 0.5, lo + 1.0, lo + 2.0, total]))
    return g, k, cap


@st.composite
def leafy_graphs(draw, max_nodes=7):
    """Many zero costs, dangling sources and sinks: exercises the dominance contraction."""
    n = draw(st.integers(2, max_nodes))
    perm = draw(st.permutations(range(n)))
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=n + 1))
    cost = st.sampled_from([0.0, 0.0, 0.0, 0.5, 1.0, 2.75])
    work = draw(st.lists(cost, min_size=n, max_size=n))
    comm = draw(st.lists(cost, min_size=n, max_size=n))
    mem = draw(st.lists(st.sampled_from([0.0, 0.0, 1.0, 3.0]), min_size=n, max_size=n))
    group = draw(st.none() | st.lists(st.integers(-1, n // 2), min_size=n, max_size=n))
    return Graph(n, [perm[i] for i, _ in chosen], [perm[j] for _, j in chosen], work, comm,
                 mem, group=group)


def _feasible_cap(g, k, cap):
    try:
        return Problem(g, k, cap).mem_cap, True
    except pipecore.InfeasibleMemoryError:
        return cap, False


@settings(max_examples=60)
@given(problems(), st.booleans())
def test_brute_force_plain(prob, warm):
    g, k, _ = prob
    best, _ = brute_force(g, k)
    _check(g, k, None, solve_exact(g, k, warm_start=warm), best)


@settings(max_examples=60)
@given(problems(groups=True, caps=True), st.booleans(), st.booleans())
def test_brute_force_groups_and_caps(prob, warm, reduce):
    g, k, cap = prob
    cap, ok = _feasible_cap(g, k, cap)
    if not ok:
        with pytest.raises(pipecore.InfeasibleMemoryError):
            solve_exact(g, k, mem_cap=cap)
        return
    best, _ = brute_force(g, k, cap)
    _check(g, k, cap, solve_exact(g, k, mem_cap=cap, warm_start=warm, reduce=reduce), best)


@settings(max_examples=60)
@given(leafy_graphs(), st.integers(1, 3), st.sampled_from([None, 0.0, 1.0, 2.0]), st.booleans())
def test_brute_force_zero_work_leaves(g, k, slack, warm):
    cap = None if slack is None else float(max(g.mem.max(), g.mem.sum() / k)) + slack
    cap, ok = _feasible_cap(g, k, cap)
    if not ok:
        return
    best, _ = brute_force(g, k, cap)
    _check(g, k, cap, solve_exact(g, k, mem_cap=cap, warm_start=warm), best)


@settings(max_examples=25)
@given(problems(max_nodes=6))
def test_warm_start_partition_is_used(prob):
    """A caller's partition seeds the pruning without changing the optimum."""
    g, k, _ = prob
    best, arg = brute_force(g, k)
    res = solve_exact(g, k, upper_bound=Partition(g, arg, k), warm_start=False)
    _check(g, k, None, res, best)


@settings(max_examples=60)
@given(problems(groups=True, caps=True))
def test_warm_start_slicing_is_a_valid_upper_bound(prob):
    """The chain-DP incumbent is valid, priced exactly, and never below the optimum."""
    g, k, cap = prob
    cap, ok = _feasible_cap(g, k, cap)
    if not ok:
        return
    p = ideals._Lattice(Problem(g, k, cap))
    kern = p.kernel(min(k, p.q))
    ub, stage_q = ideals._initial_upper_bound(p, kern, min(k, p.q), seed=1)
    best, _ = brute_force(g, k, cap)
    if stage_q is None:
        assert math.isinf(ub)
        return
    part = p.expand(stage_q)
    assert is_valid_reference(g, part.stage, k, cap)
    assert ub == pytest.approx(max(reference_stage_costs(g, part.stage, k)), rel=1e-9, abs=1e-12)
    assert ub >= best * (1 - 1e-9)


def test_infeasible_cap_is_proven():
    # two nodes of mem 2 joined by an edge, a third of mem 2 between them in order:
    # a -> b -> c with mem (2, 1, 2), k = 2, cap 2.5 passes the necessary checks
    # (max 2, total 5 <= 2 * 2.5) but b fits with neither a nor c.
    g = Graph(3, [0, 1], [1, 2], [1, 1, 1], [1, 1, 1], [2, 1, 2])
    assert brute_force(g, 2, 2.5)[0] == math.inf
    res = solve_exact(g, 2, mem_cap=2.5)
    assert res.quality is Quality.INFEASIBLE and res.partition is None
    assert "mem_cap" in res.message


def test_more_stages_than_nodes_gives_empty_stages():
    g = Graph(3, [0, 1], [1, 2], [1, 2, 3], [0.5, 0.5, 0.5], [1, 1, 1])
    res = solve_exact(g, 7)
    assert res.partition.k == 7
    assert res.upper_bound == pytest.approx(brute_force(g, 4)[0])
    assert res.upper_bound == pytest.approx(3.5)  # node 2 alone receives 0.5


def test_count_ideals_small_cases():
    chain = Graph(5, [0, 1, 2, 3], [1, 2, 3, 4], np.ones(5))
    assert count_ideals(chain) == 6
    anti = Graph(6, [], [], np.ones(6))
    assert count_ideals(anti) == 2 ** 6
    assert count_ideals(anti, cap=10) == 11  # counting stops after the cap
    # zero-work leaves contract into their neighbour: a star of weightless inputs
    star = Graph(5, [0, 1, 2, 3], [4, 4, 4, 4], [0, 0, 0, 0, 1])
    assert count_ideals(star, reduce=False) == 2 ** 4 + 1
    assert count_ideals(star) == 2


def test_bad_input_is_rejected():
    g = Graph(2, [0], [1], [1, 1])
    with pytest.raises(ValueError, match="max_ideals"):
        solve_exact(g, 2, max_ideals=0)
    with pytest.raises(pipecore.InvalidStageCountError):
        solve_exact(g, 0)
    with pytest.raises(pipecore.InfeasibleMemoryError):
        solve_exact(Graph(2, [0], [1], [1, 1], mem=[3, 1]), 2, mem_cap=2)
    with pytest.raises(TypeError):
        solve_exact("graph", 2)


# ----------------------------------------------------------------------------- caps and fallback
def _wide(blocks=4, branches=(2, 2, 2, 2, 2)):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from graphs import inception_graph

    return inception_graph(blocks, branches)


def test_ideal_cap_raises_clear_error():
    g = _wide()
    with pytest.raises(BudgetExceededError, match="max_ideals=100") as info:
        solve_exact(g, 4, max_ideals=100)
    assert info.value.reason == "ideals"
    assert info.value.partition is not None and info.value.partition.is_valid()


def test_memory_cap_raises_before_allocating():
    g = _wide()
    with pytest.raises(BudgetExceededError, match="max_memory") as info:
        solve_exact(g, 4, max_memory=1024)
    assert info.value.reason == "memory"


def test_pair_cap_raises():
    g = _wide()
    with pytest.raises(BudgetExceededError, match="max_pairs") as info:
        solve_exact(g, 4, max_pairs=10, warm_start=False)
    assert info.value.reason == "pairs"


def test_time_cap_raises():
    g = _wide(6, (3, 3, 3, 3, 3))
    with pytest.raises(BudgetExceededError, match="time limit") as info:
        solve_exact(g, 4, time_limit=1e-3, warm_start=False)
    assert info.value.reason == "time"


def test_method_stops_at_cap_with_incumbent():
    g = _wide()
    res = ideals.solve_ideals(Problem(g, 4), Budget(None), max_ideals=100)
    assert res.termination is Termination.CAPPED and res.stats["cap"] == "ideals"
    assert res.partition is not None and res.partition.is_valid()
    assert "max_ideals" in res.message
    exact = solve_exact(g, 4)
    assert res.upper_bound >= exact.upper_bound * (1 - 1e-12)


def test_dispatch_falls_back_once_when_capped():
    """Through solve(): the DP stops at its cap, the fallback runs exactly once, and the
    result is a valid partition with the cap in the message."""
    g = _wide()
    res = pipecore.solve(g, 4, method="ideals", max_ideals=100, polish=False)
    assert res.partition is not None and res.partition.is_valid()
    assert "max_ideals" in res.message and "fell back to slicegraph" in res.message
    names = [p.name for p in res.phases]
    assert names.count("ideals") == 1 and names.count("slicegraph") == 1
    assert res.phases[names.index("ideals")].termination is Termination.CAPPED


def test_dispatch_without_fallback():
    res = pipecore.solve(_wide(), 4, method="ideals", max_ideals=100, fallback="none",
                         polish=False, bounds=False)
    assert [p.name for p in res.phases].count("slicegraph") == 0
    assert res.termination is Termination.CAPPED and res.partition is not None


def test_ctrl_c_returns_incumbent():
    g = _wide(6, (3, 3, 3, 3, 3))

    def interrupt(fraction, best):
        raise KeyboardInterrupt

    res = solve_exact(g, 4, progress=interrupt)
    assert res.termination is Termination.INTERRUPTED
    assert res.partition is not None and res.partition.is_valid()


def test_progress_reports_fractions():
    seen = []
    g = _wide()
    solve_exact(g, 4, warm_start=False, progress=lambda f, b: seen.append((f, b)))
    assert seen and seen[-1][0] == 1.0
    assert all(0.0 <= f <= 1.0 for f, _ in seen)


def test_wide_graph_exact_and_matches_cold_run():
    g = _wide(5, (2, 3, 2, 3))
    warm = solve_exact(g, 5)
    cold = solve_exact(g, 5, warm_start=False)
    assert warm.upper_bound == pytest.approx(cold.upper_bound, rel=1e-12)
    assert warm.stats["pairs"] < cold.stats["pairs"]


# ----------------------------------------------------------------------------- CLI
def test_cli_solve_method_ideals(tmp_path, capsys):
    from pipecore.cli import main

    out = tmp_path / "part.json"
    code = main(["solve", str(msr_path("layer_bert24_inference")), "--method", "ideals",
                 "--json", "-o", str(out)])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["upper_bound"] == pytest.approx(REF["layer_bert24_inference"]["optimum"],
                                                rel=1e-9)
    assert out.exists()
