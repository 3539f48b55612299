"""Scalable cut-based lower bounds (bounds/cuts.py) against brute force and the MSR optima."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle import (assert_bound_below_optimum, capped_problems, msr_path, msr_reference,
                    small_graphs)
from pipecore import load_graph
from pipecore.bounds.cuts import class_hypergraph, local_cut_bound
from pipecore.problem import Problem

EPS = 1e-9


def set_cost(graph, inside) -> float:
    """f(S) of DESIGN.md section 1 for an arbitrary node set S (boolean mask)."""
    cost = float(graph.work[inside].sum())
    for u in range(graph.n):
        succ = graph.dst[graph.src == u]
        if succ.size and (inside[succ] != inside[u]).any():
            cost += float(graph.comm[u])
    return cost


def min_stage_cost(graph, c_nodes) -> float:
    """min f(S) over unions S of colocation classes containing the nodes c_nodes."""
    cls = graph.contract().node_map
    q = int(cls.max()) + 1
    best = np.inf
    for bits in itertools.product((False, True), repeat=q):
        inside = np.array(bits)[cls]
        if inside[c_nodes].all():
            best = min(best, set_cost(graph, inside))
    return best


@settings(max_examples=1500, deadline=None)
@given(capped_problems, st.sampled_from([1, 2, 3, 96]))
def test_local_cut_bound_below_brute_force(prob, ball):
    assert_bound_below_optimum(lambda problem, opt: local_cut_bound(problem, max_ball=ball)[0],
                               prob, EPS)


@settings(max_examples=400, deadline=None)
@given(small_graphs(max_nodes=7, groups=True))
def test_full_ball_is_the_exact_min_cut(graph):
    """With a ball covering the graph, L(c) = min{f(S) : c in S}: the flow is exact."""
    hptr, hnodes, hw, nptr, nhe, work, _ = class_hypergraph(Problem(graph, 2))
    from pipecore._native._bounds import local_cut_bounds

    cls = graph.contract().node_map
    upper = np.full(work.size, np.inf)
    for c in range(work.size):
        val, arg, _ = local_cut_bounds(hptr, hnodes, hw, nptr, nhe, work,
                                       np.array([c], dtype=np.int32), upper, -0.5, 1000, 0.0)
        assert arg == c
        assert val == pytest.approx(min_stage_cost(graph, np.flatnonzero(cls == c)), abs=1e-9)


@pytest.mark.parametrize("name", ["layer_bert24_inference", "layer_gnmt_inference",
                                  "layer_resnet50_inference", "op_bert_l-3_inference",
                                  "op_resnet50_inference"])
def test_local_cut_bound_below_msr_optimum(name):
    ref = msr_reference()[name]
    g = load_graph(msr_path(name))
    for k in sorted({1, 2, ref["k"], 16}):
        lb, det = local_cut_bound(Problem(g, k))
        assert lb <= ref["optimum"] + EPS if k == ref["k"] else True
    lb, det = local_cut_bound(Problem(g, ref["k"], g.metadata.get("mem_cap")))
    assert 0 < lb <= ref["optimum"] + EPS


def test_local_cut_bound_skips_training_graphs():
    from pipecore import Graph

    g = Graph(3, [0, 0], [1, 2], [1.0, 1.0, 1.0], [9.0, 9.0, 9.0],
              [0.0, 0.0, 0.0], group=[0, 1, 0], backward=[False, False, True])
    lb, det = local_cut_bound(Problem(g, 2), floor=1.5)
    assert lb == 1.5 and "skipped" in det


@pytest.mark.parametrize("seed", range(6))
def test_local_cut_bound_below_exact_dp(seed):
    """On graphs the exact DP over ideals solves, the bound never exceeds its optimum."""
    import pipecore
    from pipecore import generators

    g = generators.layered_dag(40, seed=seed) if seed % 2 else generators.regal_like(60, seed=seed)
    solved = 0
    for k in (2, 4, 8, 16):
        res = pipecore.solve(g, k, method="ideals", bounds=False, polish=False, time_limit=20)
        if res.quality.value != "optimal":
            continue
        solved += 1
        lb, _ = local_cut_bound(Problem(g, k))
        assert lb <= res.upper_bound * (1 + 1e-12) + EPS
    assert solved > 0


def test_local_cut_bound_deadline_in_the_past_returns_floor():
    g = load_graph(msr_path("op_resnet50_inference"))
    lb, det = local_cut_bound(Problem(g, 64), floor=0.0, deadline=1e-9)
    assert lb == 0.0 and det["evaluated"] == 0
