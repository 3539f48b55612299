"""Are time limits kept? Wall time of ``pipecore solve --time-limit T`` per method, size, k.

For every method, graph size (generated layered DAGs, ``pipecore.generators.layered_dag``)
and k, runs the CLI in a fresh process and records the solve's own wall time (from
``--json``: graph loading excluded, the certificate included) and the whole process's
wall time (Python start-up, import and JSON loading included), with the slowest phase.
A row passes when the solve's wall time is at most ``T + slack``. Rows append to a
JSONL file (resumable); ``--table`` prints the Markdown table of the README.

    flock /tmp/pipecore-bench.lock python bench/time_limits.py --time-limit 5 \
        --out bench/results/time_limits.jsonl
    python bench/time_limits.py --out bench/results/time_limits.jsonl --table
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = ["auto", "ideals", "slicegraph", "anneal", "local", "mip", "random", "balanced",
           "uniform"]
SIZES = [1000, 10_000, 50_000, 200_000]
KS = [1, 8, 64]


def graph_file(n: int, folder: Path) -> Path:
    """A seeded layered DAG with ``n`` nodes, written once as pipecore JSON."""
    from pipecore import generators, save_graph

    path = folder / f"layered_{n}.json"
    if not path.exists():
        save_graph(generators.layered_dag(n, seed=0), path)
    return path


def run_one(path: Path, n: int, k: int, method: str, limit: float, slack: float) -> dict:
    """One CLI solve in a fresh process; killed at ``limit + 60`` s (reported as a hang)."""
    cmd = [sys.executable, "-m", "pipecore", "solve", str(path), "-k", str(k), "--method",
           method, "--time-limit", str(limit), "--json", "-q"]
    t0 = time.monotonic()
    row = {"nodes": n, "k": k, "method": method, "time_limit": limit}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit + 60)
    except subprocess.TimeoutExpired:
        row.update(process_wall=time.monotonic() - t0, solve_wall=None, ok=False,
                   error="killed after limit + 60 s")
        return row
    row["process_wall"] = time.monotonic() - t0
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:
        row.update(solve_wall=None, ok=False,
                   error=f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
        return row
    phases = out.get("phases") or [{"name": "-", "seconds": 0.0}]
    slow = max(phases, key=lambda p: p["seconds"])
    row.update(solve_wall=out["wall_time"], quality=out["quality"],
               termination=out["termination"], gap=out["gap"],
               slowest_phase=f"{slow['name']} {slow['seconds']:.2f} s",
               ok=out["wall_time"] <= limit + slack)
    return row


def table(rows: list[dict], slack: float) -> str:
    """Markdown: one line per (nodes, k), one column per method, "solve / process" seconds."""
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    keys = sorted({(r["nodes"], r["k"]) for r in rows})
    limits = sorted({r["time_limit"] for r in rows})
    head = "| nodes | k | " + " | ".join(methods) + " |"
    lines = [head, "|" + "---|" * (len(methods) + 2)]
    by = {(r["nodes"], r["k"], r["method"]): r for r in rows}
    for n, k in keys:
        cells = []
        for m in methods:
            r = by.get((n, k, m))
            if r is None:
                cells.append("")
            elif r.get("solve_wall") is None:
                cells.append(f"**{r.get('error', 'failed')}**")
            else:
                mark = "" if r["ok"] else " **over**"
                cells.append(f"{r['solve_wall']:.1f} / {r['process_wall']:.1f}{mark}")
        lines.append(f"| {n:,} | {k} | " + " | ".join(cells) + " |")
    worst = max((r["solve_wall"] - r["time_limit"] for r in rows if r.get("solve_wall")),
                default=float("nan"))
    bad = sum(not r["ok"] for r in rows)
    lines.append("")
    lines.append(f"time limit(s) {limits}; cells: solve wall / process wall (s); "
                 f"{len(rows)} runs, {bad} over limit + {slack:g} s; worst solve overrun "
                 f"{worst:+.2f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    ap.add_argument("--ks", type=int, nargs="+", default=KS)
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    ap.add_argument("--time-limit", type=float, default=5.0)
    ap.add_argument("--slack", type=float, default=2.0, help="allowed overrun (s)")
    ap.add_argument("--out", type=Path, default=Path("time_limits.jsonl"))
    ap.add_argument("--graphs", type=Path, default=None, help="folder for the graph files")
    ap.add_argument("--table", action="store_true", help="only print the table of --out")
    args = ap.parse_args(argv)
    done = [json.loads(line) for line in args.out.read_text().splitlines()
            if line.strip()] if args.out.exists() else []
    if not args.table:
        folder = args.graphs or Path(tempfile.gettempdir()) / "pipecore-time-limits"
        folder.mkdir(parents=True, exist_ok=True)
        seen = {(r["nodes"], r["k"], r["method"], r["time_limit"]) for r in done}
        with args.out.open("a") as fh:
            for n in args.sizes:
                path = graph_file(n, folder)
                for k in args.ks:
                    for m in args.methods:
                        if (n, k, m, args.time_limit) in seen:
                            continue
                        row = run_one(path, n, k, m, args.time_limit, args.slack)
                        print(json.dumps(row), flush=True)
                        fh.write(json.dumps(row) + "\n")
                        fh.flush()
                        done.append(row)
    print(table(done, args.slack))
    return 0 if all(r["ok"] for r in done) else 1


if __name__ == "__main__":
    sys.exit(main())
