"""Subcommands for studies: ``sweep`` (resumable grids of solves) and ``report``."""
from __future__ import annotations

import argparse
import os
import sys

from .. import errors
from .graphs import _positive_int, _time_limit

__all__ = ["register"]


def _cmd_sweep(args: argparse.Namespace) -> int:
    """Expand the grid, run it, print a summary (exit 1 if any instance failed)."""
    from ..solver import METHODS
    from ..sweep import expand_grid, resolve_graph, run_sweep

    cap: float | str | None = "graph"
    if args.no_mem_cap:
        cap = None
    elif args.mem_cap is not None:
        cap = args.mem_cap
    for m in args.methods:
        if m != "auto" and m not in METHODS:
            raise errors.InvalidOptionError(
                f"unknown method {m!r}; choose from auto, {', '.join(sorted(METHODS))}")
    for g in args.graphs:  # fail fast on a bad reference, before starting workers
        try:
            resolve_graph(g)
        except FileNotFoundError as exc:
            raise ValueError(f"graph {g!r}: {exc}") from None
    instances = expand_grid(args.graphs, args.k, args.methods, args.seeds,
                            time_limit=args.time_limit, mem_cap=cap)

    def show(done: int, todo: int, row: dict) -> None:
        ub, lb = row.get("upper_bound"), row.get("lower_bound")
        txt = (f"ub {ub:.6g} lb {lb:.6g}" if ub is not None and lb is not None
               else str(row.get("error") or ""))
        state = "error" if row.get("error") else row.get("quality")
        print(f"[{done}/{todo}] {row['key']}: {state} {txt} "
              f"({row.get('wall_time', 0):.2f} s)", file=sys.stderr, flush=True)

    summary = run_sweep(instances, args.output, executor=args.executor, jobs=args.jobs,
                        scheduler=args.scheduler, retry_errors=args.retry_errors,
                        progress=None if args.quiet else show)
    print(summary)
    for msg in summary.error_messages[:10]:
        print(f"  error: {msg}", file=sys.stderr)
    return 1 if summary.errors else 0


def _cmd_report(args: argparse.Namespace) -> int:
    """Tables, PNG plots and an HTML page from a sweep's results (see pipecore.report)."""
    from ..report import make_report

    files = make_report(args.results, args.outdir or _report_dir(args.results),
                        graph=args.graph, k=args.k, instance=args.instance, title=args.title)
    print(files.table)
    print(f"\nwrote {files.html}" + "".join(f"\nwrote {p}" for p in files.pngs))
    return 0


def _report_dir(results: str) -> str:
    base = os.path.basename(os.path.normpath(results)).split(".")[0] or "results"
    return os.path.join(os.path.dirname(os.path.normpath(results)), f"{base}-report")


def register(sub: argparse._SubParsersAction) -> None:
    from .graphs import _add_cap_args

    p = sub.add_parser("sweep", help="run many (graph, k, method) instances, resumable")
    p.add_argument("graphs", nargs="+", metavar="GRAPH",
                   help="embedded model name, gen:GENERATOR:key=value,... or a graph file")
    p.add_argument("-k", type=_positive_int, nargs="+", required=True, help="stage counts")
    p.add_argument("--methods", nargs="+", default=["auto"], help="methods (default: auto)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default: 0)")
    p.add_argument("--time-limit", type=_time_limit, default=60.0, metavar="SECONDS",
                   help="per-instance wall-clock limit (default: 60; 'none' for no limit)")
    p.add_argument("-o", "--output", default="results.jsonl",
                   help="results file: .jsonl (JSON lines) or .parquet (default: results.jsonl)")
    p.add_argument("--executor", choices=["local", "serial", "dask"], default="local",
                   help="local process pool (default), in-process, or a Dask cluster")
    p.add_argument("-j", "--jobs", type=_positive_int, help="local workers (default: all cores)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--retry-errors", action="store_true", help="rerun instances that failed")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-instance lines")
    _add_cap_args(p)
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("report", help="tables, plots and an HTML page from sweep results")
    p.add_argument("results", help="results file written by `pipecore sweep`")
    p.add_argument("-o", "--outdir", help="output directory (default: RESULTS-report/)")
    p.add_argument("--graph", help="graph of the per-stage plot (default: the first)")
    p.add_argument("-k", type=_positive_int, help="k of the per-stage plot (default: the largest)")
    p.add_argument("--instance", help="result key of the per-stage plot (overrides --graph/-k)")
    p.add_argument("--title", default="pipecore sweep report", help="page title")
    p.set_defaults(func=_cmd_report)
