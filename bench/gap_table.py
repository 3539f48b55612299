"""Gap table: how close do the certified lower bounds get to the best partition?

Runs ``pipecore.solve(graph, k, time_limit=T)`` on a testbed for k in {2, 4, 8, 16,
32, 64} and prints, per k, the geometric mean over instances of LB/UB for
(a) the combinatorial bound, (b) the best MIP bound as run in the pipeline (the MIPs
are seeded with T >= the combinatorial bound; they are skipped when the exact DP has
already proven the optimum, so there this column shows the combinatorial bound), and
(c) the certificate's bound (best of exact DP, MIP and combinatorial), plus how many
instances were proven optimal (gap <= 1e-6) and by which method.

Testbed (default, 30 graphs): the five shared MSR graphs (file memory cap when it
is feasible at that k, else none), 20 ``regal_like`` DNN graphs of 100..5,000 nodes
and 5 ``layered_dag`` random DAGs of 100..5,000 nodes (both with skewed, realistic
costs). Every instance runs in its own subprocess (a crash or hang costs one row,
not the run); rows are appended to a JSONL file and the run resumes from it.

    python bench/gap_table.py --time-limit 60 --jobs 1 --out bench/gap_table.jsonl
    python bench/gap_table.py --time-limit 5 --graphs regal --ks 2,16 --report-only
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
MSR_DIR = ROOT / "tests" / "data" / "msr"
MSR = ["layer_bert24_inference", "layer_gnmt_inference", "layer_resnet50_inference",
       "op_bert_l-3_inference", "op_resnet50_inference"]
REGAL_SIZES = [100, 150, 200, 300, 400, 500, 600, 750, 900, 1000, 1200, 1500, 1800, 2000,
               2500, 3000, 3500, 4000, 4500, 5000]
LAYERED_SIZES = [100, 300, 1000, 2500, 5000]
KS = [2, 4, 8, 16, 32, 64]


def testbed() -> list[str]:
    names = [f"msr:{m}" for m in MSR]
    names += [f"regal:{n}:{i}" for i, n in enumerate(REGAL_SIZES)]
    names += [f"layered:{n}:{i}" for i, n in enumerate(LAYERED_SIZES)]
    return names


def load(spec: str):
    """(graph, memory cap or None) for a testbed name."""
    import pipecore
    from pipecore import generators

    kind, *rest = spec.split(":")
    if kind == "msr":
        g = pipecore.load_graph(MSR_DIR / f"{rest[0]}.json")
        return g, g.metadata.get("mem_cap")
    n, seed = int(rest[0]), int(rest[1])
    if kind == "regal":
        return generators.regal_like(n, seed=seed), None
    if kind == "layered":
        return generators.layered_dag(n, seed=seed), None
    raise ValueError(f"unknown testbed graph {spec!r}")


def run_one(spec: str, k: int, time_limit: float, jobs: int, backend: str) -> dict:
    """Solve one instance and return its JSON row (called in a subprocess)."""
    import pipecore
    from pipecore.graph import check_mem_cap

    g, cap = load(spec)
    try:
        check_mem_cap(g, k, cap)
    except pipecore.InvalidGraphError:
        cap = None  # the file's cap cannot hold the graph on k stages: run uncapped
    t0 = time.perf_counter()
    res = pipecore.solve(g, k, mem_cap=cap, time_limit=time_limit, jobs=jobs,
                         mip_backend=backend)
    wall = time.perf_counter() - t0
    lb_comb = res.stats.get("lb_combinatorial")
    if lb_comb is None:
        from pipecore.bounds import combinatorial_bound

        lb_comb = combinatorial_bound(g, k, cap).value
    return {"graph": spec, "n": g.n, "k": k, "time_limit": time_limit, "mem_cap": cap,
            "ub": res.upper_bound, "lb": res.lower_bound, "lb_comb": lb_comb,
            "lb_mip": res.stats.get("lb_mip", 0.0), "ub_method": res.method,
            "lb_method": res.lower_bound_method, "status": res.status, "gap": res.gap,
            "wall": wall, "timings": res.timings}


def _key(row) -> tuple:
    return (row["graph"], int(row["k"]), float(row["time_limit"]))


def geomean(xs) -> float:
    xs = [max(x, 1e-12) for x in xs]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else math.nan


def report(rows: list[dict], ks: list[int], out=sys.stdout) -> None:
    """Print per k: instances, geomean comb/UB, geomean certificate LB/UB, #optimal."""
    print(f"{'k':>3} {'inst':>5} {'comb LB/UB':>11} {'MIP LB/UB':>10} {'cert LB/UB':>11} "
          f"{'min cert':>9} {'optimal':>8} {'by DP':>6} {'by MIP':>7}", file=out)
    for k in ks:
        rs = [r for r in rows if r["k"] == k and r.get("ub") not in (None, math.inf)
              and r.get("error") is None and r["ub"] > 0]
        if not rs:
            continue
        comb = [min(r["lb_comb"], r["ub"]) / r["ub"] for r in rs]
        cert = [r["lb"] / r["ub"] for r in rs]
        # MIP bound as run in the pipeline: seeded with T >= comb, so never below it
        mip = [min(max(r["lb_comb"], r.get("lb_mip") or 0.0), r["ub"]) / r["ub"] for r in rs]
        opt = [r for r in rs if r["gap"] is not None and r["gap"] <= 1e-6]
        by_dp = sum(1 for r in opt if "ideals" in (r["lb_method"] or ""))
        by_mip = sum(1 for r in opt if (r["lb_method"] or "").startswith("mip"))
        print(f"{k:>3} {len(rs):>5} {geomean(comb):>11.4f} {geomean(mip):>10.4f} "
              f"{geomean(cert):>11.4f} {min(cert):>9.4f} {len(opt):>8} {by_dp:>6} {by_mip:>7}",
              file=out)
    errs = [r for r in rows if r.get("error")]
    if errs:
        print(f"{len(errs)} instance(s) failed: " + ", ".join(
            f"{r['graph']} k={r['k']}: {r['error'][:60]}" for r in errs[:5]), file=out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--time-limit", type=float, default=60.0, help="seconds per instance")
    ap.add_argument("--graphs", default="all",
                    help="comma list of testbed names or families (msr, regal, layered, all)")
    ap.add_argument("--ks", default=",".join(map(str, KS)), help="comma list of k values")
    ap.add_argument("--jobs", type=int, default=1, help="instances run in parallel")
    ap.add_argument("--mip-jobs", type=int, default=None,
                    help="parallel MIPs inside one instance (default: CPUs / jobs)")
    ap.add_argument("--backend", default="auto", help="MIP backend: auto, highs, gurobi")
    ap.add_argument("--out", default=str(ROOT / "bench" / "gap_table.jsonl"),
                    help="JSONL results file (appended; existing rows are reused)")
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
        elif item in ("msr", "regal", "layered"):
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
                              f"comb {row['lb_comb']:.6g} ({row['lb_method']}) "
                              f"{row['wall']:.1f}s", file=sys.stderr)
    sel = [r for r in rows if r["graph"] in set(names)
           and float(r["time_limit"]) == float(args.time_limit)]
    print(f"gap table: {len({r['graph'] for r in sel})} graphs, time limit "
          f"{args.time_limit:g} s per instance")
    report(sel, ks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
