"""The ``pipecore`` command line: info, evaluate, solve.

Each subcommand is one ``_cmd_*`` function registered in :func:`build_parser`;
``solve`` goes through :func:`pipecore.solve`, the single dispatch point, so new
methods appear here without changes.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Sequence

import numpy as np

from . import errors
from ._runtime import ProgressBar
from .graph import Graph
from .io import load_graph, load_partition, save_partition
from .models import DEFAULT_MODEL, list_models, load_model
from .partition import Partition
from .result import SolveResult
from .solve import METHODS, solve


def _load(args) -> Graph:
    if getattr(args, "model", None):
        return load_model(args.model)
    if args.graph is None:
        return load_model(DEFAULT_MODEL)
    return load_graph(args.graph)


def _k(args, graph: Graph) -> int:
    if args.k is not None:
        return args.k
    if graph.metadata.get("k"):
        return int(graph.metadata["k"])
    raise errors.InvalidStageCountError("no -k given and the graph file names no default k")


def _mem_cap(args, graph: Graph):
    if args.no_mem_cap:
        return None
    if args.mem_cap is not None:
        return args.mem_cap
    return graph.metadata.get("mem_cap")


def _fmt(x: float) -> str:
    return f"{x:.6g}" if math.isfinite(x) else "-"


def _stage_table(part: Partition) -> str:
    b = part.breakdown()
    counts = np.bincount(part.stage, minlength=part.k)
    rows = [("stage", "nodes", "work", "recv", "send", "total", "mem")]
    for s in range(part.k):
        rows.append((str(s), str(int(counts[s])), _fmt(b.work[s]), _fmt(b.recv[s]),
                     _fmt(b.send[s]), _fmt(b.total[s]), _fmt(b.mem[s])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _graph_info(graph: Graph) -> dict:
    groups = 0 if graph.group is None else int(graph.group.max()) + 1
    depth = graph.depth()
    return {
        "nodes": graph.n, "edges": graph.m, "groups": groups,
        "total_work": graph.total_work, "total_comm": float(graph.comm.sum()),
        "total_mem": float(graph.mem.sum()), "max_work": float(graph.work.max()),
        "depth": int(depth.max()) + 1,
        "sources": int((np.diff(graph.pred_ptr) == 0).sum()),
        "sinks": int((np.diff(graph.succ_ptr) == 0).sum()),
        "metadata": {k: v for k, v in graph.metadata.items()
                     if isinstance(v, (int, float, str, type(None)))},
    }


def _cmd_info(args) -> int:
    graph = _load(args)
    info = _graph_info(graph)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if key == "metadata":
            for mk, mv in value.items():
                print(f"{'meta.' + mk:>14}: {mv}")
        else:
            print(f"{key:>14}: {_fmt(value) if isinstance(value, float) else value}")
    return 0


def _cmd_evaluate(args) -> int:
    graph = _load(args)
    part = load_partition(graph, args.partition)
    cap = _mem_cap(args, graph)
    problems = part.violations(cap)
    if args.json:
        b = part.breakdown()
        print(json.dumps({"k": part.k, "bottleneck": part.bottleneck, "valid": not problems,
                          "violations": problems, "stage_costs": b.total.tolist(),
                          "stage_work": b.work.tolist(), "stage_recv": b.recv.tolist(),
                          "stage_send": b.send.tolist(), "stage_mem": b.mem.tolist()}, indent=2))
    else:
        print(_stage_table(part))
        print(f"\nbottleneck: {_fmt(part.bottleneck)}   throughput: {_fmt(1 / part.bottleneck) if part.bottleneck > 0 else 'inf'}")
        print("valid" if not problems else "INVALID:\n  " + "\n  ".join(problems))
    return 0 if not problems else 1


def _print_result(res: SolveResult) -> None:
    if res.partition is not None:
        print(_stage_table(res.partition))
        print()
    print(f"status      : {res.status}")
    print(f"bottleneck  : {_fmt(res.upper_bound)}   (upper bound, from {res.method or '-'})")
    print(f"lower bound : {_fmt(res.lower_bound)}   (from {res.lower_bound_method or '-'})")
    print(f"gap         : {res.gap * 100:.3g}%   (UB/LB - 1, never below what is proven)"
          if math.isfinite(res.gap) else "gap         : -   (no positive lower bound)")
    print(f"time        : {res.wall_time:.3f} s")
    if res.timings:
        print("timings     : " + ", ".join(f"{k} {v:.3f} s" for k, v in res.timings.items()))
    if res.message:
        print(f"note        : {res.message}")


def _cmd_solve(args) -> int:
    graph = _load(args)
    k = _k(args, graph)
    bar = None if (args.json or args.quiet) else ProgressBar(f"solve k={k}")
    try:
        res = solve(graph, k, method=args.method, mem_cap=_mem_cap(args, graph),
                    time_limit=args.time_limit, seed=args.seed, progress=bar,
                    **_options(args.option))
    finally:
        if bar is not None:
            bar.close()
    if args.output and res.partition is not None:
        save_partition(res.partition, args.output)
    if args.json:
        print(json.dumps(res.to_dict(), indent=2))
    else:
        _print_result(res)
    return 0 if res.partition is not None else 2


def _options(pairs: Sequence[str]) -> dict:
    """Parse ``-O key=value`` method options; values are read as JSON when they parse."""
    out = {}
    for item in pairs or ():
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"-O expects key=value (e.g. -O max_ideals=100000), got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _cmd_models(args) -> int:
    for name in list_models():
        print(name + ("  (default)" if name == DEFAULT_MODEL else ""))
    return 0


def _cmd_mcm(args) -> int:
    """Place a graph on a multi-chip module (see pipecore.mcm.cli)."""
    from .mcm import cli as mcm_cli

    return mcm_cli.run(args, _load(args))


def _cmd_sweep(args) -> int:
    """Run (graph, k, method, seed) instances and append results (see pipecore.sweep)."""
    from .sweep import cli_run

    return cli_run(args)


def _cmd_report(args) -> int:
    """Tables, PNG plots and an HTML page from a sweep's results (see pipecore.report)."""
    from .report import make_report

    try:
        files = make_report(args.results, args.outdir or _report_dir(args.results),
                            graph=args.graph, k=args.k, instance=args.instance, title=args.title)
    except ImportError as exc:  # matplotlib (the 'report' extra) is missing
        raise errors.PipecoreError(str(exc)) from None
    print(files.table)
    print(f"\nwrote {files.html}" + "".join(f"\nwrote {p}" for p in files.pngs))
    return 0


def _report_dir(results: str) -> str:
    import os

    base = os.path.basename(os.path.normpath(results)).split(".")[0] or "results"
    return os.path.join(os.path.dirname(os.path.normpath(results)), f"{base}-report")


def _add_graph_args(p: argparse.ArgumentParser, optional: bool = True) -> None:
    p.add_argument("graph", nargs="?" if optional else None,
                   help="graph file (pipecore JSON or device-placement JSON); "
                        f"default: the embedded model {DEFAULT_MODEL!r}")
    p.add_argument("--model", help="use an embedded model instead of a file (see `pipecore models`)")
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")


def _add_cap_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mem-cap", type=float, help="per-stage memory cap (default: the file's)")
    p.add_argument("--no-mem-cap", action="store_true", help="ignore any memory cap in the file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipecore",
        description="Partition a DNN graph into pipeline stages and certify the result.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="summarise a graph")
    _add_graph_args(p)
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("evaluate", help="evaluate a partition of a graph")
    p.add_argument("graph", help="graph file")
    p.add_argument("partition", help="partition file (pipecore partition JSON)")
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")
    _add_cap_args(p)
    p.set_defaults(func=_cmd_evaluate, model=None)

    p = sub.add_parser("solve", help="find a k-stage partition and a lower bound")
    _add_graph_args(p)
    p.add_argument("-k", type=int, help="number of stages (default: the file's)")
    p.add_argument("--method", default="auto", choices=["auto", *METHODS],
                   help="algorithm (default: auto, the best available)")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="wall-clock limit; the best answer so far is returned")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("-o", "--output", help="write the partition to this JSON file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("-O", "--option", action="append", metavar="KEY=VALUE",
                   help="a method option, e.g. -O max_ideals=100000 -O population=64 (repeatable)")
    _add_cap_args(p)
    p.set_defaults(func=_cmd_solve)

    p = sub.add_parser("models", help="list the embedded models")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("sweep", help="run many (graph, k, method) instances, resumable")
    p.add_argument("graphs", nargs="+", metavar="GRAPH",
                   help="embedded model name, gen:GENERATOR:key=value,... or a graph file")
    p.add_argument("-k", type=int, nargs="+", required=True, help="stage counts")
    p.add_argument("--methods", nargs="+", default=["auto"], help="methods (default: auto)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default: 0)")
    p.add_argument("--time-limit", type=float, default=60.0, metavar="SECONDS",
                   help="per-instance wall-clock limit (default: 60)")
    p.add_argument("-o", "--output", default="results.jsonl",
                   help="results file: .jsonl (JSON lines) or .parquet (default: results.jsonl)")
    p.add_argument("--executor", choices=["local", "serial", "dask"], default="local",
                   help="local process pool (default), in-process, or a Dask cluster")
    p.add_argument("-j", "--jobs", type=int, help="local workers (default: all cores)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--retry-errors", action="store_true", help="rerun instances that failed")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-instance lines")
    _add_cap_args(p)
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("report", help="tables, plots and an HTML page from sweep results")
    p.add_argument("results", help="results file written by `pipecore sweep`")
    p.add_argument("-o", "--outdir", help="output directory (default: RESULTS-report/)")
    p.add_argument("--graph", help="graph of the per-stage plot (default: the first)")
    p.add_argument("-k", type=int, help="k of the per-stage plot (default: the largest)")
    p.add_argument("--instance", help="result key of the per-stage plot (overrides --graph/-k)")
    p.add_argument("--title", default="pipecore sweep report", help="page title")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("mcm", help="place a graph on a multi-chip module (chiplets)")
    _add_graph_args(p)
    from .mcm.cli import add_arguments as _mcm_arguments
    _mcm_arguments(p)
    p.set_defaults(func=_cmd_mcm)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (errors.PipecoreError, ValueError, FileNotFoundError) as exc:
        print(f"pipecore: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pipecore: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `pipecore solve --json | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
