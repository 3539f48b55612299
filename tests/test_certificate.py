"""Certificates from solve(): UB, LB, gap, provenance and timings; checked against brute
force, the exact DP and the MSR reference optima."""
import json
import math

import pytest
from hypothesis import given, settings

from oracle import (MSR_GRAPHS, brute_force, cap_between, capped_problems, msr_path,
                    msr_reference)
from pipecore import Graph, Problem, Quality, load_graph, solve
from pipecore.cli import main
from pipecore.solver import available_methods

EPS = 1e-9


def _check_certificate(res, opt):
    assert res.lower_bound <= opt + EPS, (res.lower_bound, opt, res.lower_bound_source)
    if res.partition is not None:
        assert res.upper_bound >= opt - EPS
        assert res.upper_bound == pytest.approx(res.partition.bottleneck)
        assert res.gap >= 0
        if res.quality is Quality.OPTIMAL:
            assert res.upper_bound <= res.lower_bound * (1 + 1e-6) + 1e-12
    assert res.lower_bound_source
    assert "bound:combinatorial" in res.timings


@settings(max_examples=25)
@given(capped_problems)
def test_solve_certificate_against_brute_force(prob):
    graph, k, frac = prob
    cap = cap_between(graph, k, frac)
    opt, _ = brute_force(graph, k, cap)
    if not math.isfinite(opt):
        return
    res = solve(graph, k, mem_cap=cap, time_limit=20)
    _check_certificate(res, opt)
    # tiny capped_problems always close: the exact DP or the exact MIP proves the optimum
    assert res.quality is Quality.OPTIMAL
    assert res.upper_bound == pytest.approx(opt, rel=1e-9, abs=1e-9)


@settings(max_examples=15)
@given(capped_problems)
def test_mip_method_and_bounds_only(prob):
    graph, k, frac = prob
    cap = cap_between(graph, k, frac)
    opt, _ = brute_force(graph, k, cap)
    res = solve(graph, k, method="mip", mem_cap=cap, time_limit=20)
    if not math.isfinite(opt):
        assert res.partition is None
        return
    _check_certificate(res, opt)
    assert res.upper_bound == pytest.approx(opt, rel=1e-9, abs=1e-9)
    # a weak UB method: the certificate still holds (bounds from MIPs, not the method)
    res = solve(graph, k, method="uniform", mem_cap=cap, time_limit=20, polish=False)
    if res.partition is not None:
        _check_certificate(res, opt)


@pytest.mark.skipif("ideals" not in available_methods(), reason="exact DP not installed")
@pytest.mark.parametrize("seed", range(3))
def test_lower_bound_never_above_exact_dp(seed):
    from pipecore.generators import layered_dag
    from pipecore._runtime import Budget
    from pipecore.bounds import mip_bounds, quick_bound

    g = layered_dag(30, width=4, seed=seed)
    for k in (2, 4):
        dp = solve(g, k, method="ideals", bounds=False, polish=False)
        assert dp.quality is Quality.OPTIMAL
        prob = Problem(g, k)
        assert quick_bound(prob)[0] <= dp.upper_bound + EPS
        for exact in (False, True):
            rep = mip_bounds(prob, budget=Budget(2), exact=exact, jobs=2)
            assert rep.lower_bound <= dp.upper_bound + EPS


def test_bounds_option_and_provenance():
    g = Graph(4, [0, 1, 2], [1, 2, 3], work=[3, 1, 1, 3], comm=[0.5, 0.5, 0.5, 0])
    res = solve(g, 2, method="balanced", bounds=False, polish=False)
    assert "bound:mip" not in res.timings
    res = solve(g, 2, method="balanced", polish=False, time_limit=10)
    assert res.upper_bound == pytest.approx(4.5)  # {0,1} | {2,3}: 4 + send 0.5
    assert res.lower_bound == pytest.approx(4.5, rel=1e-6)
    assert res.quality is Quality.OPTIMAL
    assert res.phases[0].name == "bound:combinatorial"
    assert res.phases[0].lower_bound <= res.lower_bound + EPS
    assert res.upper_bound_source == "balanced"
    d = res.to_dict()
    json.dumps(d, allow_nan=False)  # strict JSON
    assert d["lower_bound_source"] and d["gap"] is not None and d["phases"]


def test_cli_prints_and_emits_certificate(capsys):
    path = str(msr_path("layer_bert24_inference"))
    assert main(["solve", path, "--time-limit", "20", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ref = msr_reference()["layer_bert24_inference"]
    assert out["upper_bound"] == pytest.approx(ref["optimum"], rel=1e-9)
    assert out["lower_bound"] <= ref["optimum"] + EPS
    assert out["gap"] <= 1e-6
    assert out["lower_bound_source"] and out["method"] == "auto" and out["phases"]
    assert out["quality"] == "optimal" and out["graph"].startswith(path)
    assert main(["solve", path, "--time-limit", "20", "-q"]) == 0
    text = capsys.readouterr().out
    assert "lower bound" in text and "gap" in text and "phases" in text and "k = 6" in text
    assert "gap         : 0 (proven optimal" in text


@pytest.mark.slow
@pytest.mark.parametrize("name", MSR_GRAPHS)
def test_msr_certificate_closes_within_60s(name):
    ref = msr_reference()[name]
    g = load_graph(msr_path(name))
    res = solve(g, ref["k"], mem_cap=g.metadata.get("mem_cap"), time_limit=60)
    assert res.wall_time <= 62  # the time limit holds, certificate included
    assert res.lower_bound <= ref["optimum"] + EPS
    assert res.upper_bound == pytest.approx(ref["optimum"], rel=1e-9)
    assert res.gap <= 1e-6
    assert res.quality is Quality.OPTIMAL


def test_no_partition_from_method_then_mip_decides():
    # a -> b -> c, mem 2, 0.5, 2 with cap 2.25 on 2 stages: passes the necessary checks,
    # but every forward 2-partition puts 2.5 on one stage
    g = Graph(3, [0, 1], [1, 2], work=[1, 1, 1], comm=[0.1, 0.1, 0], mem=[2, 0.5, 2])
    res = solve(g, 2, method="balanced", mem_cap=2.25, time_limit=10, polish=False)
    assert res.partition is None and res.quality is Quality.INFEASIBLE
    # with a looser cap the balanced split is invalid but the exact MIP finds the optimum
    g = Graph(3, [0, 1], [1, 2], work=[1, 1, 1], comm=[0.1, 0.1, 0], mem=[2, 0.5, 2])
    res = solve(g, 2, method="uniform", mem_cap=2.5, time_limit=10, polish=False)
    opt, _ = brute_force(g, 2, 2.5)
    assert res.partition is not None and res.upper_bound == pytest.approx(opt)
    assert res.quality is Quality.OPTIMAL
