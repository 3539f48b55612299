"""MCM search: slicing DP against brute force, free chip order, baselines under a work budget."""
import itertools
import math

import numpy as np
import pytest

from pipecore.generators import dnn_like, layered_dag
from pipecore.mcm import MCMConfig, MCMProblem, greedy_repair, preset, repair
from pipecore.errors import InvalidOptionError
from pipecore.mcm.baselines import (Tracker, anneal, brkga, evolve, random_search,
                                    seed_chromosomes)


def _brute_slicing(p: MCMProblem, order, perm, use_all=False) -> float:
    """Best valid partition whose stages are contiguous runs of ``order`` on ``perm``."""
    n, C = p.graph.n, p.C
    cls = p.contraction.node_map[order]
    cuts = [i for i in range(1, n) if cls[i] != cls[i - 1]]
    best = math.inf
    for k in range(min(C - 1, len(cuts)) + 1):
        for cs in itertools.combinations(cuts, k):
            bounds = [0, *cs, n]
            for stages in itertools.combinations(range(C), len(bounds) - 1):
                if use_all and len(stages) < C:
                    continue
                chip = np.empty(n, dtype=np.int32)
                for s, (a, b) in zip(stages, zip(bounds[:-1], bounds[1:])):
                    chip[order[a:b]] = perm[s]
                bott, valid = p.evaluate(chip)
                if valid[0]:
                    best = min(best, float(bott[0]))
    return best


def _random_problem(rng, order="free", latency=0.0):
    g = layered_dag(int(rng.integers(4, 9)), seed=int(rng.integers(1000)))
    C = int(rng.integers(2, 4))
    sram = float(g.mem.sum() * rng.uniform(0.4, 1.5)) if rng.random() < 0.5 else math.inf
    cfg = MCMConfig(C, compute_rate=rng.uniform(0.5, 2, C), sram=sram, order=order,
                    link_bandwidth=float(rng.uniform(0.5, 2)), hop_latency=latency)
    return MCMProblem(g, cfg)


@pytest.mark.parametrize("use_all", [False, True])
def test_slicing_dp_is_exact_without_latency(use_all):
    rng = np.random.default_rng(7 + use_all)
    for _ in range(40):
        p = _random_problem(rng)
        order = p.orders_from_keys(rng.random((1, p.quotient.n)))[0]
        perm = rng.permutation(p.C).astype(np.int32)
        chips, val, ev = p.decode_orders(order[None], perm[None], use_all_chips=use_all)
        expect = _brute_slicing(p, order, perm, use_all)
        if math.isinf(expect):
            assert math.isinf(val[0])
            continue
        assert val[0] == pytest.approx(expect, rel=1e-9, abs=1e-12)
        assert not p.violations(chips[0]) and ev[0] > 0
        assert p.evaluate(chips)[0][0] == pytest.approx(val[0])
        if use_all:
            assert np.unique(chips[0]).size == p.C


def test_decoder_with_latency_is_valid_and_never_worse_than_its_cut():
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = _random_problem(rng, latency=0.3)
        keys = rng.random((4, p.quotient.n))
        paths = np.tile(np.arange(p.C), (4, 1))
        dp_chips, dp_val, dp_ev = p.decode(keys, paths)
        cut_chips, cut_val, cut_ev = p.decode(keys, paths, dp=False)
        np.testing.assert_array_equal(cut_ev, 1.0)  # a cut costs one evaluation
        assert np.all(dp_val <= cut_val + 1e-12) and np.all(dp_ev > 1)
        for c, v in zip(dp_chips, dp_val):
            if math.isfinite(v):
                assert not p.violations(c) and p.evaluate(c)[0][0] == pytest.approx(v)


def test_free_order_validity_is_acyclicity():
    g = layered_dag(30, seed=2)
    chain = MCMProblem(g, MCMConfig(3))
    free = MCMProblem(g, MCMConfig(3, order="free"))
    rng = np.random.default_rng(0)
    for _ in range(50):
        chip = rng.integers(0, 3, size=g.n).astype(np.int32)
        perm = rng.permutation(3)
        forward = chain.evaluate(chip)[1][0]
        relabelled = perm[chip].astype(np.int32)  # a chain-valid partition on any chip order
        assert free.evaluate(relabelled)[1][0] >= forward
        ok = free.evaluate(chip)[1][0]
        assert ok == (free.chip_order(chip) is not None) == (not free.violations(chip))
    from pipecore import Graph

    path3 = Graph(3, [0, 1], [1, 2], work=[1, 1, 1], comm=[1, 1, 1])
    p3 = MCMProblem(path3, MCMConfig(2, order="free"))
    assert "cycle" in p3.violations([1, 0, 1])[0] and not p3.evaluate([1, 0, 1])[1][0]
    assert p3.evaluate([1, 0, 0])[1][0] and p3.chip_order([1, 0, 0]).tolist() == [1, 0]


def test_het_preset_paths_are_hamiltonian():
    cfg = preset("mesh-2x4-het")
    assert cfg.order == "free" and sorted(cfg.rate.tolist()) == [0.5, 0.5, 1, 1, 1, 1, 2, 2]
    paths = cfg.paths()
    assert paths.shape == (28, 8)
    hops = cfg.hops()
    for path in paths:
        assert sorted(path) == list(range(8)) and np.all(hops[path[:-1], path[1:]] == 1)
    assert preset("ring-8").paths().tolist() == [list(range(8))]
    with pytest.raises(ValueError):
        MCMConfig(3, order="sideways")


def test_move_delta_matches_full_evaluation():
    g = dnn_like(5, seed=3)
    p = MCMProblem(g, preset("mesh-2x4-het").sized_for(g, 3.0, latency_per_comm=0.5))
    rng = np.random.default_rng(1)
    chip = rng.integers(0, 8, size=g.n).astype(np.int32)
    for _ in range(30):
        v, c = int(rng.integers(g.n)), int(rng.integers(8))
        before = p.chip_costs(chip)
        delta = np.zeros(8)
        steps = p.kernel.move_delta(chip, v, c, delta)
        assert chip[v] == c and steps >= 0
        np.testing.assert_allclose(before + delta, p.chip_costs(chip), atol=1e-9)


@pytest.mark.parametrize("package", ["ring-4", "mesh-2x4-het"])
def test_baselines_respect_budget_validity_and_seed(package):
    g = dnn_like(6, seed=1)
    p = MCMProblem(g, preset(package).sized_for(g, 2.0, latency_per_comm=0.5))
    budget = 3000
    runs = [random_search(p, budget, seed=1, decoder="cut"),
            random_search(p, budget, seed=1, decoder="dp"),
            random_search(p, 300, seed=1, decoder="repair"),
            anneal(p, budget, seed=1), brkga(p, budget, seed=1, population=16)]
    for r in runs:
        assert r.chip is not None and not p.violations(r.chip), r.method
        assert r.bottleneck == pytest.approx(p.evaluate(r.chip)[0][0])
        assert np.all(np.diff(r.trace_best) <= 1e-12) and np.all(np.diff(r.trace_evals) >= 0)
        assert r.trace_best[-1] == pytest.approx(r.bottleneck)
        limit = 300 if r.method == "random-repair" else budget
        # a decode started within the budget may finish past it by its own cost
        assert r.evaluations <= limit * 1.25 + 200, (r.method, r.evaluations)
    assert anneal(p, budget, seed=1).bottleneck == runs[3].bottleneck
    assert brkga(p, budget, seed=1, population=16).bottleneck == runs[4].bottleneck
    assert runs[3].bottleneck <= runs[3].stats["start"] + 1e-12


def test_evolve_keeps_known_rows_unpaid_and_its_elite():
    g = dnn_like(5, seed=3)
    p = MCMProblem(g, preset("mesh-2x4-het").sized_for(g, 2.0, latency_per_comm=0.5))
    q, C = p.quotient.n, p.C
    rng = np.random.default_rng(0)
    pop = rng.random((12, q + C))
    chips, val, _ = p.decode(pop[:, :q], p.perms_from_keys(pop[:, q:]))
    tr = Tracker()
    tr.spent = 100.0
    # every row known and nothing left to spend: no decode, no generation
    assert evolve(p, 100.0, tr, rng, pop.copy(), val) == 0 and tr.spent == 100.0
    # known rows are not decoded again; the rows left NaN are
    decoded = []
    real = p.decode
    p.decode = lambda keys, *a, **k: (decoded.append(keys.copy()), real(keys, *a, **k))[1]
    fit = val.copy()
    fit[6:] = np.nan
    evolve(p, 100.0 + 1e-9, tr, rng, pop.copy(), fit)
    del p.decode
    assert np.array_equal(np.concatenate(decoded), pop[6:, :q])
    # with a budget, generations run and the known best (an elite row) is never lost
    tr = Tracker()
    tr.best = float(val.min())
    assert evolve(p, 3000, tr, np.random.default_rng(1), pop.copy(), val) >= 1
    assert 3000 <= tr.spent <= 3000 * 1.25 + 200 and tr.best <= val.min()
    with pytest.raises(ValueError, match="pop must be"):
        evolve(p, 10, Tracker(), rng, pop[:, :q])
    with pytest.raises(ValueError, match="fit must have"):
        evolve(p, 10, Tracker(), rng, pop, val[:3])


def test_seed_chromosomes_screen_paths_by_cut_and_charge_it():
    g = dnn_like(6, branches=3, seed=4)
    p = MCMProblem(g, preset("mesh-2x4-het").sized_for(g, 2.0, latency_per_comm=0.5))
    q, C, K = p.quotient.n, p.C, len(p.paths)
    first = (np.argsort(p.paths[0]) + 0.5) / C       # keys that put the stages on paths[0]
    plain = seed_chromosomes(p, first)
    assert plain.shape == (5, q + C) and np.array_equal(p.perms_from_keys(plain[:, q:])[0], p.paths[0])
    tr = Tracker()
    rows = seed_chromosomes(p, first, tr, budget=1e9)
    assert 5 <= len(rows) <= 10 and tr.spent == pytest.approx(5 * K)
    assert len({r.tobytes() for r in rows}) == len(rows)           # no duplicates
    # the first row is the order whose cut is cheapest, on the path where it is cheapest
    cut_best = math.inf
    for r in plain:
        _, val, _ = p.decode(np.repeat(r[None, :q], K, axis=0), p.paths, dp=False)
        cut_best = min(cut_best, val.min())
    _, v0, _ = p.decode(rows[:1, :q], p.perms_from_keys(rows[:1, q:]), dp=False)
    assert v0[0] == pytest.approx(cut_best) and tr.best == pytest.approx(cut_best)
    assert any(np.array_equal(r, plain[0]) for r in rows)          # path-0 rows kept
    # no screen past the budget, nor on a chain package
    tr = Tracker()
    assert len(seed_chromosomes(p, first, tr, budget=5 * K - 1)) == 5 and tr.spent == 0
    pc = MCMProblem(g, preset("ring-4").sized_for(g, 2.0))
    assert len(seed_chromosomes(pc, np.arange(pc.C) + 0.5, Tracker(), 1e9)) == 5


def test_free_order_repair_is_valid():
    g = dnn_like(4, seed=5)
    cfg = MCMConfig(4, topology="mesh", mesh_shape=(2, 2), order="free",
                    sram=float(g.mem.sum() * 1.5 / 4 + g.mem.max()))
    p = MCMProblem(g, cfg)
    rng = np.random.default_rng(0)
    for _ in range(4):
        prop = rng.integers(0, 4, size=g.n)
        for method in ("greedy", "mip"):
            res = repair(p, prop, method=method, time_limit=20)
            assert res.success and not p.violations(res.chip)
            assert res.moved == int((res.chip != prop).sum())
    # a partition valid only in a free order (chips used in reverse) is kept as it is
    rev = (3 - np.minimum(np.argsort(np.argsort(g.topological_order())) * 4 // g.n, 3))
    rev = rev.astype(np.int32)[p.rep[p.node_map]]
    if not p.violations(rev):
        assert greedy_repair(p, rev).moved == 0


def test_option_validation_errors():
    g = dnn_like(3, seed=0)
    p = MCMProblem(g, preset("ring-4"))
    for bad in (-5, 0, float("nan"), "10", True):
        with pytest.raises(ValueError):
            anneal(p, bad)
    with pytest.raises(ValueError):
        random_search(p, 100, decoder="nope")
    with pytest.raises(ValueError):
        anneal(p, 100, p_swap=0.9, p_perm=0.5)
    with pytest.raises(ValueError):
        brkga(p, 100, elite=0.9, mutants=0.2)
    # the tuning options go through pipecore.options: one vocabulary and error type
    with pytest.raises(InvalidOptionError, match="population"):
        brkga(p, 100, population=1)
    with pytest.raises(InvalidOptionError, match="seed"):
        anneal(p, 100, seed=True)
    with pytest.raises(InvalidOptionError, match="elite"):
        brkga(p, 100, elite=1.0)
    with pytest.raises(InvalidOptionError, match="budget"):
        anneal(p, "10")


@pytest.mark.parametrize("argv, text", [
    (["--budget", "-5"], "--budget"), (["--sram-slack", "0"], "--sram-slack"),
    (["--hop-latency", "-1"], "--hop-latency"), (["--threads", "0"], "--threads"),
    (["--time-limit", "nan"], "--time-limit"), (["--method", "magic"], "--method")])
def test_cli_rejects_bad_values(argv, text, capsys):
    from pipecore.cli import main

    assert main(["mcm", "--model", "resnet50", *argv]) == 2
    assert text in capsys.readouterr().err


def test_cli_new_methods_json(capsys):
    import json

    from pipecore.cli import main

    for method in ("slicegraph-mcm", "random"):
        assert main(["mcm", "--model", "inception-v1", "--package", "mesh-2x4-het",
                     "--sram-slack", "2", "--method", method, "--budget", "3000", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert len(out["chip"]) == 143 and out["evaluations"] > 0


def test_method_options_are_type_checked():
    g = dnn_like(3, seed=0)
    p = MCMProblem(g, preset("ring-4"))
    with pytest.raises(InvalidOptionError, match="seed"):
        anneal(p, 100, seed=1.5)
    with pytest.raises(ValueError, match="seed"):
        random_search(p, 100, seed=-1)
    with pytest.raises(InvalidOptionError, match="use_all_chips"):
        brkga(p, 100, use_all_chips="yes")
    with pytest.raises(InvalidOptionError, match="population"):
        brkga(p, 100, population=True)
    with pytest.raises(TypeError):
        anneal(p, 100, temperature=3)
