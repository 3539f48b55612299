"""Test oracles: a literal Python cost model, brute force over all partitions, and
hypothesis strategies for small random problems. Every algorithm is checked against these.
"""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from pipecore import Graph

MSR_DIR = Path(__file__).resolve().parent / "data" / "msr"  # copied from the NeurIPS 2020 artifact (MIT)
MSR_GRAPHS = ["layer_bert24_inference", "layer_gnmt_inference", "layer_resnet50_inference",
              "op_bert_l-3_inference", "op_resnet50_inference"]


def msr_reference() -> dict:
    """``{name: {"k", "optimum", "nodes"}}`` from tests/data/msr/REFERENCE.json."""
    return json.loads((MSR_DIR / "REFERENCE.json").read_text())


def msr_path(name: str) -> Path:
    return MSR_DIR / f"{name}.json"


def reference_stage_costs(graph: Graph, stage, k: int) -> list[float]:
    """f(S) straight from the definition in DESIGN.md section 1, with Python sets."""
    stage = [int(s) for s in stage]
    edges = list(zip(graph.src.tolist(), graph.dst.tolist()))
    costs = []
    for s in range(k):
        inside = {v for v in range(graph.n) if stage[v] == s}
        recv = {u for (u, v) in edges if u not in inside and v in inside}
        send = {u for (u, v) in edges if u in inside and v not in inside}
        costs.append(sum(graph.work[v] for v in inside) + sum(graph.comm[u] for u in recv)
                     + sum(graph.comm[u] for u in send))
    return costs


def is_valid_reference(graph: Graph, stage, k: int, mem_cap=None) -> bool:
    stage = [int(s) for s in stage]
    if any(stage[u] > stage[v] for u, v in zip(graph.src.tolist(), graph.dst.tolist())):
        return False
    if graph.group is not None:
        first = {}
        for v, g in enumerate(graph.group.tolist()):
            if g >= 0 and first.setdefault(g, stage[v]) != stage[v]:
                return False
    if mem_cap is not None:
        for s in range(k):
            if sum(graph.mem[v] for v in range(graph.n) if stage[v] == s) > mem_cap * (1 + 1e-12):
                return False
    return True


def brute_force(graph: Graph, k: int, mem_cap=None):
    """(optimum bottleneck, an optimal stage vector) over all k^n assignments; (inf, None) if none."""
    best, arg = math.inf, None
    for stage in itertools.product(range(k), repeat=graph.n):
        if not is_valid_reference(graph, stage, k, mem_cap):
            continue
        b = max(reference_stage_costs(graph, stage, k))
        if b < best:
            best, arg = b, np.array(stage, dtype=np.int32)
    return best, arg


@st.composite
def small_graphs(draw, max_nodes: int = 7, groups: bool = False, min_nodes: int = 1):
    """A random DAG on up to ``max_nodes`` nodes with small costs (labels shuffled)."""
    n = draw(st.integers(min_nodes, max_nodes))
    perm = draw(st.permutations(range(n)))
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=2 * n)) if pairs else []
    edges = [(perm[i], perm[j]) for i, j in chosen]
    cost = st.integers(0, 20).map(lambda x: x / 4)
    work = draw(st.lists(cost, min_size=n, max_size=n))
    comm = draw(st.lists(cost, min_size=n, max_size=n))
    mem = draw(st.lists(st.integers(0, 5).map(float), min_size=n, max_size=n))
    group = None
    if groups:
        group = draw(st.lists(st.integers(-1, max(0, n // 2)), min_size=n, max_size=n))
    src = [a for a, _ in edges]
    dst = [b for _, b in edges]
    try:
        return Graph(n, src, dst, work, comm, mem, group=group)
    except Exception:  # cannot happen without groups; groups never create cycles at construction
        raise


def cap_between(graph: Graph, k: int, frac):
    """A memory cap ``frac`` of the way from the necessary minimum (largest colocation
    class, or an even split) to no cap at all; None when ``frac`` is None."""
    if frac is None:
        return None
    con = graph.contract()  # colocation classes: groups and the cycles they create
    lo = max(float(np.bincount(con.node_map, weights=graph.mem).max()),
             float(graph.mem.sum()) / min(k, con.graph.n))
    return lo + frac * (float(graph.mem.sum()) - lo)


#: (graph, k, cap fraction or None) for bound and certificate tests.
capped_problems = st.tuples(small_graphs(max_nodes=6, groups=True), st.integers(1, 4),
                            st.one_of(st.none(), st.floats(0.0, 1.0)))


def run_method(fn, graph: Graph, k: int, mem_cap=None, *, budget=None, seed=0, progress=None,
               schedule="plain", **options):
    """Call a method function directly (as ``solve()`` would, without polish or bounds):
    build the Problem, validate the options against the method's declaration."""
    from pipecore._runtime import Budget, no_progress
    from pipecore.problem import Problem

    problem = Problem(graph, k, mem_cap, schedule)
    opts = fn.options.validate(options)
    return fn(problem, budget or Budget(None), seed=seed, progress=progress or no_progress,
              **opts)
