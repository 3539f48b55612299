"""``pipecore mcm``: place a graph on a multi-chip module and print the per-chip costs."""
from __future__ import annotations

import argparse
import json
import math

import numpy as np

from .baselines import anneal, random_search, slicegraph
from .costmodel import PRESETS, MCMProblem, preset

METHODS = ("anneal", "random", "slicegraph", "rl")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the ``mcm`` subcommand (the graph arguments are added by the caller)."""
    p.add_argument("--package", default="ring-8", choices=PRESETS, help="MCM preset")
    p.add_argument("--sram", type=float, default=None, help="SRAM per chip (graph mem units)")
    p.add_argument("--sram-slack", type=float, default=None,
                   help="SRAM per chip = slack * total mem / chips (overrides --sram)")
    p.add_argument("--hop-latency", type=float, default=None, help="time per hop (default 0.01)")
    p.add_argument("--bandwidth", type=float, default=None, help="relative link bandwidth")
    p.add_argument("--use-all-chips", action="store_true", help="every chip must hold an op")
    p.add_argument("--method", default="anneal", choices=METHODS)
    p.add_argument("--budget", type=int, default=20000, help="cost-model evaluations")
    p.add_argument("--policy", help="policy checkpoint to fine-tune (method rl)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-limit", type=float, default=10.0, help="seconds (slicegraph)")
    p.add_argument("--threads", type=int, default=1,
                   help="PyTorch threads for method rl (small graphs run fastest on one)")


def run(args, graph) -> int:
    over = {}
    if args.sram is not None:
        over["sram"] = args.sram
    if args.hop_latency is not None:
        over["hop_latency"] = args.hop_latency
    if args.bandwidth is not None:
        over["link_bandwidth"] = args.bandwidth
    cfg = preset(args.package, **over)
    if args.sram_slack is not None:
        cfg = cfg.sized_for(graph, args.sram_slack)
    prob = MCMProblem(graph, cfg)
    prob.check_feasible(args.use_all_chips)
    if args.method == "anneal":
        res = anneal(prob, args.budget, seed=args.seed, use_all_chips=args.use_all_chips)
    elif args.method == "random":
        res = random_search(prob, args.budget, seed=args.seed, use_all_chips=args.use_all_chips)
    elif args.method == "slicegraph":
        res = slicegraph(prob, time_limit=args.time_limit, seed=args.seed)
    else:
        import torch

        from .train import TrainConfig, rl_search

        torch.set_num_threads(max(1, args.threads))
        res = rl_search(prob, args.budget, policy=args.policy,
                        config=TrainConfig(seed=args.seed, use_all_chips=args.use_all_chips))
    if res.chip is None:
        print("no valid placement found" + (f": {res.stats.get('message')}" if res.stats else ""))
        return 2
    comp, traffic, mem = prob.breakdown(res.chip)
    if args.json:
        print(json.dumps({"package": cfg.describe(), "method": res.method,
                          "bottleneck": res.bottleneck, "throughput": res.throughput,
                          "evaluations": res.evaluations, "chip": res.chip.tolist(),
                          "compute": comp.tolist(), "traffic": traffic.tolist(),
                          "mem": mem.tolist(), "wall_time": res.wall_time}, indent=2))
        return 0
    print(cfg.describe())
    counts = np.bincount(res.chip, minlength=prob.C)
    print(f"{'chip':>4} {'ops':>5} {'compute':>10} {'traffic':>10} {'total':>10} {'mem/SRAM':>9}")
    for c in range(prob.C):
        share = mem[c] / prob.sram[c] if math.isfinite(prob.sram[c]) else 0.0
        print(f"{c:>4} {counts[c]:>5} {comp[c]:>10.4g} {traffic[c]:>10.4g} "
              f"{comp[c] + traffic[c]:>10.4g} {share:>8.0%}")
    print(f"\nbottleneck {res.bottleneck:.6g}   throughput {res.throughput:.6g}   "
          f"({res.method}, {res.evaluations} evaluations, {res.wall_time:.2f} s)")
    return 0
