"""Gap table: how close do the certified lower bounds get to the best partition?

Runs ``pipecore.solve(graph, k, time_limit=T)`` on a testbed for k in {2, 4, 8, 16,
32, 64} and prints, per k, the geometric mean over instances of LB/UB for
(a) the combinatorial bound, (b) the best MIP bound as run in the pipeline (the MIPs
are seeded with T >= the combinatorial bound; they are skipped when the exact DP has
already proven the optimum, so there this column shows the combinatorial bound), and
(c) the certificate's bound (best of exact DP, MIP and combinatorial), plus how many
instances were proven optimal (gap <= 1e-6) and by which method.

Testbed (default): the five shared MSR graphs (file memory cap when it is feasible
at that k, else none), the development set of wide real models (``bench/devset.py``:
embedded models, ONNX zoo, encoder-decoder, two-tower, speech, mixture-of-experts,
U-Net and multi-branch CNNs imported with pipecore.io; build it once with
``python bench/devset.py``), 20 ``regal_like`` DNN graphs of 100..5,000 nodes and 5
``layered_dag`` random DAGs of 100..5,000 nodes. Every instance runs in its own
subprocess (a crash or hang costs one row, not the run); rows are appended to a JSONL
file and the run resumes from it. The table (markdown) is per k and family over the
instances the exact DP does not close: geometric mean LB/UB, the worst instance, which
bound and which method won most often, and the worst wall-time overrun.

    python bench/gap_table.py --time-limit 60 --graphs dev,layered --out bench/results/gap_table.jsonl
    python bench/gap_table.py --time-limit 10 --graphs dev --ks 16,64 --report-only
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import devset  # noqa: E402  (bench/devset.py: the cached wide real models)

MSR_DIR = ROOT / "tests" / "data" / "msr"
MSR = ["layer_bert24_inference", "layer_gnmt_inference", "layer_resnet50_inference",
       "op_bert_l-3_inference", "op_resnet50_inference"]
REGAL_SIZES = [100, 150, 200, 300, 400, 500, 600, 750, 900, 1000, 1200, 1500, 1800, 2000,
               2500, 3000, 3500, 4000, 4500, 5000]
LAYERED_SIZES = [100, 300, 1000, 2500, 5000]
KS = [2, 4, 8, 16, 32, 64]


def testbed() -> list[str]:
    names = [f"msr:{m}" for m in MSR]
    names += [f"dev:{m}" for m in devset.FAMILIES]
    names += [f"regal:{n}:{i}" for i, n in enumerate(REGAL_SIZES)]
    names += [f"layered:{n}:{i}" for i, n in enumerate(LAYERED_SIZES)]
    return names


def family(spec: str) -> str:
    """The family of a testbed name (dev-set models by architecture)."""
    kind, *rest = spec.split(":")
    return devset.FAMILIES.get(rest[0], "dev") if kind == "dev" else kind


def load(spec: str):
    """(graph, memory cap or None) for a testbed name."""
    import pipecore
    from pipecore import generators

    kind, *rest = spec.split(":")
    if kind == "msr":
        g = pipecore.load_graph(MSR_DIR / f"{rest[0]}.json")
        return g, g.metadata.get("mem_cap")
    if kind == "dev":
        return devset.load(rest[0]), None
    n, seed = int(rest[0]), int(rest[1])
    if kind == "regal":
        return generators.regal_like(n, seed=seed), None
    if kind == "layered":
        return generators.layered_dag(n, seed=seed), None
    raise ValueError(f"unknown testbed graph {spec!r}")


def run_one(spec: str, k: int, time_limit: float, jobs: int, backend: str) -> dict:
    """Solve one instance and return its JSON row (called in a subprocess)."""
    import pipecore
    from pipecore.bounds import combinatorial_bound
    from pipecore.problem import Problem

    g, cap = load(spec)
    try:
        Problem(g, k, cap)
    except pipecore.InvalidGraphError:
        cap = None  # the file's cap cannot hold the graph on k stages: run uncapped
    t0 = time.perf_counter()
    res = pipecore.solve(g, k, mem_cap=cap, time_limit=time_limit, jobs=jobs,
                         mip_backend=backend)
    wall = time.perf_counter() - t0
    dp = [p for p in res.phases if p.name == "ideals"]
    return {"graph": spec, "family": family(spec), "n": g.n, "k": k,
            "time_limit": time_limit, "mem_cap": cap, "ub": res.upper_bound,
            "lb": res.lower_bound, "lb_comb": combinatorial_bound(g, k, cap).value,
            "ub_method": res.upper_bound_source, "lb_method": res.lower_bound_source,
            "quality": res.quality.value, "termination": res.termination.value,
            "dp_closed": bool(dp) and "ideals" in (res.lower_bound_source or ""),
            "wall": wall, "phases": [[p.name, round(p.seconds, 3)] for p in res.phases]}


def _key(row) -> tuple:
    return (row["graph"], int(row["k"]), float(row["time_limit"]))


def geomean(xs) -> float:
    xs = [max(x, 1e-12) for x in xs]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else math.nan


def _ok(r) -> bool:
    return r.get("error") is None and r.get("ub") not in (None, math.inf) and r["ub"] > 0


def _winner(names) -> str:
    """The most frequent bound/method name family (text before '[' or '(')."""
    tally: dict = {}
    for n in names:
        key = (n or "-").split("[")[0].split(" (")[0]
        tally[key] = tally.get(key, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(tally.items(), key=lambda kv: -kv[1])[:2])


def report(rows: list[dict], ks: list[int], out=sys.stdout, hard_only: bool = True) -> None:
    """Markdown table per k and family: instances, geomean LB/UB, worst instance, winners.

    ``hard_only``: only instances the exact DP did not close (the ones that need bounds)."""
    print("| k | family | inst | geomean LB/UB | worst (instance) | LB from | UB from | "
          "max wall - limit |", file=out)
    print("|---|---|---|---|---|---|---|---|", file=out)
    fams = sorted({r.get("family") or family(r["graph"]) for r in rows})
    for k in ks:
        for fam in fams + ["ALL"]:
            rs = [r for r in rows if r["k"] == k and _ok(r)
                  and (fam == "ALL" or (r.get("family") or family(r["graph"])) == fam)
                  and not (hard_only and r.get("dp_closed"))]
            if not rs:
                continue
            ratio = [min(r["lb"] / r["ub"], 1.0) for r in rs]
            worst = min(range(len(rs)), key=lambda i: ratio[i])
            over = max(r["wall"] - r["time_limit"] for r in rs)
            print(f"| {k} | {fam} | {len(rs)} | {geomean(ratio):.4f} | {ratio[worst]:.4f} "
                  f"({rs[worst]['graph']}) | {_winner(r['lb_method'] for r in rs)} | "
                  f"{_winner(r['ub_method'] for r in rs)} | {over:+.1f} s |", file=out)
    errs = [r for r in rows if r.get("error")]
    if errs:
        print(f"{len(errs)} instance(s) failed: " + ", ".join(
            f"{r['graph']} k={r['k']}: {r['error'][:60]}" for r in errs[:5]), file=out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--time-limit", type=float, default=60.0, help="seconds per instance")
    ap.add_argument("--graphs", default="all",
                    help="comma list of testbed names or sets (msr, dev, regal, layered, all)")
    ap.add_argument("--ks", default=",".join(map(str, KS)), help="comma list of k values")
    ap.add_argument("--jobs", type=int, default=1, help="instances run in parallel")
    ap.add_argument("--mip-jobs", type=int, default=None,
                    help="parallel MIPs inside one instance (default: CPUs / jobs)")
    ap.add_argument("--backend", default="auto", help="MIP backend: auto, highs, gurobi")
    ap.add_argument("--out", default=str(ROOT / "bench" / "gap_table.jsonl"),
                    help="JSONL results file (appended; existing rows are reused)")
    ap.add_argument("--all-instances", action="store_true",
                    help="table over every instance, not only those the exact DP leaves open")
    ap.add_argument("--report-only", action="store_true", help="print the table from --out")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:  # subprocess mode: one instance, one JSON line on stdout
        spec, k, tl, jobs, backend = json.loads(args.worker)
        print(json.dumps(run_one(spec, k, tl, jobs, backend)))
        return 0

    ks = [int(x) for x in args.ks.split(",") if x]
    names = []
    for item in args.graphs.split(","):
        if item == "all":
            names += testbed()
        elif item in ("msr", "regal", "layered", "dev"):
            names += [t for t in testbed() if t.startswith(item + ":")]
        else:
            names.append(item)
    out = Path(args.out)
    rows = []
    if out.exists():
        rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    done = {_key(r) for r in rows}
    todo = [(s, k) for k in ks for s in names if (s, k, float(args.time_limit)) not in done]
    mip_jobs = args.mip_jobs or max(1, (os.cpu_count() or 1) // max(args.jobs, 1))
    if not args.report_only and todo:
        print(f"{len(todo)} instances to run ({len(done)} reused), {args.time_limit:g} s each, "
              f"{args.jobs} at a time", file=sys.stderr)
        running: list = []
        queue = list(todo)
        with out.open("a") as fh:
            while queue or running:
                while queue and len(running) < args.jobs:
                    spec, k = queue.pop(0)
                    payload = json.dumps([spec, k, args.time_limit, mip_jobs, args.backend])
                    env = dict(os.environ)
                    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
                    proc = subprocess.Popen([sys.executable, __file__, "--worker", payload],
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            text=True, env=env)
                    running.append((proc, spec, k, time.perf_counter()))
                time.sleep(0.05)
                for item in list(running):
                    proc, spec, k, t0 = item
                    hard = args.time_limit * 3 + 120
                    if proc.poll() is None and time.perf_counter() - t0 < hard:
                        continue
                    running.remove(item)
                    if proc.poll() is None:
                        proc.kill()
                    stdout, stderr = proc.communicate()
                    try:
                        row = json.loads(stdout.strip().splitlines()[-1])
                    except (IndexError, json.JSONDecodeError):
                        row = {"graph": spec, "k": k, "time_limit": args.time_limit,
                               "error": (stderr.strip().splitlines() or ["crash"])[-1]
                               + f" (exit {proc.returncode})"}
                    rows.append(row)
                    fh.write(json.dumps(row) + "\n")
                    fh.flush()
                    if row.get("error"):
                        print(f"  {spec} k={k}: ERROR {row['error']}", file=sys.stderr)
                    else:
                        print(f"  {spec} k={k}: UB {row['ub']:.6g} LB {row['lb']:.6g} "
                              f"ratio {row['lb'] / row['ub']:.4f} ({row['lb_method']}; "
                              f"{row['ub_method']}) "
                              f"{row['wall']:.1f}s", file=sys.stderr)
    sel = [r for r in rows if r["graph"] in set(names)
           and float(r["time_limit"]) == float(args.time_limit)]
    print(f"gap table: {len({r['graph'] for r in sel})} graphs, time limit "
          f"{args.time_limit:g} s per instance")
    report(sel, ks, hard_only=not args.all_instances)
    return 0


if __name__ == "__main__":
    sys.exit(main())
