"""Station (boundary) bound (bounds/stations.py) against brute force and the exact DP."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle import brute_force, cap_between, capped_problems, msr_path, small_graphs
from pipecore import generators, load_graph, solve
from pipecore.bounds.stations import _Data, refutes, station_bound
from pipecore.problem import Problem

EPS = 1e-9


@settings(max_examples=2000, deadline=None)
@given(capped_problems)
def test_station_bound_below_brute_force(prob):
    graph, k, frac = prob
    cap = cap_between(graph, k, frac)
    opt, _ = brute_force(graph, k, cap)
    if not math.isfinite(opt):
        return
    lb, _ = station_bound(Problem(graph, k, cap), 0.0, opt * 2 + 1.0, rtol=1e-9)
    assert lb <= opt + EPS


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
    assert lb == 1.0 and det["steps"] == 0
    lb, det = station_bound(Problem(g, 16), 5.0, 5.0)
    assert lb == 5.0 and "skipped" in det
