"""Headroom probe for the MCM experiment: SliceGraph's seed orders on many chip paths.

For each evaluation graph (same package and sizing as ``mcm_experiment.py``), decode each
of SliceGraph's seed orders (BFS, DFS, critical path, ASAP, ALAP) with the MCM slicing
DP on every candidate chip path and ``--random-paths`` uniformly random ones, and print
the best bottleneck per order. Not held to a budget (about 5 x 284 decodes per graph):
it shows how far the budget-held searches are from partitions that simple orders reach
on the right chip path. Usage::

    python bench/mcm_seed_paths.py
"""
from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore", message=".*size-limited licence.*")

from mcm_experiment import EVAL_GRAPHS, load  # noqa: E402
from pipecore.algorithms.slicegraph import seed_orders  # noqa: E402
from pipecore.mcm import MCMProblem, preset  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--graphs", default=EVAL_GRAPHS)
    ap.add_argument("--package", default="mesh-2x4-het")
    ap.add_argument("--sram-slack", type=float, default=2.0)
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--random-paths", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    names = None
    for name in args.graphs.split(","):
        g = load(name)
        p = MCMProblem(g, preset(args.package).sized_for(g, args.sram_slack,
                                                         latency_per_comm=args.latency))
        q, C = p.quotient.n, p.C
        perms = np.concatenate([p.paths, [rng.permutation(C) for _ in range(args.random_paths)]])
        best = {}
        for oname, order in seed_orders(p.contraction).items():
            keys = np.empty(q)
            keys[order] = np.arange(q)
            chips, val, _ = p.decode(np.repeat(keys[None], len(perms), axis=0), perms)
            i = int(np.argmin(val))
            assert not p.violations(chips[i])
            best[oname] = float(val[i])
        if names is None:
            names = list(best)
            print("| graph | " + " | ".join(names) + " |")
            print("|---|" + "---|" * len(names))
        print(f"| {name} | " + " | ".join(f"{best[o]:.2f}" for o in names) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
