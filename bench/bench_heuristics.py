"""Heuristic kernels: slicing DP, Kahn decoding, BRKGA, descent, annealing; and the
bottleneck table (baselines vs SliceGraph vs optimum) on the shared MSR graphs.

Run: python -m pytest bench/bench_heuristics.py --benchmark-only
(the MSR table is printed by ``test_msr_table``; add ``-s`` to see it)
"""
import json
import time
from pathlib import Path

import numpy as np
import pytest

from pipecore import Problem
from pipecore._runtime import Budget
from pipecore.algorithms.baselines import balanced_split, solve_random, uniform_split
from pipecore.algorithms.local_search import _state, polish_partition, solve_anneal, solve_local
from pipecore.algorithms.slicegraph import make_slicer, solve_slicegraph
from pipecore.generators import layered_dag
from pipecore.io import load_graph

MSR_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "msr"
MSR_GRAPHS = ["layer_bert24_inference", "layer_gnmt_inference", "layer_resnet50_inference",
              "op_bert_l-3_inference", "op_resnet50_inference"]

SIZES = [1_000, 10_000]
K = 64


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"n={n}")
def case(request):
    g = layered_dag(request.param, seed=0)
    g.contract()  # cached: not part of any timing
    return g, Problem(g, K)


def test_slice_dp(benchmark, case):
    """One exact slicing of the BFS order (k=64): enumeration + bisection checks."""
    g, prob = case
    sl = make_slicer(prob)
    order = np.ascontiguousarray(g.topological_order())
    val, stage, proven = benchmark(sl.slice_order, order)
    assert proven
    benchmark.extra_info.update(nodes=g.n, bottleneck=val,
                                balanced=balanced_split(g, K).bottleneck,
                                checks_per_call=sl.checks / max(1, benchmark.stats.stats.rounds))


def test_kahn_decode(benchmark, case):
    """Kahn smallest-key-first on the quotient, expanded to original nodes."""
    g, prob = case
    sl = make_slicer(prob)
    keys = np.random.default_rng(0).random(g.contract().graph.n)
    order = benchmark(sl.order_from_keys, keys)
    assert order.shape == (g.n,)


def test_brkga_generations(benchmark, case):
    """Five BRKGA generations (population 24)."""
    g, prob = case
    res = benchmark.pedantic(solve_slicegraph, args=(prob, Budget(None)),
                             kwargs=dict(seed=0, population=24, generations=5), rounds=1,
                             iterations=1)
    benchmark.extra_info.update(bottleneck=res.upper_bound)


def test_descent(benchmark, case):
    """Descent to a local optimum from the work-balanced split."""
    g, prob = case
    part = balanced_split(g, K)
    out = benchmark.pedantic(polish_partition, args=(prob, part), rounds=1, iterations=1)
    benchmark.extra_info.update(start=part.bottleneck, end=out.bottleneck)


def test_anneal_steps(benchmark, case):
    """200k annealing steps (throughput of the incremental move kernel)."""
    g, prob = case
    part = balanced_split(g, K)
    st = _state(prob, part.stage, 1)
    scale = part.bottleneck
    benchmark.pedantic(st.anneal, args=(200_000, 0.03 * scale, 1e-4 * scale), rounds=1,
                       iterations=1)
    benchmark.extra_info.update(steps_per_second=200_000 / benchmark.stats.stats.min)


def msr_table(time_limit: float = 30.0, seed: int = 0) -> list[dict]:
    """Unpolished bottlenecks of each method on the MSR graphs at k = maxFPGAs, with the cap."""
    ref = json.loads((MSR_DIR / "REFERENCE.json").read_text())
    rows = []
    for name in MSR_GRAPHS:
        g = load_graph(MSR_DIR / f"{name}.json")
        k, cap, opt = ref[name]["k"], g.metadata.get("mem_cap"), ref[name]["optimum"]
        row = {"graph": name, "nodes": g.n, "k": k, "optimum": opt,
               "uniform": uniform_split(g, k, mem_cap=cap).bottleneck,
               "balanced": balanced_split(g, k, mem_cap=cap).bottleneck}
        for label, fn, opts in (("random", solve_random, {}), ("local", solve_local, {}),
                                ("anneal", solve_anneal, {}),
                                ("slicegraph", solve_slicegraph, {})):
            t0 = time.perf_counter()
            res = fn(Problem(g, k, cap), Budget(time_limit), seed=seed, **opts)
            row[label] = res.upper_bound
            row[label + "_s"] = time.perf_counter() - t0
            if label == "slicegraph":
                row["slicegraph_best_s"] = res.stats["time_to_best"]
        rows.append(row)
    return rows


def format_table(rows) -> str:
    head = ("| graph | n | k | uniform | balanced | random | local | anneal | SliceGraph "
            "(time to best / total) | optimum |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(f"| {r['graph']} | {r['nodes']} | {r['k']} | {r['uniform']:.4f} | "
                     f"{r['balanced']:.4f} | {r['random']:.4f} | {r['local']:.4f} | "
                     f"{r['anneal']:.4f} | {r['slicegraph']:.4f} ({r['slicegraph_best_s']:.2f} s / "
                     f"{r['slicegraph_s']:.1f} s) | "
                     f"{r['optimum']:.4f} |")
    return "\n".join(lines)


@pytest.mark.skipif(not MSR_DIR.exists(), reason="shared MSR data not present")
def test_msr_table(benchmark):
    rows = benchmark.pedantic(msr_table, kwargs=dict(time_limit=10.0), rounds=1, iterations=1)
    print("\n" + format_table(rows))
    for r in rows:
        assert r["slicegraph"] <= r["optimum"] * 1.01
        assert r["balanced"] > r["slicegraph"] and r["uniform"] > r["slicegraph"]
    benchmark.extra_info["rows"] = rows


if __name__ == "__main__":
    print(format_table(msr_table()))
