"""Run a split model as a real pipeline in local processes (gloo on CPU).

A model is named by a factory ``"package.module:function"`` that returns
``(module, args)`` or ``(module, args, kwargs)`` and must be deterministic
(seeded weights). :func:`launch_local` pickles each stage ``GraphModule`` (ATen
code + its weights) to a temporary folder, so a rank imports only torch, and starts one process per stage (``python -m pipecore.io.launch``,
``MASTER_ADDR=127.0.0.1``, a free port), runs one step of the schedule and
returns the last stage's merged output.
"""
from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Sequence

__all__ = ["load_factory", "export_factory", "launch_local", "free_port"]


def load_factory(spec: str) -> tuple[Any, tuple, dict]:
    """Call the factory ``"module:function"``; returns ``(module, args, kwargs)``."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"expected a factory 'package.module:function', got {spec!r}")
    mod_name, fn_name = spec.split(":", 1)
    if os.getcwd() not in sys.path:   # console scripts do not search the working directory
        sys.path.append(os.getcwd())
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load factory {spec!r}: {exc}") from None
    out = fn()
    if not isinstance(out, tuple) or len(out) not in (2, 3):
        raise ValueError(f"factory {spec!r} must return (module, args) or (module, args, kwargs)")
    model, args = out[0], tuple(out[1])
    kwargs = dict(out[2]) if len(out) == 3 else {}
    return model, args, kwargs


def export_factory(spec: str):
    """Build the factory's model and export it; returns ``(ep, model, args, kwargs)``."""
    import torch

    model, args, kwargs = load_factory(spec)
    model = model.eval()
    ep = torch.export.export(model, args, kwargs, strict=False)
    return ep, model, args, kwargs


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank_main(rank: int, world: int, port: int, n_micro: int, schedule: str, io_dir: str,
               threads: int, steps: int = 1) -> None:
    """One pipeline rank: init gloo, load its stage module, run one step."""
    import torch
    import torch.distributed as dist

    from .stages import StagePlan, run_pipeline

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        mods = [torch.load(os.path.join(io_dir, f"stage{s}.pt"), weights_only=False)
                if s == rank else None for s in range(world)]
        plan = StagePlan(mods, [], [], [])
        inputs = torch.load(os.path.join(io_dir, "inputs.pt")) if rank == 0 else ()
        out = run_pipeline(plan, rank, inputs, n_micro, schedule=schedule)  # (warm-up)
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(steps - 1):   # timed steps after the first
            run_pipeline(plan, rank, inputs, n_micro, schedule=schedule)
        dist.barrier()
        elapsed = time.perf_counter() - t0
        if rank == world - 1:
            torch.save(out, os.path.join(io_dir, "outputs.pt"))
            with open(os.path.join(io_dir, "elapsed.txt"), "w") as fh:
                fh.write(f"{elapsed} {steps - 1}\n")
    finally:
        dist.destroy_process_group()


def launch_local(plan, inputs: Sequence, *, n_microbatches: int = 1, schedule: str = "gpipe",
                 threads: int = 1, timeout: float = 300.0, steps: int = 1,
                 timings: dict | None = None):
    """Run one pipelined step of a :class:`~pipecore.io.stages.StagePlan` in k local
    processes (gloo, CPU); returns the merged output of the last stage.

    ``inputs`` is the full batch: ``n_microbatches`` chunks along dim 0, each of
    the batch size the factory exported with. Each rank is a fresh interpreter
    (``python -m pipecore.io.launch``), so this works from any script or REPL;
    ranks still running after ``timeout`` seconds are killed. With ``steps > 1``
    the first step warms up and the others are timed: ``timings["seconds_per_step"]``
    (between two barriers, on the last rank) is filled in.
    """
    import torch

    k = plan.k
    with tempfile.TemporaryDirectory(prefix="pipecore-run-") as io_dir:
        torch.save(tuple(inputs), os.path.join(io_dir, "inputs.pt"))
        for s, mod in enumerate(plan.modules):
            torch.save(mod, os.path.join(io_dir, f"stage{s}.pt"))
        cmd = [sys.executable, "-m", "pipecore.io.launch", "--world", str(k), "--port",
               str(free_port()), "--microbatches", str(int(n_microbatches)), "--schedule", schedule,
               "--io-dir", io_dir, "--threads", str(int(threads)), "--steps", str(int(steps))]
        _run_ranks([cmd + ["--rank", str(r)] for r in range(k)], timeout)
        if timings is not None and steps > 1:
            with open(os.path.join(io_dir, "elapsed.txt")) as fh:
                elapsed, n = fh.read().split()
            timings["seconds_per_step"] = float(elapsed) / int(n)
        return torch.load(os.path.join(io_dir, "outputs.pt"), weights_only=False)


def _run_ranks(cmds: list, timeout: float) -> None:
    """Start every rank, wait for all; on a failure or timeout kill the rest and raise."""
    import time

    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for c in cmds]
    deadline = time.monotonic() + timeout
    try:
        for r, p in enumerate(procs):
            out, _ = p.communicate(timeout=max(deadline - time.monotonic(), 0.1))
            if p.returncode != 0:
                raise RuntimeError(f"pipeline rank {r} failed (exit {p.returncode}):\n"
                                   f"{out[-4000:]}")
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"pipeline ranks did not finish within {timeout} s") from None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def main(argv=None) -> int:
    """Entry point of one rank (used by :func:`launch_local`)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m pipecore.io.launch")
    ap.add_argument("--rank", type=int, required=True)
    ap.add_argument("--world", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--microbatches", type=int, default=1)
    ap.add_argument("--schedule", default="gpipe")
    ap.add_argument("--io-dir", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=1)
    a = ap.parse_args(argv)
    _rank_main(a.rank, a.world, a.port, a.microbatches, a.schedule, a.io_dir, a.threads, a.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
