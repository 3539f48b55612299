"""Scale check for the heuristics on generated production-size graphs (issue 4 acceptance).

For each size: build a seeded generated DAG, run the work-balanced 1-D baseline
(unpolished), then SliceGraph under a wall-clock limit followed by the polish step
(exactly what ``pipecore.solve(..., method="slicegraph")`` runs before certification),
and report bottlenecks, validity and times.

    python bench/scale_heuristics.py                       # 10k and 100k nodes, k=64, 60 s
    python bench/scale_heuristics.py --sizes 10000 --time-limit 60 --workers 2 --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from pipecore import Problem, generators
from pipecore._runtime import Budget
from pipecore.algorithms.baselines import solve_balanced
from pipecore.algorithms.local_search import polish_partition
from pipecore.algorithms.slicegraph import solve_slicegraph


def make_graph(kind: str, n: int, seed: int):
    if kind == "layered":
        return generators.layered_dag(n, seed=seed)
    if kind == "dnn":
        # dnn_like has ~(4 + 3 * branches) nodes per block on average
        return generators.dnn_like(max(1, n // 10), branches=2, seed=seed)
    raise SystemExit(f"unknown generator {kind!r}")


def run(kind: str, n: int, k: int, time_limit: float, workers: int, seed: int) -> dict:
    g = make_graph(kind, n, seed)
    t = time.perf_counter()
    problem = Problem(g, k)
    base = solve_balanced(problem, Budget(None))
    t_base = time.perf_counter() - t
    t0 = time.perf_counter()
    budget = Budget(time_limit)
    res = solve_slicegraph(problem, budget, seed=seed, workers=workers)
    t_sg = time.perf_counter() - t0
    before = res.upper_bound
    part = polish_partition(problem, res.partition, budget=budget, seed=seed)
    wall = time.perf_counter() - t0
    valid = problem.is_valid(part)
    return {
        "generator": kind, "nodes": g.n, "edges": g.m, "k": k, "time_limit": time_limit,
        "workers": workers, "balanced": base.upper_bound, "balanced_time": t_base,
        "slicegraph": before, "slicegraph_time": t_sg, "polished": part.bottleneck,
        "wall_time": wall, "valid": bool(valid), "termination": res.termination.value,
        "improvement_vs_balanced": 1 - part.bottleneck / base.upper_bound,
        "generations": res.stats.get("generations"),
        "dp_unproven": res.stats.get("dp_unproven"),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("-k", type=int, default=64)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--generator", choices=["layered", "dnn"], default="layered")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    rows = []
    for n in args.sizes:
        row = run(args.generator, n, args.k, args.time_limit, args.workers, args.seed)
        rows.append(row)
        print(f"{row['generator']} n={row['nodes']} m={row['edges']} k={row['k']}: "
              f"balanced {row['balanced']:.6g} | slicegraph {row['slicegraph']:.6g} "
              f"({row['slicegraph_time']:.1f} s, {row['generations']} gens) | polished "
              f"{row['polished']:.6g} | total {row['wall_time']:.1f} s | valid {row['valid']} | "
              f"{100 * row['improvement_vs_balanced']:.2f}% better than balanced", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    ok = all(r["valid"] and r["wall_time"] <= r["time_limit"] * 1.05 for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
