"""``pipecore split``: partition a PyTorch model and write runnable pipeline stages.

``pipecore split package.module:factory -k 2 --out DIR`` builds the model from
the factory (``(module, args[, kwargs])``), exports it, costs it (roofline
device model, or ``--costs measured`` on this machine), solves, splits the
exported program, and writes to DIR: ``graph.json`` and ``partition.json``
(pipecore formats), ``stage{i}.pt`` (the pickled stage ``fx.GraphModule`` with
its weights) and ``stage{i}.py`` (its code, to read), ``inputs.pt`` and
``reference.pt`` (the example batch and the unsplit model's flat outputs), and
``run_pipeline.py``, which runs the pipeline with ``torchrun`` or launches k
local gloo processes itself. ``--run`` runs it right away and prints the
largest difference from the unsplit model.
"""
from __future__ import annotations

import argparse
import json
import os

from .. import errors

__all__ = ["register"]

_SCRIPT = '''#!/usr/bin/env python
"""Run the {k}-stage pipeline written by `pipecore split {factory}`.

    torchrun --nproc-per-node {k} run_pipeline.py   # one process per stage (gloo, CPU)
    python run_pipeline.py                          # launches {k} local processes itself

Each step feeds inputs.pt ({n_micro} micro-batch(es)) through the stages and, on the
last rank, compares the output with reference.pt (the unsplit model).
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
K, N_MICRO, SCHEDULE = {k}, {n_micro}, {schedule!r}


def load_plan():
    from pipecore.io.stages import StagePlan

    mods = [torch.load(os.path.join(HERE, f"stage{{s}}.pt"), weights_only=False)
            for s in range(K)]
    return StagePlan(mods, [], [], [])


def check(out):
    ref = torch.load(os.path.join(HERE, "reference.pt"), weights_only=False)
    err = max(float((a - b).abs().max()) for a, b in zip(out, ref))
    print(f"pipeline output vs unsplit model: max abs difference {{err:.3g}}")
    return err


def main():
    inputs = torch.load(os.path.join(HERE, "inputs.pt"), weights_only=False)
    if "RANK" not in os.environ:   # launch K local processes
        from pipecore.io.launch import launch_local

        out = launch_local(load_plan(), inputs, n_microbatches=N_MICRO, schedule=SCHEDULE)
        return 0 if check(out) <= 1e-5 else 1
    import torch.distributed as dist
    from pipecore.io.stages import run_pipeline

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    out = run_pipeline(load_plan(), rank, inputs if rank == 0 else (), N_MICRO,
                       schedule=SCHEDULE)
    ok = check(out) <= 1e-5 if rank == K - 1 else True
    dist.destroy_process_group()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
'''


def _flat_tensors(out) -> list:
    import torch
    from torch.utils._pytree import tree_leaves

    return [x for x in tree_leaves(out) if isinstance(x, torch.Tensor)]


def _cmd_split(args: argparse.Namespace) -> int:
    import torch

    from .. import solve
    from ..io import save_graph, save_partition
    from ..io.launch import export_factory, launch_local
    from ..io.stages import split_exported
    from ..io.torch import from_exported

    ep, model, ex_args, kwargs = export_factory(args.factory)
    if args.costs == "measured":
        from ..io.measure import measure_exported

        graph = measure_exported(ep, ex_args, kwargs, link=args.link or "gloo",
                                 clock=args.clock)
    else:
        graph = from_exported(ep, device=args.device)
    res = solve(graph, args.k, time_limit=args.time_limit, seed=args.seed)
    if res.partition is None:
        raise errors.SolverError(f"no {args.k}-stage partition found: {res.message}")
    plan = split_exported(ep, res)
    os.makedirs(args.out, exist_ok=True)
    save_graph(graph, os.path.join(args.out, "graph.json"))
    save_partition(res.partition, os.path.join(args.out, "partition.json"))
    batch = tuple(torch.cat([a] * args.microbatches) if isinstance(a, torch.Tensor) else a
                  for a in ex_args)
    with torch.no_grad():
        ref = _flat_tensors(model(*batch, **kwargs))
    torch.save(batch, os.path.join(args.out, "inputs.pt"))
    torch.save(ref, os.path.join(args.out, "reference.pt"))
    for s, mod in enumerate(plan.modules):
        torch.save(mod, os.path.join(args.out, f"stage{s}.pt"))
        with open(os.path.join(args.out, f"stage{s}.py"), "w") as fh:
            fh.write(f"# stage {s}: receives {plan.inputs[s]}\n# sends {plan.outputs[s]}\n"
                     f"# passes through {plan.passthrough[s]}\n{mod.code}")
    with open(os.path.join(args.out, "run_pipeline.py"), "w") as fh:
        fh.write(_SCRIPT.format(k=plan.k, factory=args.factory, n_micro=args.microbatches,
                                schedule=args.schedule))
    _report(args, graph, res, plan)
    if args.run:
        out = launch_local(plan, batch, n_microbatches=args.microbatches,
                           schedule=args.schedule)
        err = max(float((a - b).abs().max()) for a, b in zip(out, ref))
        print(f"ran {plan.k} gloo processes: max abs difference from the unsplit model "
              f"{err:.3g}")
        return 0 if err <= 1e-5 else 1
    return 0


def _report(args, graph, res, plan) -> None:
    info = {"factory": args.factory, "nodes": graph.n, "k": plan.k, "costs": args.costs,
            "bottleneck": res.upper_bound, "lower_bound": res.lower_bound,
            "quality": str(res.quality.value if hasattr(res.quality, "value") else res.quality),
            "stages": [{"nodes": len(plan.nodes[s]), "receives": len(plan.inputs[s]),
                        "sends": len(plan.outputs[s]),
                        "passes_through": len(plan.passthrough[s])} for s in range(plan.k)],
            "out": args.out}
    if args.json:
        print(json.dumps(info, indent=1))
        return
    print(f"{args.factory}: {graph.n} nodes, k={plan.k}, bottleneck {res.upper_bound:.6g} "
          f"(lower bound {res.lower_bound:.6g}, {info['quality']}), costs: {args.costs}")
    for s, st in enumerate(info["stages"]):
        print(f"  stage {s}: {st['nodes']:4d} ops, receives {st['receives']}, sends "
              f"{st['sends']}, passes through {st['passes_through']}")
    print(f"wrote {args.out}/: stage*.pt, stage*.py, run_pipeline.py "
          f"(run: python {args.out}/run_pipeline.py)")


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return v


def _link(text: str):
    if text == "gloo":
        return text
    try:
        lat, bw = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--link: 'gloo' or 'LATENCY_S,BYTES_PER_S', got {text!r}") from None
    return lat, bw


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("split", help="split a PyTorch model into runnable pipeline stages")
    p.add_argument("factory", help="'package.module:function' returning (module, args[, kwargs])"
                                   ", e.g. pipecore.examples:tiny_bert")
    p.add_argument("-k", type=_positive, required=True, help="number of stages (processes)")
    p.add_argument("--out", default="pipeline", help="output folder (default: ./pipeline)")
    p.add_argument("--costs", choices=("roofline", "measured"), default="roofline",
                   help="roofline device model, or per-node times measured on this machine")
    p.add_argument("--device", default="cpu", help="roofline device preset (default: cpu)")
    p.add_argument("--link", type=_link, default=None,
                   help="measured costs: 'gloo' (measure; default) or 'LATENCY_S,BYTES_PER_S'")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="measured costs: time ops on the wall clock (quiet machine) or the "
                        "thread's CPU clock (shared machine; leaves out preemption)")
    p.add_argument("--microbatches", type=_positive, default=2,
                   help="micro-batches per step (the example batch repeated; default 2)")
    p.add_argument("--schedule", choices=("gpipe", "1f1b"), default="gpipe")
    p.add_argument("--time-limit", type=float, default=10.0, help="solver seconds (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run", action="store_true", help="run the pipeline locally now and check it")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(func=_cmd_split)

