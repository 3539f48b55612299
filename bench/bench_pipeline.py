#!/usr/bin/env python
"""Predicted vs measured pipeline stage times on this machine (issue 14).

For each model and k in {2, 4}: measure per-node costs (``pipecore.io.measure``,
CPU, 1 thread, median of repeats) and the gloo link; solve with the measured
costs; split the exported program into stage modules; then measure

* each stage's compute: median time of its ``fx.GraphModule`` on its real inputs
  (1 thread), on the wall clock and on the thread's CPU clock, in the same rounds
  as a re-measurement of the per-node costs (:class:`~pipecore.io.measure.NodeTimer`,
  both clocks) that the prediction then uses, so both see the same machine load;
* each stage's transfers: the one-way gloo time (two local processes, mean
  ping-pong / 2) of every tensor it actually receives and sends, pass-through
  tensors included, measured in one session interleaved with the link's standard
  sizes; the link line is fitted on the standard sizes only.

The prediction per stage is :func:`~pipecore.io.measure.plan_stage_times` (measured
work + one link message per tensor the module receives and sends); the cost
model's f(S) (no pass-through) and the roofline ``cpu`` device model are reported
too. Finally it runs the real pipeline (k processes, gloo, ``ScheduleGPipe``, 8
micro-batches) and reports micro-batches/s against ``m / max((m + k - 1) T, m W /
cores)`` (GPipe fill/drain with bottleneck T; W = total stage compute shared by the
cores). Run under the bench lock::

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

from pipecore import Graph, Partition, solve  # noqa: E402
from pipecore import examples  # noqa: E402
from pipecore.io.launch import launch_local  # noqa: E402
from pipecore.io.measure import (_SIZES as LINK_SIZES, fit_link, link_comm,  # noqa: E402
                                 measure_exported, measure_link, ping_pong, plan_stage_times)
from pipecore.io.torch import static_placeholders, walk_graph  # noqa: E402
from pipecore.io.stages import split_exported  # noqa: E402
from pipecore.io.torch import from_exported  # noqa: E402

MODELS = {
    "bert-4L-256": (examples.tiny_bert, dict(batch=2, seq_len=128, layers=4, hidden=256)),
    "gpt2-4L-256": (examples.tiny_gpt2, dict(batch=2, seq_len=128, layers=4, hidden=256)),
    "skip-cnn": (examples.skip_cnn, dict(batch=4, size=32, width=32, blocks=4)),
    "mlp-1024x8": (examples.mlp, dict(batch=64, width=1024, depth=8)),
}
CLOCKS = ("wall", "cpu")
MICRO = 8                      # micro-batches per pipeline step
CORES = os.cpu_count() or 1


def interleaved(ep, n: int, plan, args, repeats: int):
    """Per-node and per-stage times measured in the same rounds (round r: one run of
    the whole program under each clock's :class:`NodeTimer`, then one run of each
    stage), so both see the same machine load. Returns ({clock: seconds per imported
    node}, {clock: stage seconds}, bytes each stage sends)."""
    from pipecore.io.measure import NodeTimer, folded_costs, work_per_row
    from pipecore.io.torch import static_placeholders, walk_graph

    _, _, index = walk_graph(ep.graph, static_placeholders(ep))
    whole = split_exported(ep, [0] * n).modules[0]
    timers = {c: NodeTimer(whole, c) for c in CLOCKS}
    ins, vals = [], tuple(args)
    with torch.no_grad():
        for mod in plan.modules:
            ins.append(vals)
            vals = mod(*vals)
        node_runs = {c: [] for c in CLOCKS}
        stage_ts = {c: [[] for _ in plan.modules] for c in CLOCKS}
        for r in range(repeats + 3):
            for c, timer in timers.items():
                node_runs[c].append(timer.run(args))
            for s, (mod, x) in enumerate(zip(plan.modules, ins)):
                t0, c0 = time.perf_counter(), time.thread_time()
                mod(*x)
                c1, t1 = time.thread_time(), time.perf_counter()
                stage_ts["wall"][s].append(t1 - t0)
                stage_ts["cpu"][s].append(c1 - c0)
    times = {c: dict(zip(timers[c].names, np.median(node_runs[c][3:], axis=0))) for c in CLOCKS}
    work = {c: (work_per_row(whole, times[c], index, n), folded_costs(whole, times[c], index))
            for c in CLOCKS}
    stages = {c: [statistics.median(t[3:]) for t in stage_ts[c]] for c in CLOCKS}
    outs = ins[1:] + [vals]
    return work, stages, [[t.numel() * t.element_size() for t in x] for x in outs]


def transfers(sent, k: int):
    """One gloo session: the link sizes and every size a stage really sends,
    interleaved. Returns (link fitted on the standard sizes only, measured one-way
    seconds of each stage's sends + receives)."""
    real = sorted({max(int(b), 4) // 4 * 4 for x in sent[:-1] for b in x})
    rows = ping_pong(list(LINK_SIZES) + real, repeats=30)
    link = fit_link(rows[:len(LINK_SIZES), 0], rows[:len(LINK_SIZES), 1])
    one_way = {int(b): t for b, t in rows[len(LINK_SIZES):]}
    xfer = [sum(one_way[max(int(b), 4) // 4 * 4] for b in sent[s]) if s < k - 1 else 0.0
            for s in range(k)]
    return link, [xfer[s] + (xfer[s - 1] if s else 0.0) for s in range(k)]  # send + receive


def stage_pred(g, costs, comm_s, stage, plan, link):
    """Predicted seconds per stage for the given per-node seconds: (the modules that
    run, :func:`plan_stage_times`; their compute part; the cost model's f(S))."""
    work_s, folded = costs
    gx = Graph(g.n, g.src, g.dst, work_s * 1e6, comm_s * 1e6, g.mem, names=g.names,
               metadata={"time_unit": 1e-6, "folded": folded})
    k = plan.k
    bd = Partition(gx, stage, k).breakdown()
    tot, comp = np.zeros(k), np.zeros(k)
    tot[bd.stages], comp[bd.stages] = bd.total, bd.work
    return (plan_stage_times(plan, gx, stage, link=link),
            plan_stage_times(plan, gx, stage, link=(0.0, 0.0)), tot / 1e6)


def one_model(name: str, link, k_values, repeats: int, time_limit: float) -> list[dict]:
    fn, cfg = MODELS[name]
    built = fn(**cfg)
    model, args = built[0], built[1]
    kwargs = built[2] if len(built) > 2 else {}
    ep = torch.export.export(model.eval(), args, kwargs, strict=False)
    g_meas = measure_exported(ep, args, kwargs, link=link, repeats=repeats)
    g_roof = from_exported(ep, device="cpu")
    table_ = walk_graph(ep.graph, static_placeholders(ep))[0]
    rows = []
    for k in k_values:
        res = solve(g_meas, k, time_limit=time_limit, seed=0)
        stage = res.partition.stage
        plan = split_exported(ep, res)
        work, comp, sent = interleaved(ep, g_meas.n, plan, args, repeats)
        now_link, xfer = transfers(sent, k)
        comm = link_comm(table_.out_bytes, *now_link)
        pred = {c: stage_pred(g_meas, work[c], comm, stage, plan, now_link) for c in CLOCKS}
        bd_r = Partition(g_roof, stage, k).breakdown()
        pr = np.zeros(k)
        pr[bd_r.stages] = bd_r.total
        batch = tuple(torch.cat([a] * MICRO) for a in args)
        timing: dict = {}
        launch_local(plan, batch, n_microbatches=MICRO, steps=3, timings=timing, timeout=600)
        T = float(pred["wall"][0].max())
        gpipe = MICRO / max((MICRO + k - 1) * T, MICRO * float(pred["wall"][1].sum()) / CORES)
        for s in range(k):
            row = dict(model=name, nodes=g_meas.n, k=k, stage=s, nodes_in_stage=len(plan.nodes[s]),
                       passthrough=len(plan.passthrough[s]), predicted_roofline_us=float(pr[s]),
                       transfer_us=xfer[s] * 1e6, link=list(now_link),
                       pipeline_mb_per_s=MICRO / timing["seconds_per_step"],
                       predicted_mb_per_s=1 / T, predicted_gpipe_mb_per_s=gpipe)
            for c in CLOCKS:
                row[f"compute_{c}_us"] = comp[c][s] * 1e6
                row[f"measured_{c}_us"] = (comp[c][s] + xfer[s]) * 1e6
                row[f"predicted_{c}_us"] = float(pred[c][0][s]) * 1e6
                row[f"predicted_compute_{c}_us"] = float(pred[c][1][s]) * 1e6
                row[f"predicted_costmodel_{c}_us"] = float(pred[c][2][s]) * 1e6
            rows.append(row)
        print(f"{name} k={k}: link {now_link[0] * 1e6:.0f} us + B/{now_link[1] / 1e9:.2f} GB/s; "
              + ", ".join(f"s{s} meas {r['measured_wall_us']:.0f} (cpu {r['measured_cpu_us']:.0f})"
                          f" pred {r['predicted_wall_us']:.0f} (cpu {r['predicted_cpu_us']:.0f})"
                          f" roof {r['predicted_roofline_us']:.0f} | compute {r['compute_wall_us']:.0f}"
                          f" vs {r['predicted_compute_wall_us']:.0f}, xfer {r['transfer_us']:.0f}"
                          for s, r in enumerate(rows[-k:])), flush=True)
    return rows


def _err(pred, meas) -> float:
    """Median over stages of |pred - meas| / meas, in % (nan if nothing to compare)."""
    errs = [abs(p - m) / m for p, m in zip(pred, meas) if m > 0]
    return 100 * statistics.median(errs) if errs else float("nan")


def table(rows: list[dict]) -> str:
    """Markdown table: one line per (model, k), stage times and median per-stage errors."""
    out = ["| model | k | measured, wall (us) | predicted, wall costs | err | measured, CPU "
           "clock (us) | predicted, CPU costs | err | compute err | transfer err | roofline "
           "`cpu` | err | f(S) err | mb/s measured | GPipe, 2 cores |", "|" + "---|" * 15]
    keys = sorted({(r["model"], r["k"]) for r in rows},
                  key=lambda t: (list(MODELS).index(t[0]) if t[0] in MODELS else 99, t[1]))
    for model, k in keys:
        rs = [r for r in rows if r["model"] == model and r["k"] == k]
        col = lambda key: [r[key] for r in rs]  # noqa: E731
        fmt = lambda xs: " / ".join(f"{x:.0f}" for x in xs)  # noqa: E731
        pc = [r["predicted_wall_us"] - r["predicted_compute_wall_us"] for r in rs]
        fs = _err(col("predicted_costmodel_wall_us"), col("measured_wall_us"))
        out.append(
            f"| {model} | {k} | {fmt(col('measured_wall_us'))} | {fmt(col('predicted_wall_us'))}"
            f" | {_err(col('predicted_wall_us'), col('measured_wall_us')):.1f}% | "
            f"{fmt(col('measured_cpu_us'))} | {fmt(col('predicted_cpu_us'))} | "
            f"{_err(col('predicted_cpu_us'), col('measured_cpu_us')):.1f}% | "
            f"{_err(col('predicted_compute_wall_us'), col('compute_wall_us')):.1f}% | "
            f"{_err(pc, col('transfer_us')):.0f}% | {fmt(col('predicted_roofline_us'))} | "
            f"{_err(col('predicted_roofline_us'), col('measured_wall_us')):.0f}% | {fs:.1f}% | "
            f"{rs[0]['pipeline_mb_per_s']:.1f} | "
            f"{rs[0]['predicted_gpipe_mb_per_s']:.1f} |")
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
    started, load0 = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()
    link = measure_link()
    print(f"gloo link: latency {link[0] * 1e6:.0f} us, bandwidth {link[1] / 1e9:.2f} GB/s",
          flush=True)
    rows = []
    for name in args.models:
        rows += one_model(name, link, args.k, args.repeats, args.time_limit)
    md = table(rows)
    print(md)
    load = {"start": load0, "end": os.getloadavg()}
    print(f"started {started}; load average at start {load0}, at end {load['end']}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"started": started, "loadavg": load, "link": link, "rows": rows,
                       "table": md}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
