"""Measured costs: time every node of an exported program on this machine.

:func:`profile` (or :func:`measure_exported` for an ``ExportedProgram``) runs the
program as one fx module on real tensors (CPU, ``threads`` intra-op threads):
``warmup`` untimed calls, then ``repeats`` timed calls of the whole program, and
the **median** per node. Corrections, each measured here, none fitted to a result:

* ops are timed **in their natural sequence inside the compiled module**
  (:class:`NodeTimer`: a clock stamp before every op in the generated code), not in
  an ``fx.Interpreter``, whose ~10 us per-node dispatch inside each timed window
  made the node sum over-predict stages of many small ops by ~10%;
* the cost of one stamp (:func:`stamp_cost`, ~0.1 us wall / ~0.4 us CPU clock) is
  measured and subtracted from every op interval;
* ``clock="cpu"`` times with the thread's CPU clock: on a shared machine a long
  stage is preempted in most runs while a short op rarely is, so wall-clock medians
  of ops sum to less than the median of a stage; CPU time is what the stage costs
  on a core of its own (use ``"wall"``, the default, on a quiet machine).

Ops that fold into a node (weight-only subgraphs) add their time to their first
consumer (:func:`work_per_row`). ``work`` is then seconds / ``time_unit``.

Transfers: ``link`` is either ``(latency_s, bytes_per_s)`` or ``"gloo"``, which
measures a ping-pong between two local processes over the gloo backend
(:func:`measure_link`: sizes interleaved round by round, mean one-way time per
size, ``latency + bytes / bandwidth`` fitted by least absolute relative error,
:func:`fit_link`); ``comm[v] = latency + out_bytes[v] / bandwidth`` (:func:`link_comm`:
each crossing tensor is its own message and pays the latency once).
``mem`` is the weights' bytes, as in the static importer. The roofline
:class:`~pipecore.io.device.DeviceModel` remains the default everywhere nothing
runs; this module is opt-in. Cost: ``warmup + repeats`` runs of the program.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from typing import Any, Mapping, Sequence

import numpy as np

from ..graph import Graph

__all__ = ["profile", "measure_exported", "time_nodes", "NodeTimer", "stamp_cost",
           "measure_link", "fit_link", "ping_pong", "link_comm", "work_per_row",
           "plan_stage_times"]


_CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


def _clock(clock):
    """The clock function: ``"wall"``, ``"cpu"`` or any callable returning seconds."""
    if callable(clock):
        return clock
    if clock not in _CLOCKS:
        raise ValueError(f"clock must be one of {sorted(_CLOCKS)}, got {clock!r}")
    return _CLOCKS[clock]


def _instrument(gm, tick):
    """Copy of ``gm`` whose generated code calls ``tick()`` right before every op
    and before the output: the ops run in their natural order in compiled code
    (no fx.Interpreter in between). Returns (module, op names in order)."""
    import torch

    graph, env, names = torch.fx.Graph(), {}, []
    for node in gm.graph.nodes:
        if node.op in ("call_function", "call_method", "output"):
            graph.call_function(tick)
            if node.op != "output":
                names.append(node.name)
        env[node] = graph.node_copy(node, lambda n: env[n])
    return torch.fx.GraphModule(gm, graph), names


def stamp_cost(clock: str = "wall", *, stamps: int = 200, repeats: int = 25) -> float:
    """Seconds one ``tick()`` adds to the interval it ends: the median spacing of
    ``stamps`` consecutive ticks with nothing in between, in generated fx code like
    the instrumented module's. Subtracted from every op interval."""
    import torch

    buf: list = []
    now = _clock(clock)

    def tick():
        buf.append(now())

    graph = torch.fx.Graph()
    for _ in range(stamps):
        graph.call_function(tick)
    graph.output(None)
    gm = torch.fx.GraphModule(torch.nn.Module(), graph)
    spacing = []
    for _ in range(repeats):
        buf.clear()
        gm()
        spacing.append(float(np.median(np.diff(buf))))
    return statistics.median(spacing)


class NodeTimer:
    """Times every op of a GraphModule in its natural sequence, in compiled code.

    Why not an ``fx.Interpreter``: its per-node dispatch (argument lookup,
    ``run_node``) sits inside each timed window and adds ~10 us per op, which made
    the per-node sum over-predict a module of many small ops by ~10%. Here the
    module's generated code calls a stamp (one clock read + list append) before each
    op; an op's time is the gap to the next stamp minus :func:`stamp_cost`, measured
    on this machine. ``clock="cpu"`` reads the thread's CPU time
    (``CLOCK_THREAD_CPUTIME_ID``) instead of wall time: with 1 intra-op thread every
    op runs on the calling thread, so it leaves out time the process spends
    preempted on a loaded machine. :meth:`run` is one call; :attr:`last_call` its
    total on the same clock (the module call included).
    """

    def __init__(self, gm, clock: str = "wall"):
        self.now = _clock(clock)
        self.buf: list = []
        buf, now = self.buf, self.now

        def tick():
            buf.append(now())

        self.module, self.names = _instrument(gm, tick)
        self.cost = stamp_cost(clock)
        self.last_call = 0.0

    def run(self, args: Sequence) -> np.ndarray:
        """Seconds of every op (order of :attr:`names`) in one call on ``args``."""
        self.buf.clear()
        t0 = self.now()
        self.module(*args)
        self.last_call = self.now() - t0
        return np.maximum(np.diff(self.buf) - self.cost, 0.0)


def time_nodes(gm, args: Sequence, *, warmup: int = 3, repeats: int = 15,
               clock: str = "wall") -> dict[str, float]:
    """Median seconds of every ``call_function``/``call_method`` node of ``gm`` over
    ``repeats`` calls after ``warmup`` untimed ones (:class:`NodeTimer`)."""
    import torch

    timer = NodeTimer(gm, clock)
    with torch.no_grad():
        for _ in range(warmup):
            timer.run(args)
        runs = np.array([timer.run(args) for _ in range(repeats)])
    return dict(zip(timer.names, np.median(runs, axis=0).tolist()))


def measure_exported(ep, args: Sequence, kwargs: Mapping | None = None, *, warmup: int = 3,
                     repeats: int = 15, threads: int | None = 1,
                     link: "str | tuple[float, float] | None" = None,
                     time_unit: float = 1e-6, clock: str = "wall",
                     metadata: Mapping[str, Any] | None = None) -> Graph:
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
        times = time_nodes(gm, _user_args(args, kwargs), warmup=warmup, repeats=repeats,
                           clock=clock)
    finally:
        torch.set_num_threads(old)
    work = work_per_row(gm, times, index, base.n)
    latency, bandwidth = _link(link)
    comm = link_comm(table.out_bytes, latency, bandwidth)
    meta = dict(base.metadata)
    meta["folded"] = folded_costs(gm, times, index)
    meta.update({"costs": "measured", "time_unit": time_unit, "threads": threads,
                 "repeats": repeats, "warmup": warmup, "clock": clock, "link_latency": latency,
                 "link_bandwidth": bandwidth, "measured_total_s": float(work.sum())})
    meta.pop("device", None)
    meta.update(metadata or {})
    return Graph(base.n, base.src, base.dst, work / time_unit, comm / time_unit, base.mem,
                 names=base.names, metadata=meta)


def link_comm(out_bytes, latency: float, bandwidth: float) -> np.ndarray:
    """Seconds to ship each node's output as **one message**: ``latency + bytes /
    bandwidth`` (0 for nodes with no tensor output, all 0 without a link). The
    stages send every crossing tensor separately, so each pays the latency."""
    out_bytes = np.asarray(out_bytes, dtype=np.float64)
    if not bandwidth:
        return np.zeros(out_bytes.size)
    return np.where(out_bytes > 0, latency + out_bytes / bandwidth, 0.0)


def plan_stage_times(plan, graph: Graph, stage, *, link: "tuple[float, float] | None" = None
                     ) -> np.ndarray:
    """Predicted seconds per stage of the modules that really run (a
    :class:`~pipecore.io.stages.StagePlan` split by the partition ``stage``): the
    measured ``work`` of the stage's nodes plus one link message, ``latency +
    bytes / bandwidth``, per tensor the stage module receives (s > 0) and sends
    (s < k - 1), with the tensor's own bytes. Unlike the cost model's ``f(S)`` this
    charges the **pass-through** tensors a stage only forwards (a skip connection
    crossing several boundaries is sent at every one of them by the pipeline
    runtime), prices a multi-output producer per tensor it sends, and charges the
    folded ops (masks) that every reading stage recomputes (``metadata["folded"]``,
    measured with the nodes; GPT-2 at k=4: ~36 mask ops per stage). ``link``
    defaults to the one measured into ``graph.metadata``. O(n + crossing tensors)."""
    meta = graph.metadata
    latency, bandwidth = link if link is not None else (meta.get("link_latency", 0.0),
                                                      meta.get("link_bandwidth", 0.0))
    unit = float(meta.get("time_unit", 1e-6))
    vec = np.asarray(getattr(stage, "stage", stage))
    k = plan.k
    work = np.bincount(vec, weights=graph.work, minlength=k)[:k] * unit
    cross = np.zeros(max(k - 1, 0))      # seconds to ship boundary b (stage b -> b + 1)
    for b in range(k - 1):
        nbytes = [_val_bytes(n.meta.get("val")) for n in plan.modules[b + 1].graph.nodes
                  if n.op == "placeholder"]
        cross[b] = float(link_comm(nbytes, latency, bandwidth).sum())
    recv = np.concatenate([[0.0], cross])
    send = np.concatenate([cross, [0.0]])
    return work + recv + send + _folded_copies(plan, meta.get("folded", {}), vec)


def _folded_copies(plan, folded: Mapping, vec: np.ndarray) -> np.ndarray:
    """Seconds of the folded ops each stage module recomputes beyond the one copy
    charged to a row of that stage. O(stage nodes)."""
    extra = np.zeros(plan.k)
    for s, mod in enumerate(plan.modules):
        for node in mod.graph.nodes:
            hit = folded.get(node.name) if node.op == "call_function" else None
            if hit is not None and int(vec[hit[1]]) != s:
                extra[s] += hit[0]
    return extra


def _val_bytes(val) -> float:
    """Bytes of a tensor (0 for anything else, e.g. a SymInt)."""
    numel = getattr(val, "numel", None)
    return float(numel() * val.element_size()) if callable(numel) and \
        hasattr(val, "element_size") else 0.0


def _charged_rows(gm, index: Mapping[str, int]) -> dict[str, int]:
    """Row each fx node's time is charged to: its own, or for a folded op (not in
    ``index``) the row its first consumer chain reaches. O(fx nodes + fx edges)."""
    target: dict[str, int] = {}
    for node in reversed(list(gm.graph.nodes)):   # users before producers
        row = index.get(node.name)
        if row is None:
            row = next((target[u.name] for u in node.users if u.name in target), None)
        if row is not None:
            target[node.name] = row
    return target


def work_per_row(gm, times: Mapping[str, float], index: Mapping[str, int], n: int) -> np.ndarray:
    """Seconds per imported node from per-fx-node times: a folded op (weight-only or
    input-free, e.g. a mask) is charged to the node its first consumer chain reaches;
    output copies are dropped. O(fx nodes + fx edges)."""
    work = np.zeros(n)
    for name, row in _charged_rows(gm, index).items():
        work[row] += times.get(name, 0.0)
    return work


def folded_costs(gm, times: Mapping[str, float], index: Mapping[str, int]) -> dict:
    """``{fx name: [seconds, row charged]}`` of the folded ops (weight-only or
    input-free, e.g. an attention mask built from ``arange``). Every stage that reads
    a folded value recomputes it, but :func:`work_per_row` charges it once, to one
    row; kept in ``graph.metadata["folded"]`` so :func:`plan_stage_times` charges
    the copies. O(fx nodes + fx edges)."""
    rows = _charged_rows(gm, index)
    return {name: [float(t), int(rows[name])] for name, t in times.items()
            if name not in index and name in rows}


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
# a log-spaced grid, 4 B .. 16 MiB: on a shared machine one size's time moves by
# +-30% between sessions, so the line is fitted through 8 sizes, not 2
_SIZES = (4, 1 << 10, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24)


def measure_link(*, sizes: Sequence[int] = _SIZES, repeats: int = 20,
                 timeout: float = 120.0) -> tuple[float, float]:
    """``(latency_s, bytes_per_s)`` of gloo send/recv between two local processes:
    the mean one-way time (half a ping-pong) per message size (:func:`ping_pong`),
    and the line ``latency + bytes / bandwidth`` fitted to them (:func:`fit_link`)."""
    data = ping_pong(sizes, repeats=repeats, timeout=timeout)
    return fit_link(data[:, 0], data[:, 1])


def fit_link(nbytes, secs) -> tuple[float, float]:
    """``(latency, bandwidth)`` of the line ``latency + bytes / bandwidth`` with the
    least sum of **absolute relative** errors over all sizes, relative to the line
    (``|1 - secs / line|``, so a fast outlier costs at most 1). Relative, because the
    stage-time error is relative (an unweighted fit lets the largest message set
    the latency); absolute (L1), because on a shared machine gloo times are bimodal
    (~0.1 ms when the peer is awake, ~2 ms when it must be woken) and a least-squares
    line lands between the modes, on no real message. The L1 optimum passes through
    two samples (or one, with latency 0), so every such line with latency >= 0 and
    bandwidth > 0 is tried: O(#sizes^3), #sizes ~ 10. (The old fit went through the
    smallest and largest medians only, so one noisy point moved the latency 10x.)"""
    x, y = np.asarray(nbytes, dtype=np.float64), np.asarray(secs, dtype=np.float64)
    if x.size == 0 or x.shape != y.shape or (y <= 0).any() or (x < 0).any():
        raise ValueError("fit_link needs matching, positive (bytes, seconds) samples")
    lines = [(0.0, yi / xi) for xi, yi in zip(x, y) if xi > 0]
    for i in range(x.size):
        for j in range(x.size):
            if x[j] > x[i] and y[j] > y[i]:
                slope = (y[j] - y[i]) / (x[j] - x[i])
                if y[i] - slope * x[i] >= 0:
                    lines.append((float(y[i] - slope * x[i]), float(slope)))
    if not lines:    # only zero-byte samples: latency only, no bandwidth information
        return float(np.median(y)), float("inf")
    lat, slope = min(lines, key=lambda ab: float(np.sum(np.abs(1 - y / (ab[0] + ab[1] * x)))))
    return lat, 1.0 / slope


def ping_pong(sizes: Sequence[int], *, repeats: int = 20, timeout: float = 120.0) -> np.ndarray:
    """Rows ``(bytes, mean one-way seconds)`` of gloo messages of the given sizes
    (float32, rounded down to 4 bytes) between two local processes. The sizes are
    **interleaved** (each round sends every size once, in a fresh random order that
    both ranks derive from the round number), so all of them see the same machine
    load and no size gains from always following the same one (the order
    changes whether the peer is still awake); 2 untimed warm-up rounds first. The **mean**, not the median, per size: on a
    shared machine a message costs ~0.1 ms when the peer gets a core at once and
    ~2 ms when it must wait for one, and when both happen about half the time the
    median of each size jumps between the two modes independently (256 KiB and
    256 KiB + 4 B measured 0.2 ms and 1.9 ms in one session), while the mean, the
    expected cost a pipeline pays per message, moves smoothly with the mix."""
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
    bufs = [torch.zeros(size // 4, dtype=torch.float32) for size in sizes]
    ts: list[list[float]] = [[] for _ in sizes]
    try:
        for r in range(repeats + 2):
            for i in np.random.default_rng(r).permutation(len(bufs)):   # same on both ranks
                buf = bufs[i]
                t0 = time.perf_counter()
                if rank == 0:
                    dist.send(buf, 1)
                    dist.recv(buf, 1)
                else:
                    dist.recv(buf, 0)
                    dist.send(buf, 0)
                if r >= 2:
                    ts[i].append((time.perf_counter() - t0) / 2)
        if rank == 0:
            rows = [(b.numel() * 4, statistics.fmean(t)) for b, t in zip(bufs, ts)]
            np.savetxt(os.path.join(folder, "link.txt"), np.asarray(rows))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    _port, _folder, _sizes, _reps, _rank = sys.argv[1:6]
    _link_rank(int(_port), _folder, [int(s) for s in _sizes.split(",")], int(_reps), int(_rank))
