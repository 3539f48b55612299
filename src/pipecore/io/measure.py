"""Measured costs: time every node of an exported program on this machine.

:func:`profile` (or :func:`measure_exported` for an ``ExportedProgram``) runs the
program as one fx module on real tensors (CPU, ``threads`` intra-op threads) in
an ``fx.Interpreter`` that times each ATen call with ``perf_counter``: ``warmup``
untimed runs, then ``repeats`` timed runs of the whole program (so every op
sees the cache state it has in sequence), and the **median** per node. Each
round also times the compiled module; the part of its median wall time that no
op accounts for (Python dispatch, allocation) is spread evenly over the ops. Ops that
fold into a node (weight-only subgraphs) add their time to their first
consumer. ``work`` is then seconds / ``time_unit``.

Transfers: ``link`` is either ``(latency_s, bytes_per_s)`` or ``"gloo"``, which
measures a ping-pong between two local processes over the gloo backend
(:func:`measure_link`: ``latency + bytes / bandwidth`` through the median times of
the smallest and the largest of a few message sizes); ``comm[v] = latency + out_bytes[v] / bandwidth``.
``mem`` is the weights' bytes, as in the static importer. The roofline
:class:`~pipecore.io.device.DeviceModel` remains the default everywhere nothing
runs; this module is opt-in. Cost: ``warmup + repeats`` runs of the program.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Mapping, Sequence

import numpy as np

from ..graph import Graph

__all__ = ["profile", "measure_exported", "time_nodes", "measure_link", "ping_pong"]


def time_nodes(gm, args: Sequence, *, warmup: int = 3, repeats: int = 15) -> dict[str, float]:
    """Median seconds of every ``call_function``/``call_method`` node of ``gm``, each
    plus an equal share of the per-op dispatch overhead (see :func:`_overhead`)."""
    import torch

    samples: dict[str, list[float]] = {}
    walls: list[float] = []

    class _Timer(torch.fx.Interpreter):
        record = False

        def run_node(self, n):
            if n.op not in ("call_function", "call_method"):
                return super().run_node(n)
            t0 = time.perf_counter()
            out = super().run_node(n)
            if self.record:
                samples.setdefault(n.name, []).append(time.perf_counter() - t0)
            return out

    interp = _Timer(gm)
    with torch.no_grad():
        for i in range(warmup + repeats):
            interp.record = i >= warmup
            interp.run(*args)
            t0 = time.perf_counter()   # the compiled module, same round: its wall time
            gm(*args)
            if i >= warmup:
                walls.append(time.perf_counter() - t0)
    times = {name: statistics.median(ts) for name, ts in samples.items()}
    extra = _overhead(times, statistics.median(walls)) if walls else 0.0
    return {name: t + extra for name, t in times.items()}


def _overhead(times: Mapping[str, float], wall: float) -> float:
    """Per-op share of what the compiled module spends outside the ops themselves
    (Python dispatch, allocation): ``max(0, wall - sum(op medians)) / #ops``. Without
    it, a sum of op times under-predicts a stage of many small ops."""
    if not times:
        return 0.0
    return max(wall - sum(times.values()), 0.0) / len(times)


def measure_exported(ep, args: Sequence, kwargs: Mapping | None = None, *, warmup: int = 3,
                     repeats: int = 15, threads: int | None = 1,
                     link: "str | tuple[float, float] | None" = None,
                     time_unit: float = 1e-6, metadata: Mapping[str, Any] | None = None) -> Graph:
    """The graph of ``ep`` (same nodes as :func:`~pipecore.io.torch.from_exported`)
    with measured ``work`` (and ``comm`` from ``link``); see the module docstring."""
    import torch

    from .stages import split_exported
    from .torch import from_exported, static_placeholders, walk_graph

    base = from_exported(ep)
    table, _, index = walk_graph(ep.graph, static_placeholders(ep))
    gm = split_exported(ep, [0] * base.n).modules[0]
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        times = time_nodes(gm, _user_args(args, kwargs), warmup=warmup, repeats=repeats)
    finally:
        torch.set_num_threads(old)
    work = work_per_row(gm, times, index, base.n)
    latency, bandwidth = _link(link)
    out_bytes = np.asarray(table.out_bytes)
    comm = np.where(out_bytes > 0, latency + out_bytes / bandwidth, 0.0) if bandwidth else \
        np.zeros(base.n)
    meta = dict(base.metadata)
    meta.update({"costs": "measured", "time_unit": time_unit, "threads": threads,
                 "repeats": repeats, "warmup": warmup, "link_latency": latency,
                 "link_bandwidth": bandwidth, "measured_total_s": float(work.sum())})
    meta.pop("device", None)
    meta.update(metadata or {})
    return Graph(base.n, base.src, base.dst, work / time_unit, comm / time_unit, base.mem,
                 names=base.names, metadata=meta)


def work_per_row(gm, times: Mapping[str, float], index: Mapping[str, int], n: int) -> np.ndarray:
    """Seconds per imported node from per-fx-node times: a folded op (weight-only or
    input-free, e.g. a mask) is charged to the node its first consumer chain reaches;
    output copies are dropped. O(fx nodes + fx edges)."""
    work = np.zeros(n)
    target: dict[str, int] = {}
    for node in reversed(list(gm.graph.nodes)):   # users before producers
        row = index.get(node.name)
        if row is None:
            row = next((target[u.name] for u in node.users if u.name in target), None)
        if row is not None:
            target[node.name] = row
            work[row] += times.get(node.name, 0.0)
    return work


def _user_args(args, kwargs) -> tuple:
    """Positional tensors in the order of the exported user inputs (kwargs tensors last)."""
    import torch

    extra = [v for v in (kwargs or {}).values() if isinstance(v, torch.Tensor)]
    return tuple(args) + tuple(extra)


def _link(link) -> tuple[float, float]:
    if link is None:
        return 0.0, 0.0
    if isinstance(link, str):
        if link != "gloo":
            raise ValueError(f"link must be 'gloo' or (latency_s, bytes_per_s), got {link!r}")
        return measure_link()
    latency, bandwidth = (float(x) for x in link)
    if not (latency >= 0 and bandwidth > 0):
        raise ValueError("link: latency must be >= 0 and bandwidth > 0")
    return latency, bandwidth


def profile(module, args: Sequence = (), kwargs: Mapping | None = None, **options) -> Graph:
    """Export ``module(*args, **kwargs)`` (real tensors) and measure it
    (:func:`measure_exported` options). Returns the graph; ``graph.metadata``
    says ``costs: measured``."""
    import torch

    module = module.eval() if hasattr(module, "eval") else module
    ep = torch.export.export(module, tuple(args), dict(kwargs or {}), strict=False)
    return measure_exported(ep, args, kwargs, **options)


# ---------------------------------------------------------------------- link (gloo)
_SIZES = (1 << 10, 1 << 16, 1 << 20, 1 << 22, 1 << 24)


def measure_link(*, sizes: Sequence[int] = _SIZES, repeats: int = 20,
                 timeout: float = 120.0) -> tuple[float, float]:
    """``(latency_s, bytes_per_s)`` of gloo send/recv between two local processes:
    the median one-way time (half a ping-pong) per message size, and the line
    ``latency + bytes / bandwidth`` through the smallest and largest size."""
    data = ping_pong(sizes, repeats=repeats, timeout=timeout)
    return _fit_link(data[:, 0], data[:, 1])


def _fit_link(nbytes: np.ndarray, secs: np.ndarray) -> tuple[float, float]:
    """``latency + bytes / bandwidth`` through the smallest and the largest message
    (robust to a noisy middle); a non-increasing pair means a pure bandwidth bound."""
    lo, hi = int(np.argmin(nbytes)), int(np.argmax(nbytes))
    db, dt = float(nbytes[hi] - nbytes[lo]), float(secs[hi] - secs[lo])
    bandwidth = db / dt if dt > 0 and db > 0 else float(nbytes[hi]) / max(float(secs[hi]), 1e-12)
    return max(float(secs[lo]) - float(nbytes[lo]) / bandwidth, 0.0), bandwidth


def ping_pong(sizes: Sequence[int], *, repeats: int = 20, timeout: float = 120.0) -> np.ndarray:
    """Rows ``(bytes, median one-way seconds)`` of gloo messages of the given sizes
    (float32, rounded down to 4 bytes) between two local processes."""
    from .launch import _run_ranks, free_port

    sizes = [max(int(s), 4) for s in sizes]
    with tempfile.TemporaryDirectory(prefix="pipecore-link-") as d:
        cmd = [sys.executable, "-m", "pipecore.io.measure", str(free_port()), d,
               ",".join(map(str, sizes)), str(int(repeats))]
        _run_ranks([cmd + [str(r)] for r in range(2)], timeout)
        return np.loadtxt(os.path.join(d, "link.txt"), ndmin=2)


def _link_rank(port: int, folder: str, sizes: list[int], repeats: int, rank: int) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    rows = []
    try:
        for size in sizes:
            buf = torch.zeros(size // 4, dtype=torch.float32)
            ts = []
            for _ in range(repeats + 2):
                t0 = time.perf_counter()
                if rank == 0:
                    dist.send(buf, 1)
                    dist.recv(buf, 1)
                else:
                    dist.recv(buf, 0)
                    dist.send(buf, 0)
                ts.append((time.perf_counter() - t0) / 2)
            rows.append((buf.numel() * 4, statistics.median(ts[2:])))
        if rank == 0:
            np.savetxt(os.path.join(folder, "link.txt"), np.asarray(rows))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    _port, _folder, _sizes, _reps, _rank = sys.argv[1:6]
    _link_rank(int(_port), _folder, [int(s) for s in _sizes.split(",")], int(_reps), int(_rank))
