"""Benchmark graphs that are not in ../shared: wide Inception-style DAGs.

``inception_graph`` chains blocks; each block fans out from the previous block's
concat into several parallel branches (chains of convolutions of different
lengths) that join in a concat node. A block whose branches have lengths
L1..Lp contributes about prod(Li + 1) ideals, so the ideal count grows
exponentially with the number of branches while the node count stays small:
the exact DP's worst case. ``wide_graph()`` is the ~300-node, ~40,000-ideal
instance used by ``bench_ideals.py``.

Costs are deterministic for a given seed and shaped like a CNN: conv work
varies per branch and position, every tensor's transfer time (comm) is a few
percent of a conv's work, memory is weights + activations. No node has zero
work, so the exact solver's zero-work leaf reduction does not apply.

Usable as a module (``from graphs import wide_graph``) or as a script that
writes the graph as pipecore JSON: ``python bench/graphs.py out.json``, or in
the artifact's format for its C++ DP: ``python bench/graphs.py out.json --msr``.
"""
from __future__ import annotations


import numpy as np

from pipecore import Graph

#: branch lengths of the default block: 6 branches -> 3*4*5*5*4*2 = 2400 ideals per block.
WIDE_BRANCHES = (2, 3, 4, 4, 3, 1)
WIDE_BLOCKS = 17


def inception_graph(blocks: int = WIDE_BLOCKS, branches=WIDE_BRANCHES, stem: int = 3,
                    head: int = 2, seed: int = 0, k: int = 6) -> Graph:
    """Stem chain -> ``blocks`` x (fan-out into ``branches`` chains -> concat) -> head chain.

    ``branches`` is one tuple of chain lengths used by every block, or a list of
    tuples cycled over the blocks. Nodes: stem + blocks * (sum(L) + 1) + head.
    """
    rng = np.random.default_rng(seed)
    if branches and isinstance(branches[0], int):
        branches = [tuple(branches)]
    names: list[str] = []
    work: list[float] = []
    comm: list[float] = []
    mem: list[float] = []
    src: list[int] = []
    dst: list[int] = []

    def node(name, w, c, m):
        names.append(name)
        work.append(float(w))
        comm.append(float(c))
        mem.append(float(m))
        return len(names) - 1

    prev = None
    for i in range(stem):
        v = node(f"stem{i}", rng.uniform(4, 8), rng.uniform(0.2, 0.4), rng.uniform(1, 4) * 2 ** 20)
        if prev is not None:
            src.append(prev)
            dst.append(v)
        prev = v
    for b in range(blocks):
        shape = branches[b % len(branches)]
        tails = []
        for j, length in enumerate(shape):
            last = prev
            for t in range(length):
                scale = 1.0 + 0.5 * t  # deeper convs of a branch are heavier
                v = node(f"b{b}_br{j}_{t}", rng.uniform(0.5, 1.5) * scale,
                         rng.uniform(0.02, 0.08), rng.uniform(2, 12) * 2 ** 20)
                src.append(last)
                dst.append(v)
                last = v
            tails.append(last)
        cat = node(f"b{b}_concat", rng.uniform(0.05, 0.15), rng.uniform(0.1, 0.3),
                   rng.uniform(0.5, 1) * 2 ** 20)
        for t in tails:
            src.append(t)
            dst.append(cat)
        prev = cat
    for i in range(head):
        v = node(f"head{i}", rng.uniform(1, 3), rng.uniform(0.01, 0.02), rng.uniform(8, 32) * 2 ** 20)
        src.append(prev)
        dst.append(v)
        prev = v
    n = len(names)
    return Graph(n, src, dst, work, comm, mem, names=names,
                 metadata={"k": k, "mem_cap": None, "source": "bench/graphs.py:inception_graph"})


def wide_graph(seed: int = 0) -> Graph:
    """The acceptance instance: 311 nodes, 40,806 ideals (17 blocks x 6 branches), k = 6."""
    return inception_graph(WIDE_BLOCKS, WIDE_BRANCHES, seed=seed)


def to_msr_dict(graph: Graph, k: int = 6, mem_cap: float | None = None, max_cpus: int = 0) -> dict:
    """The graph in the NeurIPS 2020 artifact's JSON (to run its C++ DP on the same instance).

    Every node is accelerator-supported, ``comm`` becomes the cost of each outgoing
    edge, each node is its own colour class; ``max_cpus = 0`` poses the same problem
    as pipecore (every node on an accelerator).
    """
    cap = float(mem_cap) if mem_cap is not None else float(graph.mem.sum()) * 2 + 1
    nodes = [{"id": i, "name": graph.name(i), "supportedOnFpga": 1,
              "cpuLatency": float(graph.work[i]) * 10, "fpgaLatency": float(graph.work[i]),
              "isBackwardNode": 0, "colorClass": i, "size": float(graph.mem[i])}
             for i in range(graph.n)]
    edges = [{"sourceId": int(u), "destId": int(v), "cost": float(graph.comm[u])}
             for u, v in zip(graph.src.tolist(), graph.dst.tolist())]
    return {"maxSizePerFPGA": cap, "maxFPGAs": int(k), "maxCPUs": int(max_cpus),
            "nodes": nodes, "edges": edges}


if __name__ == "__main__":  # pragma: no cover
    import argparse
    import json

    from pipecore import save_graph

    ap = argparse.ArgumentParser(description="Write the wide Inception-style benchmark graph.")
    ap.add_argument("out", nargs="?", help="output file (pipecore JSON; omit to print a summary)")
    ap.add_argument("--msr", action="store_true", help="write the NeurIPS 2020 artifact's format")
    args = ap.parse_args()
    g = wide_graph()
    if args.out is None:
        print(g)
    elif args.msr:
        with open(args.out, "w") as fh:
            json.dump(to_msr_dict(g), fh)
        print(f"wrote {args.out} (artifact format): {g}")
    else:
        save_graph(g, args.out)
        print(f"wrote {args.out}: {g}")
