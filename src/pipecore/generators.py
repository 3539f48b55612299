"""Synthetic graph generators for tests, benchmarks and testbeds (seeded, vectorised)."""
from __future__ import annotations

import numpy as np

from .graph import Graph

__all__ = ["layered_dag", "dnn_like", "regal_like", "REGAL_MIX"]


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

    def edge(u: int, v: int) -> None:
        src.append(u)
        dst.append(v)

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
        edge(prev, entry)
        tails = []
        for h in range(branches):
            last = entry
            for j in range(int(rng.integers(2, 5))):
                v = op(f"block{b}.branch{h}.op{j}", j == 0)
                edge(last, v)
                last = v
            tails.append(last)
        merge = op(f"block{b}.merge", False)
        for t in tails:
            edge(t, merge)
        edge(entry, merge)  # residual
        norm = op(f"block{b}.norm", False)
        edge(merge, norm)
        prev = norm
    out = op("output", True)
    edge(prev, out)
    return Graph(len(names), src, dst, work, comm, mem, names=names,
                 metadata={"generator": "dnn_like", "seed": seed, "n_blocks": n_blocks})


# ---------------------------------------------------------------------- REGAL-style testbeds
# Block templates: (op kinds, edges within the block). Node 0 is the entry (fed by
# the previous block's exit), the last node is the exit. Kinds: "H" heavy
# (conv / matmul: most FLOPs and all weights), "L" light (norm, activation, add),
# "D" data movement (concat, reshape: no work, only traffic).
_TEMPLATES: dict[str, tuple[str, list[tuple[int, int]]]] = {
    # conv -> norm -> act
    "chain": ("HLL", [(0, 1), (1, 2)]),
    # ResNet basic block: entry, conv-norm-act-conv-norm, add(skip), act
    "residual": ("LHLLHLLL", [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (0, 6), (6, 7)]),
    # ResNet bottleneck with projection shortcut
    "bottleneck": ("LHLLHLLHLHLLL", [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7),
                                     (7, 8), (0, 9), (9, 10), (8, 11), (10, 11), (11, 12)]),
    # Inception: 1x1 | 1x1->3x3 | 1x1->5x5 | pool->1x1, then concat
    "inception": ("LHHHHHLHD", [(0, 1), (0, 2), (2, 3), (0, 4), (4, 5), (0, 6), (6, 7),
                                (1, 8), (3, 8), (5, 8), (7, 8)]),
    # two-tower branchy block
    "branch2": ("LHLHLD", [(0, 1), (1, 2), (0, 3), (3, 4), (2, 5), (4, 5)]),
    # transformer layer: q,k,v | scores | softmax | context | proj | add | norm | ffn | add | norm
    "attention": ("LHHHHLHHLLHLHLL", [(0, 1), (0, 2), (0, 3), (1, 4), (2, 4), (4, 5), (5, 6),
                                      (3, 6), (6, 7), (7, 8), (0, 8), (8, 9), (9, 10), (10, 11),
                                      (11, 12), (12, 13), (9, 13), (13, 14)]),
}

#: default block mix of :func:`regal_like` (probabilities, normalised).
REGAL_MIX = {"chain": 0.15, "residual": 0.25, "bottleneck": 0.15, "inception": 0.1,
             "branch2": 0.1, "attention": 0.25}


def _draw_blocks(rng: np.random.Generator, p: np.ndarray, sizes_t: np.ndarray,
                 body: int) -> tuple[np.ndarray, int]:
    """Template indices of blocks drawn with probabilities ``p`` until ``body`` nodes are
    (almost) full, and the nodes they use (< the smallest template short of ``body``)."""
    draw = rng.choice(p.size, size=max(1, body // int(sizes_t.min()) + 1), p=p)
    csum = np.cumsum(sizes_t[draw])
    nb = int(np.searchsorted(csum, body, side="right"))  # whole blocks that fit
    blocks = list(draw[:nb])
    used = int(csum[nb - 1]) if nb else 0
    while True:  # top up with blocks that still fit (< 15 nodes left: a few steps)
        fits = np.flatnonzero((sizes_t <= body - used) & (p > 0))
        if fits.size == 0:
            break
        t = int(rng.choice(fits, p=p[fits] / p[fits].sum()))
        blocks.append(t)
        used += int(sizes_t[t])
    return np.asarray(blocks, dtype=np.int64), used


def _op_names(kinds_: list[str], kind: np.ndarray, block_of: np.ndarray,
              block_arr: np.ndarray, start: np.ndarray) -> list[str]:
    """Readable node names ``b{block}.{template}.{op|ew|mv}{offset}``."""
    n = kind.size
    block_names = np.array(kinds_ + ["fill"])
    bk = np.where(block_of >= 0, block_arr[np.maximum(block_of, 0)] if block_arr.size else 0,
                  len(kinds_))
    label = [f"n{i}" for i in range(n)]
    label[0], label[-1] = "input", "output"
    op_name = {b"H": "op", b"L": "ew", b"D": "mv"}
    for i in range(1, n - 1):
        b = int(block_of[i])
        label[i] = (f"b{b}.{block_names[bk[i]]}.{op_name[kind[i]]}{i - int(start[b])}"
                    if b >= 0 else f"tail.ew{i}")
    return label


def _block_edges(rng: np.random.Generator, kinds_: list[str], block_arr: np.ndarray,
                 start: np.ndarray, exit_: np.ndarray, used: int, n: int,
                 long_skip: float) -> np.ndarray:
    """(m, 2) edges: template edges shifted by block start, block-to-block links, long
    skips, and the fill chain to the output node. Vectorised over blocks."""
    nb = block_arr.size
    e_parts = []
    for t, k in enumerate(kinds_):
        sel = np.flatnonzero(block_arr == t)
        if sel.size:
            te = np.array(_TEMPLATES[k][1], dtype=np.int64)
            e_parts.append((te[None, :, :] + start[sel, None, None]).reshape(-1, 2))
    if nb:
        prev_exit = np.concatenate([[0], exit_[:-1]])
        e_parts.append(np.stack([prev_exit, start], axis=1))
        far = np.flatnonzero(rng.random(nb) < long_skip)
        far = far[far >= 2]
        if far.size:
            back = (rng.random(far.size) * (far - 1)).astype(np.int64)  # block in [0, b-2]
            e_parts.append(np.stack([exit_[back], start[far]], axis=1))
    chain = np.arange(1 + used, n, dtype=np.int64)  # fill ops, then the output node
    last = int(exit_[-1]) if nb else 0
    e_parts.append(np.stack([np.concatenate([[last], chain[:-1]]), chain], axis=1))
    return np.concatenate(e_parts)


def regal_like(n: int, *, seed: int = 0, mix: dict[str, float] | None = None,
               long_skip: float = 0.05, skew: float = 1.0, names: bool = True) -> Graph:
    """A realistic DNN-like DAG with exactly ``n`` nodes (REGAL-style testbed generator).

    The graph is a chain of blocks drawn from ``mix`` (plain conv chains, ResNet
    basic and bottleneck blocks, Inception and two-tower branchy blocks,
    transformer layers; see :data:`REGAL_MIX`), between an input and an output
    node, with an occasional long skip edge (probability ``long_skip`` per block,
    DenseNet/U-Net style) from an earlier block's exit. Costs are skewed like real
    networks: heavy ops (conv, matmul) carry lognormal work and all weights,
    light ops (norms, activations, adds) cost about 20x less, data-movement ops
    do no work; tensor sizes (hence ``comm``) follow a per-block random walk, as
    resolution and width change through a network. ``skew`` scales the
    lognormal spread. Same ``seed``, same graph. O(n) time, vectorised over
    blocks and edges, so testbeds of 10^5+ nodes take well under a second.
    """
    n = int(n)
    if n < 2:
        raise ValueError(f"regal_like needs n >= 2, got {n}")
    mix = dict(REGAL_MIX if mix is None else mix)
    unknown = set(mix) - set(_TEMPLATES)
    if unknown:
        raise ValueError(f"unknown block types {sorted(unknown)}; choose from {sorted(_TEMPLATES)}")
    kinds_ = list(mix)
    p = np.array([mix[k] for k in kinds_], dtype=np.float64)
    if (p < 0).any() or p.sum() <= 0:
        raise ValueError("mix: probabilities must be >= 0 and not all 0")
    p /= p.sum()
    rng = np.random.default_rng(seed)
    sizes_t = np.array([len(_TEMPLATES[k][0]) for k in kinds_])

    body = n - 2  # nodes between input and output
    block_arr, used = _draw_blocks(rng, p, sizes_t, body)
    nb = int(block_arr.size)
    fill = body - used                                   # leftover: a plain op chain

    # node kinds and block ids
    kind_str = "".join(_TEMPLATES[kinds_[b]][0] for b in block_arr) + "L" * fill
    kind = np.frombuffer(("D" + kind_str + "H").encode(), dtype="S1")
    size_b = sizes_t[block_arr]
    start = 1 + np.concatenate([[0], np.cumsum(size_b)[:-1]]).astype(np.int64) if nb else \
        np.zeros(0, dtype=np.int64)
    exit_ = start + size_b - 1
    block_of = np.full(n, -1, dtype=np.int64)
    if nb:
        block_of[1:1 + used] = np.repeat(np.arange(nb), size_b)

    edges = _block_edges(rng, kinds_, block_arr, start, exit_, used, n, long_skip)

    # costs: per-block activation scale (random walk), skewed op costs
    scale_b = np.exp(np.cumsum(rng.normal(0.0, 0.15, max(nb, 1))))
    scale = np.ones(n)
    if nb:
        scale[1:1 + used] = scale_b[block_of[1:1 + used]]
    heavy = kind == b"H"
    light = kind == b"L"
    s = float(skew)
    work = np.where(heavy, rng.lognormal(1.5, 0.8 * s, n),
                    np.where(light, rng.lognormal(-1.5, 0.5 * s, n), 0.0)) * scale
    comm = rng.lognormal(-1.0, 0.3 * s, n) * scale
    mem = np.where(heavy, rng.lognormal(15.0, 1.2 * s, n), rng.lognormal(7.0, 0.5 * s, n))
    label = _op_names(kinds_, kind, block_of, block_arr, start) if names else None
    return Graph(n, edges[:, 0], edges[:, 1], work, comm, mem, names=label,
                 metadata={"generator": "regal_like", "seed": seed, "n": n, "blocks": nb,
                           "long_skip": long_skip, "skew": skew})
