#!/usr/bin/env python
"""Predicted vs measured pipeline stage times on this machine (issue 14).

For each model and k in {2, 4}: measure per-node costs (``pipecore.io.measure``,
CPU, 1 thread, median of repeats) and the gloo link; solve with the measured
costs; split the exported program into stage modules; then measure

* each stage's compute: median wall time of its ``fx.GraphModule`` on its real
  inputs (1 thread), timed in the same rounds as a re-measurement of the per-node
  costs that the prediction then uses (so both see the same machine load), plus
* each stage's transfers: the one-way gloo time (two local processes, median
  ping-pong / 2) of every tensor it actually receives and sends, pass-through
  tensors included;

and compare their sum with the stage time predicted from measured costs and
from the roofline ``cpu`` device model. Finally it runs the real pipeline (k
processes, gloo, ``ScheduleGPipe``, 8 micro-batches) and reports micro-batches/s
against 1 / predicted bottleneck. Run under the bench lock::

    flock /tmp/pipecore-bench.lock python bench/bench_pipeline.py --out bench/results/pipeline.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

import torch  # noqa: E402

from pipecore import Partition, solve  # noqa: E402
from pipecore import examples  # noqa: E402
from pipecore.io.launch import launch_local  # noqa: E402
from pipecore.io.measure import measure_exported, measure_link, ping_pong  # noqa: E402
from pipecore.io.stages import split_exported  # noqa: E402
from pipecore.io.torch import from_exported  # noqa: E402

MODELS = {
    "bert-4L-256": (examples.tiny_bert, dict(batch=2, seq_len=128, layers=4, hidden=256)),
    "gpt2-4L-256": (examples.tiny_gpt2, dict(batch=2, seq_len=128, layers=4, hidden=256)),
    "skip-cnn": (examples.skip_cnn, dict(batch=4, size=32, width=32, blocks=4)),
    "mlp-1024x8": (examples.mlp, dict(batch=64, width=1024, depth=8)),
}


def interleaved(ep, g_meas, plan, args, repeats: int):
    """Per-node and per-stage medians measured in the same rounds (round r: one timed
    run of the whole program, then one run of each stage), so both see the same
    machine load. Returns (graph with re-measured work, stage seconds, bytes sent)."""
    from pipecore import Graph
    from pipecore.io.measure import time_nodes, work_per_row
    from pipecore.io.torch import static_placeholders, walk_graph

    _, _, index = walk_graph(ep.graph, static_placeholders(ep))
    whole = split_exported(ep, [0] * g_meas.n).modules[0]
    ins, vals = [], tuple(args)
    with torch.no_grad():
        for mod in plan.modules:
            ins.append(vals)
            vals = mod(*vals)
        node_ts: dict[str, list] = {}
        stage_ts = [[] for _ in plan.modules]
        for r in range(repeats + 3):
            for name, t in time_nodes(whole, args, warmup=0, repeats=1).items():
                node_ts.setdefault(name, []).append(t)   # incl. its dispatch-overhead share
            for s, (mod, x) in enumerate(zip(plan.modules, ins)):
                t0 = time.perf_counter()
                mod(*x)
                if r >= 3:
                    stage_ts[s].append(time.perf_counter() - t0)
    times = {k: statistics.median(v[3:]) for k, v in node_ts.items()}
    work = work_per_row(whole, times, index, g_meas.n) / g_meas.metadata["time_unit"]
    g = Graph(g_meas.n, g_meas.src, g_meas.dst, work, g_meas.comm, g_meas.mem,
              names=g_meas.names, metadata=g_meas.metadata)
    outs = ins[1:] + [vals]
    return g, [statistics.median(t) for t in stage_ts], \
        [[t.numel() * t.element_size() for t in x] for x in outs]


def one_model(name: str, link, k_values, repeats: int, time_limit: float) -> list[dict]:
    fn, cfg = MODELS[name]
    built = fn(**cfg)
    model, args = built[0], built[1]
    kwargs = built[2] if len(built) > 2 else {}
    ep = torch.export.export(model.eval(), args, kwargs, strict=False)
    g_meas = measure_exported(ep, args, kwargs, link=link, repeats=repeats)
    g_roof = from_exported(ep, device="cpu")
    rows = []
    for k in k_values:
        res = solve(g_meas, k, time_limit=time_limit, seed=0)
        plan = split_exported(ep, res)
        g_now, comp, sent = interleaved(ep, g_meas, plan, args, repeats)
        sizes = sorted({b for x in sent[:-1] for b in x})
        one_way = dict(map(tuple, ping_pong(sizes, repeats=10))) if sizes else {}
        xfer = [sum(one_way.get(float(max(b, 4) // 4 * 4), 0.0) for b in sent[s])
                if s < k - 1 else 0.0 for s in range(k)]
        xfer = [xfer[s] + (xfer[s - 1] if s else 0.0) for s in range(k)]  # send + receive
        bd_m = Partition(g_now, res.partition.stage, k).breakdown()
        bd_r = Partition(g_roof, res.partition.stage, k).breakdown()
        pm, pr = np.zeros(k), np.zeros(k)
        pm[bd_m.stages], pr[bd_r.stages] = bd_m.total, bd_r.total
        measured = [(c + x) * 1e6 for c, x in zip(comp, xfer)]
        batch = tuple(torch.cat([a] * 8) for a in args)
        timing: dict = {}
        launch_local(plan, batch, n_microbatches=8, steps=3, timings=timing, timeout=600)
        for s in range(k):
            rows.append(dict(model=name, nodes=g_meas.n, k=k, stage=s,
                             nodes_in_stage=len(plan.nodes[s]),
                             passthrough=len(plan.passthrough[s]),
                             predicted_measured_us=float(pm[s]),
                             predicted_roofline_us=float(pr[s]),
                             measured_us=measured[s], compute_us=comp[s] * 1e6,
                             transfer_us=xfer[s] * 1e6,
                             pipeline_mb_per_s=8 / timing["seconds_per_step"],
                             predicted_mb_per_s=1e6 / float(pm.max())))
        print(f"{name} k={k}: " + ", ".join(
            f"s{s} pred {pm[s]:.0f} (work {bd_work(bd_m, s):.0f}) / roof {pr[s]:.0f} / meas "
            f"{measured[s]:.0f} us (compute {comp[s] * 1e6:.0f} + xfer {xfer[s] * 1e6:.0f})"
            for s in range(k)), flush=True)
    return rows


def bd_work(bd, s: int) -> float:
    """Predicted compute of stage s (0 if empty)."""
    hit = np.flatnonzero(bd.stages == s)
    return float(bd.work[hit[0]]) if hit.size else 0.0


def table(rows: list[dict]) -> str:
    """Markdown table: one line per (model, k) with the median per-stage errors."""
    out = ["| model | nodes | k | stage times, measured (us) | predicted, measured costs | "
           "median err | predicted, roofline `cpu` | median err | pipeline mb/s measured | "
           "predicted |", "|---|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["model"], r["k"]) for r in rows}, key=lambda t: (list(MODELS).index(t[0]), t[1]))
    for model, k in keys:
        rs = [r for r in rows if r["model"] == model and r["k"] == k]
        meas = [r["measured_us"] for r in rs]
        pm = [r["predicted_measured_us"] for r in rs]
        pr = [r["predicted_roofline_us"] for r in rs]
        em = statistics.median(abs(p - m) / m for p, m in zip(pm, meas))
        er = statistics.median(abs(p - m) / m for p, m in zip(pr, meas))
        fmt = lambda xs: " / ".join(f"{x:.0f}" for x in xs)  # noqa: E731
        out.append(f"| {model} | {rs[0]['nodes']} | {k} | {fmt(meas)} | {fmt(pm)} | "
                   f"{100 * em:.1f}% | {fmt(pr)} | {100 * er:.0f}% | "
                   f"{rs[0]['pipeline_mb_per_s']:.1f} | {rs[0]['predicted_mb_per_s']:.1f} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("-k", nargs="*", type=int, default=[2, 4])
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    link = measure_link()
    print(f"gloo link: latency {link[0] * 1e6:.0f} us, bandwidth {link[1] / 1e9:.2f} GB/s",
          flush=True)
    rows = []
    for name in args.models:
        rows += one_model(name, link, args.k, args.repeats, args.time_limit)
    md = table(rows)
    print(md)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"link": link, "rows": rows, "table": md}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
