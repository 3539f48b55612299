"""Subcommands on one graph: ``info``, ``evaluate``, ``solve``, ``models``, ``export``."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

import numpy as np

from .. import errors
from .._runtime import ProgressBar
from .._validate import as_float, as_int
from ..graph import Graph
from ..io import load_graph, load_partition, save_graph, save_partition
from ..models import DEFAULT_MODEL, list_models, load_model
from ..options import parse_option
from ..partition import Partition
from ..problem import Schedule
from ..result import Quality, SolveResult

__all__ = ["register", "add_graph_args", "load_graph_arg"]

#: the time limit of ``pipecore solve`` when none is given (the API has none by default).
DEFAULT_TIME_LIMIT = 60.0

_PHASE_LABELS = {"bound:combinatorial": "combinatorial bound", "count_ideals": "counting ideals",
                 "ideals": "exact DP over ideals", "slicegraph": "SliceGraph search",
                 "refine": "annealing refine", "polish": "local-search polish",
                 "bound:components": "component bound", "bound:station": "station bound",
                 "bound:mip": "MIP bounds", "single_stage": "single stage"}


# ---------------------------------------------------------------------- graph arguments
def add_graph_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("graph", nargs="?",
                   help="graph file (pipecore JSON, device-placement JSON or .onnx) or an "
                        f"embedded model name; default: the embedded {DEFAULT_MODEL!r}")
    p.add_argument("--model", help="an embedded model (see `pipecore models`)")
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")


def load_graph_arg(args: argparse.Namespace) -> Graph:
    """The graph named by ``GRAPH`` or ``--model`` (not both), or the default model."""
    model, path = getattr(args, "model", None), getattr(args, "graph", None)
    if model and path:
        raise errors.InvalidOptionError(
            f"give either a graph file ({path!r}) or --model ({model!r}), not both")
    if model:
        return load_model(model)
    if path is None:
        return load_model(DEFAULT_MODEL)
    if not os.path.exists(path) and path in list_models():
        return load_model(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file, and not an embedded model "
                                f"({', '.join(list_models())})")
    return load_graph(path)


def _graph_label(graph: Graph, args: argparse.Namespace) -> str:
    name = getattr(args, "model", None) or getattr(args, "graph", None) or DEFAULT_MODEL
    return f"{name} ({graph.n:,} nodes, {graph.m:,} edges)"


def _k(args: argparse.Namespace, graph: Graph) -> int:
    if args.k is not None:
        return args.k
    if graph.metadata.get("k") is not None:
        return as_int(graph.metadata["k"], "the graph file's default k",
                      minimum=1, error=errors.FileFormatError)
    raise errors.InvalidStageCountError("no -k given and the graph file names no default k")


def _mem_cap(args: argparse.Namespace, graph: Graph) -> float | None:
    if args.no_mem_cap:
        return None
    if args.mem_cap is not None:
        return args.mem_cap
    cap = graph.metadata.get("mem_cap")
    if cap is None:
        return None
    return as_float(cap, "the graph file's mem_cap", minimum=0.0, error=errors.FileFormatError)


def _add_cap_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mem-cap", type=_nonneg_float, help="per-stage memory cap (default: the "
                                                         "file's)")
    p.add_argument("--no-mem-cap", action="store_true", help="ignore any memory cap in the file")
    p.add_argument("--schedule", choices=[s.value for s in Schedule], default="plain",
                   help="how the cap applies: plain, or 1f1b (a stage also holds the "
                        "activations of the micro-batches in flight there)")


def _positive_int(text: str) -> int:
    try:
        return as_int(int(text), "k", minimum=1, maximum=2**31 - 1,
                      error=argparse.ArgumentTypeError)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None


def _nonneg_float(text: str) -> float:
    try:
        return as_float(float(text), "value", minimum=0.0, error=argparse.ArgumentTypeError)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None


def _time_limit(text: str) -> float | None:
    if text.strip().lower() in ("none", "inf", "0"):
        return None
    try:
        return as_float(float(text), "--time-limit", minimum=0.0, strict_minimum=True,
                        error=argparse.ArgumentTypeError)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds > 0 or 'none', got {text!r}") \
            from None


# ---------------------------------------------------------------------- output
def _fmt(x: float) -> str:
    return f"{x:.6g}" if math.isfinite(x) else "-"


def _units(graph: Graph) -> tuple[str, str]:
    """(time unit, memory unit) labels from the graph's metadata ('' when unknown)."""
    tu = graph.metadata.get("time_unit")
    time_u = {1e-6: " µs", 1e-3: " ms", 1.0: " s"}.get(tu, "") if isinstance(tu, float) else ""
    mem_u = " B" if graph.metadata.get("mem_unit", "bytes" if time_u else "") == "bytes" else ""
    return time_u, mem_u


def _stage_table(part: Partition, schedule: str = "plain", max_rows: int = 200) -> str:
    """Per-stage table of the non-empty stages (so k = 10**9 prints as fast as k = 8)."""
    b = part.breakdown(schedule)
    rows = [("stage", "nodes", "work", "recv", "send", "total", "mem")]
    total = b.total
    for i in range(min(b.stages.size, max_rows)):
        rows.append((str(int(b.stages[i])), str(int(b.nodes[i])), _fmt(b.work[i]),
                     _fmt(b.recv[i]), _fmt(b.send[i]), _fmt(total[i]), _fmt(b.mem[i])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if b.stages.size > max_rows:
        lines.append(f"... {b.stages.size - max_rows} more non-empty stages")
    empty = part.k - b.stages.size
    if empty:
        lines.append(f"({empty:,} of {part.k:,} stages are empty)")
    return "\n".join(lines)


def _gap_line(res: SolveResult) -> str:
    if res.partition is None:
        return "-"
    if res.quality is Quality.OPTIMAL:
        return ("0 (proven optimal" + (f"; UB/LB - 1 = {res.gap:.1e} from rounding)"
                                       if res.gap > 0 else ")"))
    if not math.isfinite(res.gap):
        return "- (no positive lower bound)"
    return f"{res.gap * 100:.3g}%   (UB/LB - 1; never below what is proven)"


def _print_result(res: SolveResult, graph: Graph, label: str, k: int, cap: float | None,
                  schedule: str, time_limit: float | None) -> None:
    tu, mu = _units(graph)
    cap_s = "none" if cap is None else f"{cap:g}{mu}" + (f" ({schedule})" if schedule != "plain"
                                                         else "")
    print(f"graph       : {label}, k = {k:,}, mem_cap {cap_s}")
    if res.partition is not None:
        print(_stage_table(res.partition, schedule))
    print(f"quality     : {res.quality.value}   (termination: {res.termination.value})")
    print(f"bottleneck  : {_fmt(res.upper_bound)}{tu}   (upper bound, from "
          f"{res.upper_bound_source or '-'})")
    print(f"lower bound : {_fmt(res.lower_bound)}{tu}   (from {res.lower_bound_source or '-'})")
    print(f"gap         : {_gap_line(res)}")
    limit = f" of a {time_limit:g} s limit" if time_limit is not None else " (no time limit)"
    print(f"time        : {res.wall_time:.3f} s{limit}")
    steps = [f"{_PHASE_LABELS.get(p.name, p.name)} {p.seconds:.3f} s"
             + (f" ({p.termination.value})" if p.termination.value != "completed" else "")
             for p in res.phases]
    if steps:
        print("phases      : " + ", ".join(steps))
    if res.message:
        print(f"note        : {res.message}")


# ---------------------------------------------------------------------- commands
def _cmd_info(args: argparse.Namespace) -> int:
    graph = load_graph_arg(args)
    depth = graph.depth()
    con = graph.contract()
    info: dict[str, Any] = {
        "nodes": graph.n, "edges": graph.m, "classes": con.graph.n,
        "groups": 0 if graph.group is None else int(graph.group.max()) + 1,
        "training": graph.is_training,
        "backward_nodes": int(graph.backward.sum()) if graph.backward is not None else 0,
        "total_work": graph.total_work, "total_comm": float(graph.comm.sum()),
        "total_mem": float(graph.mem.sum()), "total_act_mem": float(graph.act_mem.sum()),
        "max_work": float(graph.work.max()), "depth": int(depth.max()) + 1,
        "sources": int((np.diff(graph.pred_ptr) == 0).sum()),
        "sinks": int((np.diff(graph.succ_ptr) == 0).sum()),
        "metadata": {k: v for k, v in graph.metadata.items()
                     if isinstance(v, (int, float, str, type(None)))},
    }
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


def _cmd_evaluate(args: argparse.Namespace) -> int:
    graph = load_graph_arg(args)
    part = load_partition(graph, args.partition)
    cap = _mem_cap(args, graph)
    problems = part.violations(cap, schedule=args.schedule)
    b = part.breakdown(args.schedule)
    if args.json:
        print(json.dumps({"k": part.k, "bottleneck": part.bottleneck, "valid": not problems,
                          "violations": problems, "stages": b.to_records()}, indent=2))
    else:
        tu, _ = _units(graph)
        print(_stage_table(part, args.schedule))
        thr = _fmt(1 / part.bottleneck) if part.bottleneck > 0 else "inf"
        print(f"\nbottleneck: {_fmt(part.bottleneck)}{tu}   throughput: {thr} per time unit")
        print("valid" if not problems else "INVALID:\n  " + "\n  ".join(problems))
    return 0 if not problems else 1


def _check_writable(path: str | None) -> None:
    """Fail before a long solve, not after it, if the output cannot be written."""
    if path is None:
        return
    if os.path.isdir(path):
        raise IsADirectoryError(f"-o {path}: is a directory; give a file name")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"-o {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise PermissionError(f"-o {path}: not writable")


def _cmd_solve(args: argparse.Namespace) -> int:
    from ..solver import method_options, solve

    graph = load_graph_arg(args)
    k = _k(args, graph)
    cap = _mem_cap(args, graph)
    specs = method_options(args.method)
    options = dict(parse_option(item, specs) for item in args.option or ())
    _check_writable(args.output)
    bar = None if (args.json or args.quiet) else ProgressBar(f"solve k={k}")
    try:
        res = solve(graph, k, method=args.method, mem_cap=cap, schedule=args.schedule,
                    time_limit=args.time_limit, seed=args.seed, progress=bar, **options)
    finally:
        if bar is not None:
            bar.close()
    if args.output and res.partition is not None:
        save_partition(res.partition, args.output)
    if args.json:
        out = res.to_dict()
        out.update(graph=_graph_label(graph, args), mem_cap=cap, schedule=args.schedule,
                   time_limit=args.time_limit, time_unit=graph.metadata.get("time_unit"))
        print(json.dumps(out, indent=2))
    else:
        _print_result(res, graph, _graph_label(graph, args), k, cap, args.schedule,
                      args.time_limit)
    return 0 if res.partition is not None else 2


def _cmd_models(args: argparse.Namespace) -> int:
    for name in list_models():
        print(name + ("  (default)" if name == DEFAULT_MODEL else ""))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    graph = load_graph_arg(args)
    _check_writable(args.output)
    save_graph(graph, args.output)
    print(f"wrote {args.output} ({graph.n:,} nodes, {graph.m:,} edges)", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------- registration
def register(sub: argparse._SubParsersAction) -> None:
    from ..solver import METHODS

    p = sub.add_parser("info", help="summarise a graph")
    add_graph_args(p)
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("evaluate", help="evaluate a partition of a graph")
    p.add_argument("graph", help="graph file or embedded model name")
    p.add_argument("partition", help="partition file (pipecore partition JSON)")
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")
    _add_cap_args(p)
    p.set_defaults(func=_cmd_evaluate, model=None)

    p = sub.add_parser("solve", help="find a k-stage partition and a lower bound")
    add_graph_args(p)
    p.add_argument("-k", type=_positive_int, help="number of stages (default: the file's)")
    p.add_argument("--method", default="auto", choices=["auto", *METHODS],
                   help="algorithm (default: auto, the best available)")
    p.add_argument("--time-limit", type=_time_limit, default=DEFAULT_TIME_LIMIT,
                   metavar="SECONDS", help=f"wall-clock limit for the whole solve, certificate "
                   f"included (default: {DEFAULT_TIME_LIMIT:g}; 'none' for no limit); the best "
                   f"answer so far is returned")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("-o", "--output", help="write the partition to this JSON file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("-O", "--option", action="append", metavar="KEY=VALUE",
                   help="a method option, e.g. -O max_ideals=100000 -O population=64 "
                        "(repeatable; see pipecore.options_help(method))")
    _add_cap_args(p)
    p.set_defaults(func=_cmd_solve)

    p = sub.add_parser("models", help="list the embedded models")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("export", help="write a graph (e.g. an embedded model) as pipecore JSON")
    add_graph_args(p)
    p.add_argument("-o", "--output", required=True, help="output file (.json or .json.gz)")
    p.set_defaults(func=_cmd_export)
