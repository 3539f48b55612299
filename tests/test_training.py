"""Training graphs (DESIGN.md section 1b) and the 1F1B schedule: every method and bound
against brute force over class assignments, and the artifact's training optima."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import (brute_force_classes, is_valid_training_reference, msr_path, msr_reference,
                    reference_stage_costs, small_training_graphs, stage_memory_reference)

import pipecore
from pipecore import FileFormatError, Graph, Partition, Quality
from pipecore.algorithms.ideals import solve_exact

REF = msr_reference()
TRAINING = [name for name in REF if name.endswith("_training")]
FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _cap(graph, k, frac, schedule):
    """A cap ``frac`` of the way from the largest class need to everything in one stage."""
    if frac is None:
        return None
    con = graph.contract()
    infl = k if schedule == "1f1b" else 1
    need = graph.mem + graph.act_mem
    lo = float(np.bincount(con.node_map, weights=need).max())
    hi = float(graph.mem.sum() + infl * graph.act_mem.sum())
    return lo + frac * max(hi - lo, 0.0)


problems = st.tuples(small_training_graphs(act=True), st.integers(1, 3),
                     st.one_of(st.none(), st.floats(0.0, 1.0)), st.sampled_from(["plain", "1f1b"]))


def _check_valid(graph, part, k, cap, schedule):
    assert is_valid_training_reference(graph, part.stage, k, cap, schedule)
    got = max(reference_stage_costs(graph, part.stage, k))
    assert part.bottleneck == pytest.approx(got, rel=1e-12, abs=1e-12)
    return got


# ----------------------------------------------------------------------------- evaluation
@FAST
@given(small_training_graphs(act=True), st.integers(1, 4), st.data())
def test_evaluate_matches_literal_definition(graph, k, data):
    stage = data.draw(st.lists(st.integers(0, k - 1), min_size=graph.n, max_size=graph.n))
    part = Partition(graph, stage, k)
    assert np.allclose(part.stage_costs(), reference_stage_costs(graph, stage, k), atol=1e-12)
    for sched in ("plain", "1f1b"):
        assert np.allclose(part.stage_memory(sched), stage_memory_reference(graph, stage, k, sched))
    ok = is_valid_training_reference(graph, stage, k)
    assert part.is_valid() == ok
    v = data.draw(st.integers(0, graph.n - 1))
    t = data.draw(st.integers(0, k - 1))
    moved = list(stage)
    moved[v] = t
    delta = part.move_delta(v, t)
    assert np.allclose(part.stage_costs() + delta, reference_stage_costs(graph, moved, k),
                       atol=1e-12)


# ----------------------------------------------------------------------------- exact DP
@FAST
@given(problems)
def test_ideals_match_brute_force(args):
    graph, k, frac, schedule = args
    cap = _cap(graph, k, frac, schedule)
    best, _ = brute_force_classes(graph, k, cap, schedule)
    try:
        res = solve_exact(graph, k, mem_cap=cap, schedule=schedule)
    except pipecore.InfeasibleMemoryError:
        assert math.isinf(best)
        return
    if math.isinf(best):
        assert res.quality is Quality.INFEASIBLE
        return
    assert res.quality is Quality.OPTIMAL
    assert _check_valid(graph, res.partition, k, cap, schedule) == pytest.approx(best, abs=1e-9)
    for reduce in (False,):
        other = solve_exact(graph, k, mem_cap=cap, schedule=schedule, reduce=reduce,
                            warm_start=False)
        assert other.upper_bound == pytest.approx(best, abs=1e-9)


@pytest.mark.parametrize("name", TRAINING)
@pytest.mark.parametrize("method", ["ideals", "auto"])
def test_reproduces_training_reference(name, method):
    g = pipecore.load_graph(msr_path(name))
    assert g.is_training
    k = REF[name]["k"]
    res = pipecore.solve(g, k, method=method, mem_cap=g.metadata["mem_cap"], time_limit=120)
    assert res.quality is Quality.OPTIMAL and res.partition.is_valid(g.metadata["mem_cap"])
    assert res.upper_bound == pytest.approx(REF[name]["optimum"], rel=1e-9)
    assert res.lower_bound <= res.upper_bound
    got = max(reference_stage_costs(g, res.partition.stage, k))   # literal cost model
    assert got == pytest.approx(REF[name]["optimum"], rel=1e-9)


def test_training_references_cover_the_data():
    """Every artifact training file in tests/data/msr has a REFERENCE.json entry (k, optimum,
    nodes, section 1b semantics) and every entry has its file."""
    files = {p.stem for p in msr_path("x").parent.glob("*_training.json")}
    assert files == set(TRAINING) and len(TRAINING) >= 4
    for name in TRAINING:
        assert REF[name]["semantics"].startswith("training")


@pytest.mark.parametrize("name", TRAINING)
def test_training_reference_imports(name):
    g = pipecore.load_graph(msr_path(name))
    raw = json.loads(msr_path(name).read_text())
    assert g.is_training and g.n == REF[name]["nodes"] == len(raw["nodes"])
    assert g.metadata["k"] == REF[name]["k"] == raw["maxFPGAs"]
    assert int(g.backward.sum()) == sum(bool(v["isBackwardNode"]) for v in raw["nodes"])
    assert g.total_work == pytest.approx(sum(v["fpgaLatency"] for v in raw["nodes"]))


# ----------------------------------------------------------------------------- heuristics, bounds
HEURISTICS = ["slicegraph", "local", "anneal", "random", "balanced", "uniform", "mip"]


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(problems)
def test_heuristics_valid_and_bounds_below_brute_force(args):
    """Every method returns a partition valid under section 1b (and the schedule's memory)
    worth at least the optimum, and every lower bound (its own, the combinatorial ones, the
    MIP relaxations) is at most the optimum."""
    from oracle import run_method

    from pipecore.bounds.certificate import mip_bounds, quick_bound
    from pipecore.problem import Problem
    from pipecore.solver import get_method

    graph, k, frac, schedule = args
    cap = _cap(graph, k, frac, schedule)
    best, _ = brute_force_classes(graph, k, cap, schedule)
    try:
        problem = Problem(graph, k, cap, schedule)
    except pipecore.InfeasibleMemoryError:
        assert math.isinf(best)
        return
    for name in HEURISTICS:
        res = run_method(get_method(name), graph, k, cap, schedule=schedule, seed=1,
                         **({"time_limit": 2} if False else {}))
        if res.partition is not None:
            assert is_valid_training_reference(graph, res.partition.stage, k, cap, schedule), \
                (name, graph.src, graph.dst, graph.group, graph.mem, graph.act_mem,
                 res.partition.stage)
            got = _check_valid(graph, res.partition, k, cap, schedule)
            assert got >= best - 1e-9, name
            if name == "mip":
                assert got == pytest.approx(best, abs=1e-6), "exact MIP not optimal"
        else:
            assert res.quality in (Quality.INFEASIBLE, Quality.NO_SOLUTION), name
        if res.quality is Quality.INFEASIBLE:
            assert math.isinf(best), name
        assert res.lower_bound <= best + 1e-9, name
    assert quick_bound(problem)[0] <= best + 1e-9
    cert = mip_bounds(problem, None, exact=True)
    assert cert.lower_bound <= best + 1e-9
    if cert.infeasible:
        assert math.isinf(best)


def test_local_search_uses_1f1b_memory():
    """A chain where the plain cap admits the even split but 1F1B does not: the descent
    must keep the state valid under 1F1B (first stage holds 2 micro-batches)."""
    from oracle import run_method

    from pipecore.solver import get_method

    g = Graph(4, [0, 1, 2], [1, 2, 3], [1, 1, 1, 1], [0.1] * 4, mem=[0, 0, 0, 0],
              act_mem=[1, 1, 1, 1])
    for name in ("local", "anneal", "slicegraph", "ideals"):
        res = run_method(get_method(name), g, 2, 3.0, schedule="1f1b", seed=0)
        assert res.partition is not None, name
        assert is_valid_training_reference(g, res.partition.stage, 2, 3.0, "1f1b"), name
        # stage 0 holds 2 micro-batches: at most one node there (2 <= 3), rest in stage 1
        assert res.upper_bound == pytest.approx(3.1), name


# ----------------------------------------------------------------------------- MSR importer
def _msr(nodes, edges):
    from pipecore.io import msr

    return msr.graph_from_dict({"maxFPGAs": 2, "nodes": nodes, "edges": edges}, "<test>")


def _node(i, bw, color, work=1.0):
    return {"id": i, "name": f"n{i}", "fpgaLatency": work, "isBackwardNode": bw,
            "colorClass": color, "size": 1.0}


def test_msr_importer_sets_training_fields():
    g = _msr([_node(0, False, 7), _node(1, False, 8), _node(2, True, 8), _node(3, True, 7),
              _node(4, 1, None)],
             [{"sourceId": 0, "destId": 1, "cost": 1}, {"sourceId": 1, "destId": 2, "cost": 1},
              {"sourceId": 2, "destId": 3, "cost": 2}, {"sourceId": 2, "destId": 4, "cost": 2}])
    assert g.is_training and g.backward.tolist() == [False, False, True, True, True]
    assert g.group[1] == g.group[2] and g.group[0] == g.group[3]
    # a backward node without colorClass: an orphan class of its own, ordered by the
    # mirrored edge 4 -> class(2), i.e. its placeholder precedes class 8's forward node
    assert g.group[4] not in g.group[:4]
    ps, pd = g.precedence_edges()
    assert (4, 1) in set(zip(ps.tolist(), pd.tolist()))
    assert not _msr([_node(0, False, 1)], []).is_training   # no backward node: inference


def test_msr_importer_rejects_undefined_training_input():
    with pytest.raises(FileFormatError, match="backward node to a forward node"):
        _msr([_node(0, True, 1), _node(1, False, 1)], [{"sourceId": 0, "destId": 1}])
    with pytest.raises(FileFormatError, match="nothing decides its stage"):
        _msr([_node(0, False, 1), _node(1, True, 2)], [{"sourceId": 0, "destId": 1}])
    with pytest.raises(FileFormatError, match="colorClass"):
        _msr([_node(0, False, 1.5)], [])
    with pytest.raises(FileFormatError, match="isBackwardNode"):
        _msr([_node(0, "yes", 1)], [])
    # ids are compared exactly: 1 and "1" are two classes (documented)
    g = _msr([_node(0, False, 1), _node(1, True, "1"), _node(2, False, 2), _node(3, True, 2)],
             [{"sourceId": 0, "destId": 3}, {"sourceId": 3, "destId": 1}])
    assert g.group[0] != g.group[1]
