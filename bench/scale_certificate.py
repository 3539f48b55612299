"""Certificates at production scale (issue 10): the whole ``pipecore.solve`` pipeline on
generated layered DAGs of 100,000 and 1,000,000 nodes at k = 64.

For each case: build the seeded graph (not timed), run ``solve(g, k, time_limit=T)``,
check the partition against the cost model (valid, bottleneck re-evaluated), and report
the upper bound, the certified lower bound, the gap, which method gave each side, the
phase times and the wall time against the limit. One JSON line per case::

    python bench/scale_certificate.py                        # 100k @ 60 s, 1M @ 120 s
    python bench/scale_certificate.py --cases 100000:64:60 --out bench/results/scale_certificate.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import pipecore
from pipecore import Partition, Problem, generators


def run(n: int, k: int, time_limit: float, seed: int) -> dict:
    t = time.perf_counter()
    g = generators.layered_dag(n, seed=seed)
    t_build = time.perf_counter() - t
    t0 = time.perf_counter()
    res = pipecore.solve(g, k, time_limit=time_limit, seed=seed)
    wall = time.perf_counter() - t0
    problem = Problem(g, k)
    part = Partition(g, np.asarray(res.partition.stage), k)
    return {"graph": f"layered_dag(n={n}, seed={seed})", "n": g.n, "m": int(g.m), "k": k,
            "time_limit": time_limit, "build_s": round(t_build, 2), "wall_s": round(wall, 2),
            "ub": res.upper_bound, "lb": res.lower_bound,
            "lb_over_ub": res.lower_bound / res.upper_bound,
            "gap": res.upper_bound / res.lower_bound - 1.0,
            "valid": bool(problem.is_valid(part)),
            "reevaluated_ub": float(part.bottleneck),
            "ub_from": res.upper_bound_source, "lb_from": res.lower_bound_source,
            "termination": res.termination.value,
            "phases": [[p.name, round(p.seconds, 2)] for p in res.phases]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="100000:64:60,1000000:64:120",
                    help="comma list of n:k:time_limit")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="append the JSON rows to this file")
    args = ap.parse_args(argv)
    for case in args.cases.split(","):
        n, k, limit = case.split(":")
        row = run(int(n), int(k), float(limit), args.seed)
        line = json.dumps(row)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as fh:
                fh.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
