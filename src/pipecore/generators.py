"""Synthetic graph generators for tests, benchmarks and testbeds (seeded, vectorised)."""
from __future__ import annotations

import numpy as np

from .graph import Graph

__all__ = ["layered_dag", "dnn_like"]


def layered_dag(n: int, *, width: int | None = None, fan_in: float = 2.0, skip: float = 0.1,
                seed: int = 0) -> Graph:
    """A layered random DAG with realistic fan-in/out and lognormal costs.

    Nodes are split into layers of ``width`` (default ``~sqrt(n)``); each node of
    a later layer draws ``1 + Poisson(fan_in - 1)`` producers, from the previous
    layer with probability ``1 - skip`` and from an earlier layer otherwise (skip
    connections). Costs are lognormal (heavy-tailed like real operators); about
    ``fan_in * n`` edges. O(n + m) time and memory.
    """
    rng = np.random.default_rng(seed)
    width = int(width or max(1, round(np.sqrt(n))))
    layer = np.arange(n) // width
    later = np.flatnonzero(layer > 0)
    deg = 1 + rng.poisson(max(fan_in - 1.0, 0.0), size=later.size)
    dst = np.repeat(later, deg)
    dl = layer[dst]
    far = rng.random(dst.size) < skip
    src_layer = np.where(far, (rng.random(dst.size) * dl).astype(np.int64), dl - 1)
    lo = src_layer * width
    hi = np.minimum(lo + width, n)
    src = lo + (rng.random(dst.size) * (hi - lo)).astype(np.int64)
    work = rng.lognormal(0.0, 1.0, n)
    comm = rng.lognormal(-2.0, 1.0, n)
    mem = rng.lognormal(10.0, 1.5, n)
    return Graph(n, src, dst, work, comm, mem,
                 metadata={"generator": "layered_dag", "seed": seed, "fan_in": fan_in})


def dnn_like(n_blocks: int = 12, *, branches: int = 2, seed: int = 0) -> Graph:
    """A DNN-shaped DAG: a chain of blocks, each a residual block or a branchy block.

    Each block has an entry op, ``branches`` parallel chains of 2-4 ops (attention
    heads / inception towers) that merge, a residual edge from the entry to the
    merge, and a norm. Costs are skewed (a few heavy matmul-like ops per block).
    """
    rng = np.random.default_rng(seed)
    src: list[int] = []
    dst: list[int] = []
    work: list[float] = []
    comm: list[float] = []
    mem: list[float] = []
    names: list[str] = []

    def op(name: str, heavy: bool) -> int:
        names.append(name)
        scale = rng.lognormal(1.5, 0.5) if heavy else rng.lognormal(-1.0, 0.7)
        work.append(float(scale))
        comm.append(float(rng.lognormal(-1.5, 0.6)))
        mem.append(float(rng.lognormal(16.0, 1.0) if heavy else rng.lognormal(8.0, 1.0)))
        return len(names) - 1

    prev = op("input", False)
    for b in range(n_blocks):
        entry = op(f"block{b}.entry", False)
        src.append(prev), dst.append(entry)
        tails = []
        for h in range(branches):
            last = entry
            for j in range(int(rng.integers(2, 5))):
                v = op(f"block{b}.branch{h}.op{j}", j == 0)
                src.append(last), dst.append(v)
                last = v
            tails.append(last)
        merge = op(f"block{b}.merge", False)
        for t in tails:
            src.append(t), dst.append(merge)
        src.append(entry), dst.append(merge)  # residual
        norm = op(f"block{b}.norm", False)
        src.append(merge), dst.append(norm)
        prev = norm
    out = op("output", True)
    src.append(prev), dst.append(out)
    return Graph(len(names), src, dst, work, comm, mem, names=names,
                 metadata={"generator": "dnn_like", "seed": seed, "n_blocks": n_blocks})
