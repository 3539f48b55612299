"""MCM experiment (issue 7): RL vs random search vs annealing vs SliceGraph, and transfer.

For every seed:

1. pre-train a policy on a corpus of graphs (REGAL-like and DNN-like generators
   plus the embedded models other than the two evaluation graphs);
2. on each unseen evaluation graph (default: the embedded ``bert-base`` and
   ``resnet50``), at the same budget of cost-model evaluations: random search
   (uniform proposals + the same greedy repair), simulated annealing (native MCM
   kernel), RL fine-tuned from the pre-trained policy, RL from scratch; plus
   SliceGraph (pipecore's non-learned solver, time-limited, not counted in
   evaluations) scored under the MCM model;
3. transfer: the number of samples fine-tuning and training from scratch need to
   reach the throughput that training from scratch reaches with the full budget.

Prints a markdown table (mean +- standard deviation over seeds) and writes all raw
numbers to JSON. Needs PyTorch (``pip install 'pipecore[rl]'``).

Usage::

    python bench/mcm_experiment.py --seeds 5 --budget 4000 --out bench/results/mcm_experiment.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore", message=".*size-limited licence.*")

import pipecore  # noqa: E402
from pipecore.generators import dnn_like, regal_like  # noqa: E402
from pipecore.mcm import MCMProblem, preset  # noqa: E402
from pipecore.mcm.baselines import anneal, random_search, slicegraph  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def corpus_graphs(exclude: set[str]):
    graphs = []
    for i, n in enumerate((120, 180, 250, 320, 400, 500)):
        graphs.append((f"regal_like(n={n}, seed={100 + i})", regal_like(n, seed=100 + i)))
    graphs.append(("dnn_like(12, seed=101)", dnn_like(12, seed=101)))
    graphs.append(("dnn_like(20, branches=3, seed=102)", dnn_like(20, branches=3, seed=102)))
    for name in ("inception-v1", "vit-base", "gpt2", "t5-small", "densenet121"):
        if name in pipecore.list_models() and name not in exclude:
            graphs.append((name, pipecore.load_model(name)))
    return graphs


CURVE_AT = (32, 256, 1024, 4000)


def _best_at(res, k: int) -> float:
    """Best bottleneck within the first k evaluations of a search (nan past its budget)."""
    i = np.searchsorted(res.trace_evals, k, side="right") - 1
    return float(res.trace_best[i]) if 0 <= i and k <= res.trace_evals[-1] else math.nan


def _finite(x):
    """JSON-safe copy: non-finite floats become None."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def mean_std(xs):
    xs = np.asarray([x for x in xs if math.isfinite(x)], dtype=float)
    if xs.size == 0:
        return math.nan, math.nan, 0
    return float(xs.mean()), float(xs.std(ddof=1)) if xs.size > 1 else 0.0, int(xs.size)


def fmt(ms, digits=2):
    m, s, k = ms
    return "-" if not math.isfinite(m) else f"{m:.{digits}f} ± {s:.{digits}f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=4000, help="cost-model evaluations per method")
    ap.add_argument("--pretrain-samples", type=int, default=24000)
    ap.add_argument("--package", default="ring-8")
    ap.add_argument("--sram-slack", type=float, default=2.0,
                    help="SRAM per chip = slack * total mem / chips (0 = unlimited)")
    ap.add_argument("--graphs", default="bert-base,resnet50")
    ap.add_argument("--slicegraph-time", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=4,
                    help="PPO epochs per batch for pre-training and training from scratch")
    ap.add_argument("--ft-epochs", type=int, default=1,
                    help="PPO epochs per batch when fine-tuning (1 = REINFORCE with baseline)")
    ap.add_argument("--target-slack", type=float, default=0.02,
                    help="transfer target: within this fraction of scratch's final bottleneck")
    ap.add_argument("--out", default=None, help="write raw results as JSON here")
    args = ap.parse_args(argv)

    import torch

    from pipecore.mcm.train import TrainConfig, rl_search, train

    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    def problem(g):
        cfg = preset(args.package)
        if args.sram_slack > 0:
            cfg = cfg.sized_for(g, args.sram_slack)
        return MCMProblem(g, cfg)

    eval_names = [s for s in args.graphs.split(",") if s]
    evals = {name: problem(pipecore.load_model(name)) for name in eval_names}
    corpus = [(name, problem(g)) for name, g in corpus_graphs(set(eval_names))]
    log(f"corpus: {', '.join(n for n, _ in corpus)}")
    log(f"package: {corpus[0][1].config.describe()} (SRAM sized per graph, slack {args.sram_slack})")

    raw: dict = {"args": vars(args), "corpus": [n for n, _ in corpus], "graphs": {}}
    tmp = tempfile.mkdtemp(prefix="pipecore-mcm-")
    checkpoints = []
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        tr = train([p for _, p in corpus], args.pretrain_samples,
                   config=TrainConfig(seed=seed, epochs=args.epochs))
        path = os.path.join(tmp, f"pretrained-seed{seed}.pt")
        tr.save(path)
        checkpoints.append(path)
        log(f"pre-trained seed {seed}: {args.pretrain_samples} samples over {len(corpus)} graphs "
            f"in {time.perf_counter() - t0:.1f} s")

    for name, prob in evals.items():
        rows: dict = {m: [] for m in ("random", "anneal", "rl-finetune", "rl-scratch", "slicegraph")}
        transfer = []
        for seed in range(args.seeds):
            res = {
                "random": random_search(prob, args.budget, seed=seed),
                "anneal": anneal(prob, args.budget, seed=seed),
                "rl-finetune": rl_search(prob, args.budget, policy=checkpoints[seed],
                                         config=TrainConfig(seed=seed, epochs=args.ft_epochs)),
                "rl-scratch": rl_search(prob, args.budget,
                                        config=TrainConfig(seed=seed, epochs=args.epochs)),
            }
            try:
                res["slicegraph"] = slicegraph(prob, time_limit=args.slicegraph_time, seed=seed)
            except ValueError as exc:  # method not installed
                log(f"slicegraph unavailable: {exc}")
            for m, r in res.items():
                rows[m].append({"bottleneck": r.bottleneck, "wall_time": r.wall_time,
                                "evaluations": r.evaluations})
            ft, sc = res["rl-finetune"], res["rl-scratch"]
            target = sc.bottleneck * (1 + args.target_slack)
            transfer.append({"target_bottleneck": target,
                             "scratch_samples": sc.evals_to_reach(target),
                             "finetune_samples": ft.evals_to_reach(target),
                             "curve_at": CURVE_AT,
                             "finetune_curve": [_best_at(ft, k) for k in CURVE_AT],
                             "scratch_curve": [_best_at(sc, k) for k in CURVE_AT]})
            log(f"{name} seed {seed}: " + ", ".join(f"{m} {r.bottleneck:.3f}" for m, r in res.items())
                + f"; transfer {transfer[-1]['finetune_samples']:.0f} vs {transfer[-1]['scratch_samples']:.0f} samples")
        raw["graphs"][name] = {"n": prob.graph.n, "lower_bound_work": float(prob.graph.work.sum() / prob.C),
                               "sram": float(prob.sram[0]), "results": rows, "transfer": transfer}

    # ------------------------------------------------------------------ report
    print(f"\nMCM package {args.package}, SRAM = {args.sram_slack} x total mem / chips, "
          f"budget {args.budget} evaluations per method, {args.seeds} seeds "
          f"(mean ± std over seeds; bottleneck in the graph's time units, lower is better)\n")
    print("| graph | random search | annealing | RL fine-tuned | RL from scratch | SliceGraph | "
          "RL-ft vs random | RL-ft vs annealing |")
    print("|---|---|---|---|---|---|---|---|")
    for name, data in raw["graphs"].items():
        rs = data["results"]
        b = {m: [x["bottleneck"] for x in rs[m]] for m in rs}
        gain_r = [(br / bf - 1) * 100 for br, bf in zip(b["random"], b["rl-finetune"])]
        gain_a = [(ba / bf - 1) * 100 for ba, bf in zip(b["anneal"], b["rl-finetune"])]
        print(f"| {name} (n={data['n']}) | {fmt(mean_std(b['random']))} | {fmt(mean_std(b['anneal']))} | "
              f"{fmt(mean_std(b['rl-finetune']))} | {fmt(mean_std(b['rl-scratch']))} | "
              f"{fmt(mean_std(b['slicegraph']))} | {fmt(mean_std(gain_r), 1)} % | {fmt(mean_std(gain_a), 1)} % |")
    print("\nThroughput gain = bottleneck(baseline) / bottleneck(RL fine-tuned) - 1, per seed.\n")
    print(f"Transfer: samples until the best bottleneck is within {args.target_slack:.0%} of what "
          f"training from scratch reaches with the full budget (per seed; a run that never gets "
          f"there counts as the full budget {args.budget}, so fine-tuning's numbers are upper "
          f"bounds), and the best bottleneck after k samples.\n")
    print("| graph | samples, from scratch | samples, fine-tuned | reached | speed-up (ratio of means) | "
          + " | ".join(f"best after {k}: fine-tuned / scratch" for k in CURVE_AT) + " |")
    print("|---|---|---|---|---|" + "---|" * len(CURVE_AT))
    for name, data in raw["graphs"].items():
        tr = data["transfer"]
        sc = [t["scratch_samples"] for t in tr]
        ft = [min(t["finetune_samples"], args.budget) for t in tr]
        reached = sum(math.isfinite(t["finetune_samples"]) for t in tr)
        cells = []
        for j in range(len(CURVE_AT)):
            cells.append(f"{fmt(mean_std([t['finetune_curve'][j] for t in tr]), 1)} / "
                         f"{fmt(mean_std([t['scratch_curve'][j] for t in tr]), 1)}")
        print(f"| {name} | {fmt(mean_std(sc), 0)} | {fmt(mean_std(ft), 0)} | {reached}/{len(tr)} | "
              f"{np.mean(sc) / max(np.mean(ft), 1):.2f}x | " + " | ".join(cells) + " |")
    total = time.perf_counter() - t_start
    print(f"\nTotal wall time {total:.0f} s.")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        raw["wall_time"] = total
        with open(args.out, "w") as fh:
            json.dump(_finite(raw), fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
