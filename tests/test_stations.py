"""Station (boundary) bound (bounds/stations.py) against brute force and the exact DP."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle import (assert_bound_below_optimum, brute_force, capped_optimum, capped_problems,
                    msr_path, small_graphs)
from pipecore import generators, load_graph, solve
from pipecore.bounds.stations import _Data, _split_refutes, _stations, _forced, refutes, station_bound
from pipecore.problem import Problem

EPS = 1e-9


@settings(max_examples=2000, deadline=None)
@given(capped_problems)
def test_station_bound_below_brute_force(prob):
    assert_bound_below_optimum(
        lambda problem, opt: station_bound(problem, 0.0, opt * 2 + 1.0, rtol=1e-9)[0], prob, EPS)


@settings(max_examples=300, deadline=None)
@given(small_graphs(max_nodes=6, groups=True), st.integers(2, 4))
def test_optimum_never_refuted(graph, k):
    """The test never refutes T = OPT (the optimal partition meets every inequality)."""
    opt, _ = brute_force(graph, k)
    assert not refutes(_Data(Problem(graph, k)), opt)


def test_station_bound_refutes_below_average():
    g = generators.layered_dag(60, seed=3)
    data = _Data(Problem(g, 4))
    assert refutes(data, 0.99 * float(g.work.sum()) / 4)


@pytest.mark.parametrize("seed,k", [(0, 2), (1, 3), (2, 4), (3, 6)])
def test_station_bound_below_exact_dp(seed, k):
    g = generators.layered_dag(40, seed=seed)
    res = solve(g, k, method="ideals", time_limit=30)
    assert res.quality.value == "optimal"
    lb, _ = station_bound(Problem(g, k), 0.0, res.upper_bound * 1.5, rtol=1e-9)
    assert lb <= res.upper_bound * (1 + 1e-9)


def test_station_bound_below_msr_optima():
    """<= the proven optimum of the MSR graphs at k = 4 (the exact DP closes them)."""
    for name in ["layer_bert24_inference", "layer_gnmt_inference", "layer_resnet50_inference"]:
        g = load_graph(msr_path(name))
        res = solve(g, 4, time_limit=20)
        assert res.quality.value == "optimal"
        lb, _ = station_bound(Problem(g, 4), 0.0, res.upper_bound * 1.5, rtol=1e-9)
        assert lb <= res.upper_bound * (1 + 1e-9)


def test_certify_uses_the_station_bound():
    """On a layered DAG at k = 16 the station bound beats W/k inside solve()."""
    g = generators.layered_dag(1000, seed=2)
    res = solve(g, 16, time_limit=8, mip=False)
    assert res.lower_bound > float(g.work.sum()) / 16 * 1.005
    assert res.lower_bound_source == "station"
    assert any(p.name == "bound:station" for p in res.phases)


def test_deadline_and_skips():
    g = generators.layered_dag(300, seed=1)
    lb, det = station_bound(Problem(g, 16), 1.0, 100.0, deadline=0.0)
    assert lb == 1.0 and det.get("steps", 0) == 0
    lb, det = station_bound(Problem(g, 16), 5.0, 5.0)
    assert lb == 5.0 and "skipped" in det


@settings(max_examples=1500, deadline=None)
@given(capped_problems)
def test_forced_split_test_never_refutes_the_optimum(prob):
    """The flow-free forced-split test alone never refutes T = OPT (brute force)."""
    if (solved := capped_optimum(prob)) is not None:
        problem, opt = solved
        assert not _split_refutes(_Data(Problem(problem.graph, problem.k)), opt)


@settings(max_examples=200, deadline=None)
@given(small_graphs(max_nodes=8, groups=True), st.integers(2, 5), st.floats(0.05, 3.0))
def test_station_intervals_match_the_forced_sets(graph, k, scale):
    """first/last are exactly the forced sets of every boundary j (vectorised form)."""
    data = _Data(Problem(graph, k))
    t = scale * float(graph.work.sum() + graph.comm.sum() + 1.0) / k
    first, last = _stations(data, t)
    for j in range(1, data.k):
        tin, tout = _forced(data, j, t)
        assert ((last <= j) >= tin).all() and ((first > j) >= tout).all()
        assert ((first > j) <= tout).all() and ((last <= j) <= tin).all()


@pytest.mark.parametrize("block_words", [1, 2, 64])
def test_reach_works_is_exact(block_words):
    """Blocked bitset reachability = networkx ancestors/descendants, across block edges."""
    import networkx as nx
    import numpy as np
    from pipecore._native._bounds import reach_works

    g = generators.layered_dag(300, seed=5)
    topo = np.ascontiguousarray(g.topological_order(), dtype=np.int32)
    desc = reach_works(g.succ_ptr.astype(np.int64), g.succ_idx.astype(np.int32), topo,
                       g.work, block_words=block_words)
    anc = reach_works(g.pred_ptr.astype(np.int64), g.pred_idx.astype(np.int32),
                      np.ascontiguousarray(topo[::-1]), g.work, block_words=block_words)
    G = nx.DiGraph(list(zip(g.src.tolist(), g.dst.tolist())))
    G.add_nodes_from(range(g.n))
    for v in range(0, g.n, 7):
        assert desc[v] == pytest.approx(g.work[list(nx.descendants(G, v) | {v})].sum())
        assert anc[v] == pytest.approx(g.work[list(nx.ancestors(G, v) | {v})].sum())
    assert reach_works(g.succ_ptr.astype(np.int64), g.succ_idx.astype(np.int32), topo,
                       g.work, deadline=0.0) is None


def test_station_bound_without_flows_on_large_graphs(monkeypatch):
    """Above STATION_MAX_CLASSES only the flow-free tests run; they still beat W/k on a
    layered DAG with long skip edges, and stay below the best partition found."""
    from pipecore.bounds import stations

    monkeypatch.setattr(stations, "STATION_MAX_CLASSES", 100)
    g = generators.layered_dag(3000, seed=1)
    res = solve(g, 32, time_limit=5, method="slicegraph", bounds=False)
    lb, det = station_bound(Problem(g, 32), float(g.work.sum()) / 32, res.upper_bound)
    assert float(g.work.sum()) / 32 < lb <= res.upper_bound
    assert det["steps"] > 0
