"""MCM experiment (issue 15): learned partitioning vs fair baselines at equal cost-model work.

For every seed:

1. pre-train a key policy (:mod:`pipecore.mcm.learned`) on a corpus of generated graphs
   (``regal_like``, ``dnn_like``, ``layered_dag``, plus copies with work skewed along
   the topological order, see :func:`skewed`) and real models that are not
   evaluated (ViT-base and the ONNX zoo's VGG-19, AlexNet, ZFNet-512, ShuffleNet):
   imitation of good chip paths per corpus graph (mean chip positions over the 16 best
   of 256 random paths for its BFS order, computed once), ``--imitation-epochs`` passes;
2. on each unseen evaluation graph, with the same budget of cost-model work (in
   evaluations = ``n + m`` cost-model steps, see :mod:`pipecore.mcm.baselines`):
   random search (random valid orders cut at work quantiles; and the same orders
   sliced by the DP), simulated annealing (shift, swap and chip-exchange moves),
   SliceGraph-MCM (BRKGA + slicing DP), the learned method fine-tuned from the
   pre-trained policy and trained from scratch; plus SliceGraph-MCM with 10x the
   budget and pipecore's own SliceGraph (time-limited, plain pipeline cost), both
   not held to the budget;
3. the budget-held methods again at ``--small-budgets`` (default 3,000 and 20,000
   evaluations), where a pre-trained policy has the most to offer;
4. transfer: on the policy phase alone, the evaluations fine-tuning and training from
   scratch need to come within ``--target-slack`` of the best bottleneck scratch's
   policy phase reaches.

Prints markdown tables (mean ± std over seeds) and writes the raw numbers to JSON.
Needs PyTorch and onnx. Usage::

    python bench/mcm_experiment.py --out bench/results/mcm_experiment.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore", message=".*size-limited licence.*")

import pipecore  # noqa: E402
from pipecore.generators import dnn_like, layered_dag, regal_like  # noqa: E402
from pipecore.mcm import MCMProblem, preset  # noqa: E402
from pipecore.mcm.baselines import anneal, brkga, random_search, slicegraph  # noqa: E402

EVAL_GRAPHS = "bert-base,resnet50,gpt2,t5-small,densenet121,inception-v1,onnx:squeezenet"
CORPUS_REAL = ("vit-base", "onnx:vgg19", "onnx:bvlc_alexnet", "onnx:zfnet512", "onnx:shufflenet")
METHODS = ("random-cut", "random-dp", "anneal", "slicegraph-mcm", "learned", "learned-scratch",
           "slicegraph-mcm-10x", "slicegraph-core")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load(name: str):
    """An embedded model, or ``onnx:NAME`` from the onnx wheel's model zoo."""
    if name.startswith("onnx:"):
        from pipecore.io.onnx import from_onnx, onnx_zoo_models

        return from_onnx(onnx_zoo_models()[name[5:]])
    return pipecore.load_model(name)


def skewed(g, rng):
    """A copy of ``g`` whose work grows or shrinks along the topological order
    (``exp(s (rank - 1/2))``, s = +-2) and, half the time, whose last op is a heavy,
    memory-hungry one (as an LM head): corpus diversity in *where* a graph is heavy."""
    from pipecore import Graph

    rank = np.empty(g.n)
    rank[g.topological_order()] = np.arange(g.n) / max(g.n - 1, 1)
    s = float(rng.choice([-2.0, 2.0]))
    work, mem = g.work * np.exp(s * (rank - 0.5)), g.mem.copy()
    if rng.random() < 0.5:
        last = int(g.topological_order()[-1])
        work[last] += 0.15 * work.sum()
        mem[last] += 0.2 * mem.sum()
    return Graph(g.n, g.src, g.dst, work, g.comm, mem, group=g.group)


def corpus_graphs(n_generated: int, seed: int = 1000, n_skewed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_generated):
        kind = i % 3
        if kind == 0:
            n = int(rng.integers(60, 400))
            out.append((f"regal_like({n}, seed={seed + i})", regal_like(n, seed=seed + i)))
        elif kind == 1:
            b, br = int(rng.integers(4, 24)), int(rng.integers(1, 4))
            out.append((f"dnn_like({b}, branches={br}, seed={seed + i})",
                        dnn_like(b, branches=br, seed=seed + i)))
        else:
            n = int(rng.integers(60, 300))
            out.append((f"layered_dag({n}, seed={seed + i})", layered_dag(n, seed=seed + i)))
    for i in range(n_skewed):
        name, g = out[i % max(n_generated, 1)]
        out.append((f"skewed({name}, {i})", skewed(g, rng)))
    for name in CORPUS_REAL:
        out.append((name, load(name)))
    return out


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
    xs = np.asarray([x for x in xs if x is not None and math.isfinite(x)], dtype=float)
    if xs.size == 0:
        return math.nan, math.nan
    return float(xs.mean()), float(xs.std(ddof=1)) if xs.size > 1 else 0.0


def fmt(xs, digits=2, unit=""):
    m, s = mean_std(xs)
    return "-" if not math.isfinite(m) else f"{m:.{digits}f} ± {s:.{digits}f}{unit}"


HELD_METHODS = ("random-cut", "random-dp", "anneal", "slicegraph-mcm", "learned")


def run_held(prob, seed, policy, budget):
    """The methods held to ``budget`` evaluations, each result checked for validity."""
    from pipecore.mcm.learned import KeyConfig, learned_search

    res = {
        "random-cut": random_search(prob, budget, seed=seed, decoder="cut"),
        "random-dp": random_search(prob, budget, seed=seed, decoder="dp"),
        "anneal": anneal(prob, budget, seed=seed),
        "slicegraph-mcm": brkga(prob, budget, seed=seed),
        "learned": learned_search(prob, budget, policy=policy, config=KeyConfig(seed=seed)),
    }
    return _checked(prob, res)


def _checked(prob, res):
    for r in res.values():
        assert r.chip is None or not prob.violations(r.chip), r.method
    return res


def run_graph(prob, seed, policy, args):
    """Every method at the main budget: the held ones, training from scratch, and the
    two SliceGraph references that are not held to it."""
    from pipecore.mcm.learned import KeyConfig, learned_search

    B = args.budget
    res = run_held(prob, seed, policy, B)
    res.update(_checked(prob, {
        "learned-scratch": learned_search(prob, B, policy=None, config=KeyConfig(seed=seed)),
        "slicegraph-mcm-10x": brkga(prob, 10 * B, seed=seed),
        "slicegraph-core": slicegraph(prob, time_limit=args.slicegraph_time, seed=seed),
    }))
    return res


def gain_table(bott, base, lines):
    """Rows of per-graph mean ± std (over seeds) gains of learned over each baseline, and
    their mean over graphs; ``bott[graph][method]`` lists bottlenecks per seed."""
    lines.append("| graph | " + " | ".join(f"vs {b}" for b in base) + " |")
    lines.append("|---|" + "---|" * len(base))
    avg = {b: [] for b in base}
    for name, d in bott.items():
        cells = []
        for b in base:
            g = [(x / y - 1) * 100 for x, y in zip(d[b], d["learned"])]
            avg[b].append(float(np.mean(g)))
            cells.append(fmt(g, 1, " %"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    cells = " | ".join(fmt(avg[b], 1, " %") for b in base)
    lines.append(f"| **mean over graphs** | {cells} |")


def transfer_row(ft, sc, slack, budget):
    """Evaluations (policy phase) to come within ``slack`` of scratch's policy-phase best."""
    target = float(sc.stats["rl_best"][-1]) * (1 + slack)

    def reach(r):
        hit = np.flatnonzero(np.asarray(r.stats["rl_best"]) <= target * (1 + 1e-12))
        return float(np.asarray(r.stats["rl_evals"])[hit[0]]) if hit.size else math.inf

    return {"target": target, "scratch": reach(sc), "finetune": reach(ft)}


def report(raw, args):
    lines = [f"Package {raw['package']}; budget {args.budget:g} evaluations (n + m cost-model "
             f"steps each) per method; {args.seeds} seeds; bottleneck mean ± std over seeds, "
             "lower is better.", ""]
    cols = [m for m in METHODS]
    lines.append("| graph | " + " | ".join(cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for name, d in raw["graphs"].items():
        cells = [fmt(d["bottleneck"][m]) for m in cols]
        lines.append(f"| {name} (n={d['n']}) | " + " | ".join(cells) + " |")
    lines += ["", "Throughput gain of the learned method (fine-tuned) per seed: "
              "bottleneck(baseline) / bottleneck(learned) - 1.", ""]
    gain_table({name: d["bottleneck"] for name, d in raw["graphs"].items()},
               ["random-cut", "random-dp", "anneal", "slicegraph-mcm", "slicegraph-mcm-10x",
                "slicegraph-core"], lines)
    for b in raw.get("small_budgets", []):
        key = f"{b:g}"
        lines += ["", f"At a budget of {key} evaluations per method (the same pre-trained "
                  "policies; methods held to the budget): bottleneck, then gains of "
                  "the learned method.", "",
                  "| graph | " + " | ".join(HELD_METHODS) + " |",
                  "|---|" + "---|" * len(HELD_METHODS)]
        bott = {name: d["small"][key] for name, d in raw["graphs"].items()}
        for name, d in bott.items():
            lines.append(f"| {name} | " + " | ".join(fmt(d[m]) for m in HELD_METHODS) + " |")
        lines.append("")
        gain_table(bott, [m for m in HELD_METHODS if m != "learned"], lines)
    lines += ["", f"Transfer: evaluations of the policy phase (first {raw['rl_share']:.0%} of the "
              f"budget) until the best bottleneck is within {args.target_slack:.0%} of what "
              "training "
              "from scratch reaches in its policy phase (never reached: the phase length, so "
              "fine-tuning's number is then an upper bound).", "",
              "| graph | from scratch | fine-tuned | reached | speed-up (ratio of means) |",
              "|---|---|---|---|---|"]
    ups = []
    for name, d in raw["graphs"].items():
        sc = [t["scratch"] for t in d["transfer"]]
        ph = args.budget * raw["rl_share"]
        ft = [min(t["finetune"], ph) for t in d["transfer"]]
        reached = sum(math.isfinite(t["finetune"]) for t in d["transfer"])
        up = float(np.mean(sc) / max(np.mean(ft), 1e-9))
        ups.append(up)
        lines.append(f"| {name} | {fmt(sc, 0)} | {fmt(ft, 0)} | {reached}/{len(sc)} | {up:.2f}x |")
    lines.append(f"| **mean** | | | | {np.mean(ups):.2f}x |")
    lines.append(f"\nTotal wall time {raw['wall_time']:.0f} s.")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=100_000, help="evaluations per method")
    ap.add_argument("--small-budgets", default="3000,20000",
                    help="comma-separated smaller budgets for the budget-held methods ('' = none)")
    ap.add_argument("--imitation-epochs", type=int, default=30)
    ap.add_argument("--pretrain-steps", type=int, default=0,
                    help="policy-gradient batches on the corpus after imitation")
    ap.add_argument("--corpus", type=int, default=80, help="generated graphs in the corpus")
    ap.add_argument("--skewed", type=int, default=80,
                    help="work-skewed copies of generated graphs in the corpus")
    ap.add_argument("--package", default="mesh-2x4-het")
    ap.add_argument("--sram-slack", type=float, default=2.0)
    ap.add_argument("--latency", type=float, default=0.5, help="hop latency / mean tensor comm")
    ap.add_argument("--graphs", default=EVAL_GRAPHS)
    ap.add_argument("--slicegraph-time", type=float, default=2.0)
    ap.add_argument("--target-slack", type=float, default=0.02)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    small = [float(x) for x in args.small_budgets.split(",") if x.strip()]
    if (args.seeds < 1 or args.budget <= 0 or any(b <= 0 for b in small)
            or args.pretrain_steps < 0 or args.imitation_epochs < 0):
        ap.error("--seeds >= 1, budgets > 0, --pretrain-steps >= 0 and --imitation-epochs >= 0 "
                 "are required")

    import torch

    from pipecore.mcm.learned import KeyConfig, expert_keys, pretrain

    torch.set_num_threads(1)
    t_start = time.perf_counter()

    def problem(g):
        cfg = preset(args.package).sized_for(g, args.sram_slack, latency_per_comm=args.latency)
        return MCMProblem(g, cfg)

    evals = {name: problem(load(name)) for name in args.graphs.split(",") if name}
    corpus = [(n, problem(g)) for n, g in corpus_graphs(args.corpus, n_skewed=args.skewed)]
    log(f"corpus: {len(corpus)} graphs; package {next(iter(evals.values())).config.describe()}")
    t0 = time.perf_counter()
    experts = [expert_keys(p)[0] for _, p in corpus]
    log(f"expert chip paths for the corpus in {time.perf_counter() - t0:.0f} s")
    policies = []
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        tr = pretrain([p for _, p in corpus], args.pretrain_steps, config=KeyConfig(seed=seed),
                      imitation_epochs=args.imitation_epochs, expert=experts)
        policies.append(tr.policy)
        log(f"pre-trained seed {seed}: {args.imitation_epochs} imitation epochs, "
            f"{args.pretrain_steps} RL steps in {time.perf_counter() - t0:.0f} s "
            f"(imitation loss {tr.stats['imitation_loss'][:1]} -> "
            f"{tr.stats['imitation_loss'][-1:]})")
    raw = {"args": vars(args), "package": next(iter(evals.values())).config.describe(),
           "corpus": [n for n, _ in corpus], "rl_share": KeyConfig().rl_share,
           "small_budgets": small, "graphs": {}}
    for name, prob in evals.items():
        d = {"n": prob.graph.n, "m": prob.graph.m, "bottleneck": {m: [] for m in METHODS},
             "evaluations": {m: [] for m in METHODS}, "wall": {m: [] for m in METHODS},
             "transfer": [], "small": {f"{b:g}": {m: [] for m in HELD_METHODS} for b in small}}
        for seed in range(args.seeds):
            res = run_graph(prob, seed, policies[seed], args)
            for m, r in res.items():
                d["bottleneck"][m].append(r.bottleneck)
                d["evaluations"][m].append(r.evaluations)
                d["wall"][m].append(r.wall_time)
            d["transfer"].append(transfer_row(res["learned"], res["learned-scratch"],
                                              args.target_slack, args.budget))
            log(f"{name} seed {seed}: "
                + ", ".join(f"{m} {r.bottleneck:.2f}" for m, r in res.items()))
            for b in small:
                for m, r in run_held(prob, seed, policies[seed], b).items():
                    d["small"][f"{b:g}"][m].append(r.bottleneck)
        raw["graphs"][name] = d
    raw["wall_time"] = time.perf_counter() - t_start
    text = report(raw, args)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(_finite(raw), fh, indent=1)
        with open(os.path.splitext(args.out)[0] + ".md", "w") as fh:
            fh.write("# MCM experiment\n\nCommand: `python bench/mcm_experiment.py "
                     + " ".join(sys.argv[1:]) + "`\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
