"""Lower bounds: combinatorial bounds and every MIP formulation against brute force."""
import math

import numpy as np
import pytest
import pipecore
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle import (brute_force, cap_between, capped_problems, msr_path, msr_reference,
                    small_graphs)
from pipecore import Graph, Partition, load_graph
from pipecore._runtime import Budget
from pipecore.bounds import combinatorial_bound, mip_bounds, quick_bound, safe_floor
from pipecore.problem import Problem
from pipecore.result import Quality
from pipecore.bounds.combinatorial import neighbourhood_bound
from pipecore.bounds.mip import solve_model
from pipecore.bounds.mip.formulations import (PipelineInstance, block_model, exact_model,
                                              part_of_stage, position_model)

EPS = 1e-9


@given(capped_problems)
def test_combinatorial_bound_is_valid(prob):
    graph, k, frac = prob
    cap = cap_between(graph, k, frac)
    opt, _ = brute_force(graph, k, cap)
    b = combinatorial_bound(graph, k, cap)
    if math.isfinite(opt):
        assert b.value <= opt + EPS, (b.parts, opt)
    assert b.value >= graph.work.sum() / k - EPS


@given(small_graphs(max_nodes=6, groups=False), st.integers(1, 4))
def test_neighbourhood_bound_valid_without_groups(graph, k):
    opt, _ = brute_force(graph, k)
    assert neighbourhood_bound(graph) <= opt + EPS


def test_neighbourhood_bound_counts_unavoidable_communication():
    # a -> b with work 1 each and comm 5: any stage holding b holds a (cost 2) or receives a
    g = Graph(2, [0], [1], work=[1, 1], comm=[5, 0])
    assert neighbourhood_bound(g) == pytest.approx(2.0)
    g = Graph(2, [0], [1], work=[4, 1], comm=[0.5, 0])
    assert neighbourhood_bound(g) == pytest.approx(4.5)  # a's stage: a + min(b's work, send a)
    assert combinatorial_bound(g, 2).value == pytest.approx(4.5)
    # k = 1: no communication is ever paid; the bound must not exceed W
    assert combinatorial_bound(g, 1).value <= 5 + EPS


@settings(max_examples=25)
@given(capped_problems)
def test_exact_mip_matches_brute_force(prob):
    graph, k, frac = prob
    cap = cap_between(graph, k, frac)
    opt, _ = brute_force(graph, k, cap)
    prob_ = Problem(graph, k, cap)
    inst = PipelineInstance.build(prob_)
    cm = exact_model(inst)
    res = solve_model(cm.model, backend="highs", tolerance=1e-9, mip_rel_gap=1e-9,
                      mip_abs_gap=1e-10)
    if not math.isfinite(opt):
        assert res.quality is Quality.INFEASIBLE
        return
    assert res.quality is Quality.OPTIMAL
    assert safe_floor(res.dual_bound, prob_) <= opt + EPS
    assert res.dual_bound == pytest.approx(opt, rel=1e-6, abs=1e-6)
    part = prob_.expand(cm.decode_stage(res.x))
    assert part.is_valid(cap)
    assert part.bottleneck == pytest.approx(opt, rel=1e-6, abs=1e-6)


@settings(max_examples=25)
@given(capped_problems)
def test_relaxations_are_valid_and_warm_starts_feasible(prob):
    graph, k, frac = prob
    cap = cap_between(graph, k, frac)
    opt, arg = brute_force(graph, k, cap)
    if not math.isfinite(opt):
        return
    prob_ = Problem(graph, k, cap)
    inst = PipelineInstance.build(prob_)
    k = inst.k  # more stages than classes only adds empty ones
    arg = np.unique(arg, return_inverse=True)[1]
    stage_c = inst.class_stage(arg)
    part = Partition(graph, arg, k)
    bneck = int(np.argmax(part.stage_costs()))
    models = [("block", block_model(inst), np.where(stage_c < bneck, 0,
                                                    np.where(stage_c == bneck, 1, 2)))]
    for i in range(k):
        for w in (1, 2):
            models.append((f"pos{i}w{w}", position_model(inst, i, window=w),
                           part_of_stage("position", k, stage_c, i, w)))
    models.append(("exact", exact_model(inst), part_of_stage("exact", k, stage_c)))
    for name, cm, parts in models:
        if k == 1 and name == "block":
            parts = np.zeros_like(parts)
        warm = cm.warm_start(parts)
        assert warm is not None, name  # the optimum is feasible for every relaxation
        assert warm[cm.t_index] <= opt + 1e-9, name
        res = solve_model(cm.model, backend="highs", tolerance=1e-9, mip_rel_gap=1e-9)
        assert res.quality is Quality.OPTIMAL, name
        assert res.dual_bound <= opt + 1e-6, (name, res.dual_bound, opt)
        assert safe_floor(res.dual_bound, prob_) <= opt + EPS


@settings(max_examples=20)
@given(capped_problems)
def test_lower_bound_pipeline_never_exceeds_optimum(prob):
    graph, k, frac = prob
    cap = cap_between(graph, k, frac)
    opt, arg = brute_force(graph, k, cap)
    if not math.isfinite(opt):
        return
    prob_ = Problem(graph, k, cap)
    comb = quick_bound(prob_)[0]
    for exact in (True, False):
        rep = mip_bounds(prob_, Partition(graph, arg, k), budget=Budget(20), comb=comb,
                         exact=exact, jobs=2)
        assert max(rep.lower_bound, comb) <= opt + EPS
        if exact and comb < opt * (1 - 1e-12):  # small enough to close
            assert rep.lower_bound == pytest.approx(opt, rel=1e-6, abs=1e-6)


def test_safe_floor():
    g = Problem(Graph(2, [0], [1], work=[1.0, 1.0], comm=[1.0, 0.0]), 2)
    assert safe_floor(2.0, g) < 2.0
    assert safe_floor(2.0, g) > 2.0 - 1e-6
    assert safe_floor(math.nan, g) == 0.0
    assert safe_floor(math.inf, g) == 0.0
    assert safe_floor(-1.0, g) == 0.0


def test_class_stage_and_instance_with_groups():
    # 0 -> 1 -> 2 with 0 and 2 grouped: the group's cycle swallows 1
    g = Graph(3, [0, 1], [1, 2], work=[1, 2, 3], comm=[1, 1, 1], group=[0, -1, 0])
    inst = PipelineInstance.build(Problem(g, 2))
    assert inst.q == 1 and inst.k == 1
    assert combinatorial_bound(g, 2).value == pytest.approx(6.0)
    assert pipecore.solve(g, 2).lower_bound == pytest.approx(6.0, rel=1e-6)


@pytest.mark.parametrize("name", ["layer_bert24_inference", "layer_gnmt_inference",
                                  "layer_resnet50_inference", "op_bert_l-3_inference",
                                  pytest.param("op_resnet50_inference", marks=pytest.mark.slow)])
def test_exact_mip_closes_msr_graphs(name):
    """The MIP alone (no DP) closes every shared graph at its reference k and cap."""
    ref = msr_reference()[name]
    g = load_graph(msr_path(name))
    cap = g.metadata.get("mem_cap")
    rep = mip_bounds(Problem(g, ref["k"], cap), budget=Budget(60), exact=True,
                     comb=combinatorial_bound(g, ref["k"], cap).value)
    assert rep.lower_bound <= ref["optimum"] + EPS
    assert rep.lower_bound >= ref["optimum"] * (1 - 1e-6)
    assert rep.partition is not None
    assert rep.partition.bottleneck == pytest.approx(ref["optimum"], rel=1e-9)


@pytest.mark.parametrize("name", ["layer_gnmt_inference", "op_resnet50_inference"])
def test_relaxation_bounds_on_msr_are_valid(name):
    ref = msr_reference()[name]
    g = load_graph(msr_path(name))
    cap = g.metadata.get("mem_cap")
    part = pipecore.solve(g, ref["k"], mem_cap=cap, method="balanced", bounds=False).partition
    rep = mip_bounds(Problem(g, ref["k"], cap), part, budget=Budget(8), exact=False, jobs=2,
                     comb=combinatorial_bound(g, ref["k"], cap).value)
    assert 0 < rep.lower_bound <= ref["optimum"] + EPS
    assert rep.lower_bound >= combinatorial_bound(g, ref["k"], cap).value - EPS
