"""Constraint repair: MIP optimality against brute force, greedy validity, baselines."""
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from oracle import small_graphs

from pipecore import Graph, errors
from pipecore.generators import dnn_like, layered_dag
from pipecore.mcm import MCMConfig, MCMProblem, greedy_repair, greedy_repair_batch, preset, repair
from pipecore.mcm.baselines import anneal, random_search


def _brute(p: MCMProblem, cost_fn, use_all: bool):
    """min over all valid assignments of cost_fn(chip); (inf, None) when none is valid."""
    best, arg = math.inf, None
    for chip in itertools.product(range(p.C), repeat=p.graph.n):
        chip = np.array(chip)
        if p.violations(chip) or (use_all and np.unique(chip).size < p.C):
            continue
        c = cost_fn(chip)
        if c < best - 1e-12:
            best, arg = c, chip
    return best, arg


@settings(max_examples=25)
@given(small_graphs(max_nodes=6, groups=True), st.integers(1, 3), st.booleans(), st.data())
def test_mip_moves_matches_brute_force(g, C, use_all, data):
    sram = data.draw(st.sampled_from([math.inf, 4.0, 6.0, 9.0]))
    p = MCMProblem(g, MCMConfig(C, sram=sram))
    prop = np.array(data.draw(st.lists(st.integers(0, C - 1), min_size=g.n, max_size=g.n)))
    best, _ = _brute(p, lambda ch: int((ch != prop).sum()), use_all)
    try:
        res = repair(p, prop, use_all_chips=use_all, time_limit=20)
    except errors.InfeasibleMemoryError:  # necessary conditions already fail
        assert best == math.inf
        return
    if best == math.inf:
        assert res.chip is None and res.quality.value in ("infeasible", "no_solution")
        return
    assert res.quality.value == "optimal", res.message
    assert not p.violations(res.chip)
    if use_all:
        assert np.unique(res.chip).size == C
    assert res.moved == best == pytest.approx(res.objective)
    gr = greedy_repair(p, prop, use_all_chips=use_all)
    if gr.success:  # greedy is valid and never better than the optimum
        assert not p.violations(gr.chip)
        assert gr.moved >= best


@settings(max_examples=15)
@given(small_graphs(max_nodes=5), st.integers(2, 3), st.data())
def test_mip_likelihood_matches_brute_force(g, C, data):
    p = MCMProblem(g, MCMConfig(C, sram=data.draw(st.sampled_from([math.inf, 5.0]))))
    raw = data.draw(st.lists(st.floats(0.01, 1.0), min_size=g.n * C, max_size=g.n * C))
    probs = np.array(raw).reshape(g.n, C)
    probs /= probs.sum(axis=1, keepdims=True)
    nll = -np.log(probs)
    best, _ = _brute(p, lambda ch: float(nll[np.arange(g.n), ch].sum()), False)
    try:
        res = repair(p, probs=probs, objective="likelihood", time_limit=20)
    except errors.InfeasibleMemoryError:
        assert best == math.inf
        return
    if best == math.inf:
        assert res.chip is None
        return
    assert res.quality.value == "optimal"
    assert res.objective == pytest.approx(best, rel=1e-6, abs=1e-6)
    assert float(nll[np.arange(g.n), res.chip].sum()) == pytest.approx(best, rel=1e-6, abs=1e-6)


def test_valid_proposal_is_kept():
    g = dnn_like(4, seed=2)
    p = MCMProblem(g, preset("ring-4"))
    prop = p.reference_chips
    for method in ("mip", "greedy"):
        res = repair(p, prop, method=method)
        assert res.moved == 0 and np.array_equal(res.chip, prop)


def test_backward_proposal_is_repaired_minimally():
    # chain 0 -> 1 -> 2 -> 3 proposed as [1, 0, 1, 1]: moving node 0 or node 1 fixes it
    g = Graph(4, [0, 1, 2], [1, 2, 3], work=[1, 1, 1, 1], comm=[1, 1, 1, 1])
    p = MCMProblem(g, MCMConfig(2))
    res = repair(p, [1, 0, 1, 1])
    assert res.moved == 1 and res.quality.value == "optimal"
    gr = greedy_repair(p, [1, 0, 1, 1])
    assert gr.moved == 1


def test_use_all_and_sram_infeasible_are_reported():
    g = Graph(2, [0], [1], work=[1, 1], mem=[1, 1])
    with pytest.raises(errors.InfeasibleMemoryError):
        repair(MCMProblem(g, MCMConfig(3)), [0, 0], use_all_chips=True)
    with pytest.raises(errors.InfeasibleMemoryError):
        repair(MCMProblem(g, MCMConfig(2, sram=0.5)), [0, 0])
    # passes the necessary checks but is infeasible: group of mem 2 on chips of 1.5
    g2 = Graph(3, [0, 1], [1, 2], work=[1, 1, 1], mem=[1, 1, 1], group=[0, 0, -1])
    p2 = MCMProblem(g2, MCMConfig(3, sram=[1.5, 1.5, 3.0]))
    res = repair(p2, [0, 0, 0])
    assert res.success and res.chip.tolist() == [2, 2, 2] and res.moved == 3
    res = repair(MCMProblem(g2, MCMConfig(3, sram=[1.5, 1.5, 2.5])), [0, 0, 0])
    assert res.chip is None and res.quality.value == "infeasible"
    assert not greedy_repair(MCMProblem(g2, MCMConfig(3, sram=[1.5, 1.5, 2.5])), [0, 0, 0]).success


def test_greedy_batch_valid_on_larger_graphs():
    for g in (layered_dag(300, seed=1), dnn_like(10, seed=4)):
        cfg = preset("ring-8").sized_for(g, 1.5)
        p = MCMProblem(g, cfg)
        rng = np.random.default_rng(0)
        props = rng.integers(0, 8, size=(64, g.n))
        chips, ok, moved = greedy_repair_batch(p, props, use_all_chips=True)
        assert ok.mean() > 0.9
        bott, valid = p.evaluate(chips[ok])
        assert valid.all()
        assert all(np.unique(c).size == 8 for c in chips[ok])
        np.testing.assert_array_equal(moved, (chips != props).sum(axis=1))


def test_mip_beats_or_ties_greedy_and_reports_distance():
    g = dnn_like(5, seed=7)
    p = MCMProblem(g, preset("ring-4").sized_for(g, 1.2))
    rng = np.random.default_rng(3)
    for _ in range(3):
        prop = rng.integers(0, 4, size=g.n)
        exact = repair(p, prop, use_all_chips=True, time_limit=30)
        gr = greedy_repair(p, prop, use_all_chips=True)
        assert exact.quality.value in ("optimal", "feasible")
        assert not p.violations(exact.chip)
        assert exact.moved == int((exact.chip != prop).sum())
        if gr.success:
            assert exact.moved <= gr.moved
            assert exact.bound <= exact.objective + 1e-9


def test_search_baselines_return_valid_and_monotone_traces():
    g = dnn_like(6, seed=1)
    p = MCMProblem(g, preset("ring-4").sized_for(g, 1.3))
    r = random_search(p, 300, seed=1)
    a = anneal(p, 3000, seed=1)
    for res in (r, a):
        assert res.chip is not None and not p.violations(res.chip)
        assert res.bottleneck == pytest.approx(p.evaluate(res.chip)[0][0])
        assert np.all(np.diff(res.trace_best) <= 1e-12)
        assert res.trace_best[-1] == pytest.approx(res.bottleneck)
    assert a.bottleneck <= a.stats["start"] + 1e-12
    assert random_search(p, 300, seed=1).bottleneck == r.bottleneck  # seeded
    assert anneal(p, 3000, seed=1).bottleneck == a.bottleneck


def test_mip_timeout_or_failure_falls_back_to_greedy(monkeypatch):
    import importlib

    rep = importlib.import_module("pipecore.mcm.repair")  # the module, not the function

    g = dnn_like(4, seed=5)
    p = MCMProblem(g, preset("ring-4").sized_for(g, 1.3))
    prop = np.random.default_rng(0).integers(0, 4, size=g.n)
    greedy = greedy_repair(p, prop)
    from pipecore.bounds.mip import MipResult
    from pipecore.result import Quality, Termination

    stopped = MipResult(Termination.TIME_LIMIT, Quality.NO_SOLUTION, None, math.nan, 3.0, "highs")
    monkeypatch.setattr(rep, "_solve_binary", lambda *a, **k: stopped)
    res = repair(p, prop, time_limit=0.01)
    assert res.method == "mip[highs]->greedy" and res.quality.value == "feasible"
    assert res.termination.value == "time_limit"
    assert np.array_equal(res.chip, greedy.chip) and res.moved == greedy.moved

    def boom(*a, **k):
        raise RuntimeError("backend crashed")

    monkeypatch.setattr(rep, "_solve_binary", boom)
    res = repair(p, prop)
    assert res.method == "mip->greedy" and "backend crashed" in res.message
    assert not p.violations(res.chip)


def test_cli_mcm_json(capsys):
    import json

    from pipecore.cli import main

    assert main(["mcm", "--model", "resnet50", "--sram-slack", "2", "--method", "anneal",
                 "--budget", "2000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "anneal" and len(out["chip"]) == 176
    assert out["bottleneck"] == pytest.approx(max(c + t for c, t in zip(out["compute"], out["traffic"])))
