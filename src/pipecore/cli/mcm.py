"""``pipecore mcm``: place a graph on a multi-chip module and print the per-chip costs."""
from __future__ import annotations

import argparse
import json
import math

import numpy as np

from ..mcm.baselines import anneal, brkga, random_search, slicegraph
from ..mcm.costmodel import PRESETS, MCMProblem, preset
from .graphs import add_graph_args, load_graph_arg

METHODS = ("anneal", "random", "slicegraph", "slicegraph-mcm", "learned", "rl")


def _number(kind, *, low=None, strict=True, integer=False):
    """argparse type: a finite number (> low if strict, >= low otherwise)."""

    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        below = low is not None and (value <= low if strict else value < low)
        if not math.isfinite(value) or below:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}")
        return value

    return parse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mcm", help="place a graph on a multi-chip module (chiplets)")
    add_graph_args(p)
    add_arguments(p)
    p.set_defaults(func=lambda args: run(args, load_graph_arg(args)))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the ``mcm`` subcommand (the graph arguments are added by ``register``)."""
    pos = _number("a number > 0", low=0)
    p.add_argument("--package", default="ring-8", choices=PRESETS, help="MCM preset")
    p.add_argument("--sram", type=pos, default=None, help="SRAM per chip (graph mem units)")
    p.add_argument("--sram-slack", type=pos, default=None,
                   help="SRAM per chip = slack * total mem / chips (overrides --sram)")
    p.add_argument("--hop-latency", type=_number("a number >= 0", low=0, strict=False),
                   default=None, help="time per hop (default 0.01)")
    p.add_argument("--bandwidth", type=pos, default=None, help="relative link bandwidth")
    p.add_argument("--use-all-chips", action="store_true", help="every chip must hold an op")
    p.add_argument("--method", default="anneal", choices=METHODS,
                   help="anneal; random (random orders, rate-weighted cut); slicegraph "
                        "(pipecore's, plain cost, time-limited); slicegraph-mcm (BRKGA + MCM "
                        "slicing DP); learned (key policy + DP + annealing); rl (chip-proposal "
                        "policy + repair)")
    p.add_argument("--budget", type=pos, default=20000,
                   help="cost-model work in evaluations (n + m steps each)")
    p.add_argument("--policy", help="policy checkpoint to fine-tune (methods learned, rl)")
    p.add_argument("--seed", type=_number("an integer >= 0", low=0, strict=False, integer=True),
                   default=0)
    p.add_argument("--time-limit", type=pos, default=10.0, help="seconds (slicegraph)")
    p.add_argument("--threads", type=_number("an integer >= 1", low=1, strict=False, integer=True),
                   default=1, help="PyTorch threads for methods learned/rl")


def _search(args, prob):
    if args.method == "anneal":
        return anneal(prob, args.budget, seed=args.seed, use_all_chips=args.use_all_chips)
    if args.method == "random":
        return random_search(prob, args.budget, seed=args.seed, use_all_chips=args.use_all_chips)
    if args.method == "slicegraph":
        return slicegraph(prob, time_limit=args.time_limit, seed=args.seed)
    if args.method == "slicegraph-mcm":
        return brkga(prob, args.budget, seed=args.seed, use_all_chips=args.use_all_chips)
    import torch

    torch.set_num_threads(max(1, args.threads))
    if args.method == "learned":
        from ..mcm.learned import KeyConfig, learned_search

        return learned_search(prob, args.budget, policy=args.policy,
                              config=KeyConfig(seed=args.seed, use_all_chips=args.use_all_chips))
    from ..mcm.train import TrainConfig, rl_search

    return rl_search(prob, int(args.budget), policy=args.policy,
                     config=TrainConfig(seed=args.seed, use_all_chips=args.use_all_chips))


def _print_table(prob, cfg, res) -> None:
    comp, traffic, mem = prob.breakdown(res.chip)
    print(cfg.describe())
    counts = np.bincount(res.chip, minlength=prob.C)
    print(f"{'chip':>4} {'ops':>5} {'compute':>10} {'traffic':>10} {'total':>10} {'mem/SRAM':>9}")
    for c in range(prob.C):
        share = mem[c] / prob.sram[c] if math.isfinite(prob.sram[c]) else 0.0
        print(f"{c:>4} {counts[c]:>5} {comp[c]:>10.4g} {traffic[c]:>10.4g} "
              f"{comp[c] + traffic[c]:>10.4g} {share:>8.0%}")
    print(f"\nbottleneck {res.bottleneck:.6g}   throughput {res.throughput:.6g}   "
          f"({res.method}, {res.evaluations:.0f} evaluations, {res.wall_time:.2f} s)")


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
    res = _search(args, prob)
    if res.chip is None:
        print("no valid placement found" + (f": {res.stats.get('message')}" if res.stats else ""))
        return 2
    if args.json:
        comp, traffic, mem = prob.breakdown(res.chip)
        print(json.dumps({"package": cfg.describe(), "method": res.method,
                          "bottleneck": res.bottleneck, "throughput": res.throughput,
                          "evaluations": res.evaluations, "chip": res.chip.tolist(),
                          "compute": comp.tolist(), "traffic": traffic.tolist(),
                          "mem": mem.tolist(), "wall_time": res.wall_time}, indent=2))
        return 0
    _print_table(prob, cfg, res)
    return 0
