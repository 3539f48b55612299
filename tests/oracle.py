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

from pipecore import Graph, Problem

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


def groups_together(graph: Graph, stage) -> bool:
    """Every colocation group (group id >= 0) lies in one stage."""
    first: dict = {}
    return graph.group is None or all(
        g < 0 or first.setdefault(g, stage[v]) == stage[v]
        for v, g in enumerate(graph.group.tolist()))


def is_valid_reference(graph: Graph, stage, k: int, mem_cap=None) -> bool:
    stage = [int(s) for s in stage]
    if any(stage[u] > stage[v] for u, v in zip(graph.src.tolist(), graph.dst.tolist())):
        return False
    if not groups_together(graph, stage):
        return False
    if mem_cap is not None:
        for s in range(k):
            if sum(graph.mem[v] for v in range(graph.n) if stage[v] == s) > mem_cap * (1 + 1e-12):
                return False
    return True


def brute_force(graph: Graph, k: int, mem_cap=None):
    """(optimum bottleneck, an optimal stage vector) over all k^n assignments; (inf, None) if none."""
    stages = itertools.product(range(k), repeat=graph.n)
    return _best(graph, k, (s for s in stages if is_valid_reference(graph, s, k, mem_cap)))


def _best(graph: Graph, k: int, stages):
    """(min bottleneck, its stage vector) over valid ``stages``; (inf, None) if empty."""
    best, arg = math.inf, None
    for stage in stages:
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


def capped_optimum(prob) -> tuple[Problem, float] | None:
    """``(Problem, brute-force optimum)`` of a :data:`capped_problems` draw (the cap from
    :func:`cap_between`), or None when no partition meets the cap."""
    graph, k, frac = prob
    cap = cap_between(graph, k, frac)
    opt, _ = brute_force(graph, k, cap)
    return (Problem(graph, k, cap), opt) if math.isfinite(opt) else None


def assert_bound_below_optimum(bound, prob, eps: float = 1e-9) -> None:
    """``bound(problem, opt)`` (a lower bound; ``opt`` may seed its search range) is at most
    the brute-force optimum of a :data:`capped_problems` draw (nothing to check when no
    partition meets the cap)."""
    if (solved := capped_optimum(prob)) is None:
        return
    problem, opt = solved
    assert bound(problem, opt) <= opt + eps


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


# ----------------------------------------------------------------------------- training graphs
def training_order_reference(graph: Graph) -> list[tuple[int, int]]:
    """Pairs (u, v) with stage[u] <= stage[v] required, straight from DESIGN.md section 1b:
    forward -> forward edges, and for every backward edge a -> c touching a class with no
    forward node, the mirrored pair (a forward-or-placeholder member of class(c), same of
    class(a)). Inference graphs: every edge."""
    edges = list(zip(graph.src.tolist(), graph.dst.tolist()))
    if graph.backward is None:
        return edges
    bw = graph.backward.tolist()
    cls = [(-1 - v) if graph.group is None or graph.group[v] < 0 else int(graph.group[v])
           for v in range(graph.n)]
    has_fwd = {cls[v] for v in range(graph.n) if not bw[v]}
    rep = {}
    for v in range(graph.n):  # a forward member if the class has one
        if cls[v] not in rep or (bw[rep[cls[v]]] and not bw[v]):
            rep[cls[v]] = v
    out = [(u, v) for u, v in edges if not bw[u] and not bw[v]]
    for a, c in edges:
        if bw[a] and bw[c] and (cls[a] not in has_fwd or cls[c] not in has_fwd):
            out.append((rep[cls[c]], rep[cls[a]]))
    return out


def stage_memory_reference(graph: Graph, stage, k: int, schedule: str = "plain") -> list[float]:
    """Memory per stage: mem + act_mem (plain), or mem + f * act_mem under 1F1B with f the
    number of non-empty stages from this one to the last."""
    stage = [int(s) for s in stage]
    used = sorted(set(stage))
    out = []
    for s in range(k):
        f = sum(1 for t in used if t >= s) if schedule == "1f1b" else 1
        out.append(sum(graph.mem[v] + f * graph.act_mem[v] for v in range(graph.n)
                       if stage[v] == s))
    return out


def is_valid_training_reference(graph: Graph, stage, k: int, mem_cap=None,
                                schedule: str = "plain") -> bool:
    stage = [int(s) for s in stage]
    if any(stage[u] > stage[v] for u, v in training_order_reference(graph)):
        return False
    if not groups_together(graph, stage):
        return False
    if mem_cap is not None:
        if max(stage_memory_reference(graph, stage, k, schedule)) > mem_cap * (1 + 1e-12):
            return False
    return True


def brute_force_classes(graph: Graph, k: int, mem_cap=None, schedule: str = "plain"):
    """(optimum, stage vector) over every stage assignment of the colour classes (each
    group one unit, other nodes singletons), under DESIGN.md section 1 / 1b; (inf, None)
    when no assignment is valid. k^classes assignments."""
    units: dict = {}
    unit = [units.setdefault(("g", int(graph.group[v])) if graph.group is not None
                             and graph.group[v] >= 0 else ("v", v), len(units))
            for v in range(graph.n)]
    stages = ([assign[unit[v]] for v in range(graph.n)]
              for assign in itertools.product(range(k), repeat=len(units)))
    return _best(graph, k, (s for s in stages
                            if is_valid_training_reference(graph, s, k, mem_cap, schedule)))


@st.composite
def small_training_graphs(draw, max_forward: int = 5, max_backward: int = 4,
                          act: bool = False):
    """A random training graph: a forward DAG (nodes 0..f-1, some sharing a class),
    backward nodes tied to forward classes or orphan classes, forward -> backward edges
    and backward -> backward edges (any direction in class order), small costs."""
    f = draw(st.integers(1, max_forward))
    nb = draw(st.integers(1, max_backward))
    n = f + nb
    cost = st.integers(0, 12).map(lambda x: x / 4)
    fpairs = [(i, j) for i in range(f) for j in range(i + 1, f)]
    edges = draw(st.lists(st.sampled_from(fpairs), unique=True, max_size=2 * f)) if fpairs else []
    fgroup = draw(st.lists(st.integers(0, f - 1), min_size=f, max_size=f))
    # backward node: the class of a forward node, or an orphan class of its own
    bclass = draw(st.lists(st.one_of(st.integers(0, f - 1), st.just(-1)),
                           min_size=nb, max_size=nb))
    group = list(fgroup) + [fgroup[c] if c >= 0 else f + i for i, c in enumerate(bclass)]
    fb = [(i, f + j) for i in range(f) for j in range(nb)]
    bb = [(f + i, f + j) for i in range(nb) for j in range(i + 1, nb)]
    edges += draw(st.lists(st.sampled_from(fb), unique=True, max_size=2 * nb))
    if bb:
        edges += draw(st.lists(st.sampled_from(bb), unique=True, max_size=2 * nb))
    work = draw(st.lists(cost, min_size=n, max_size=n))
    comm = draw(st.lists(cost, min_size=n, max_size=n))
    mem = draw(st.lists(st.integers(0, 4).map(float), min_size=n, max_size=n))
    act_mem = draw(st.lists(st.integers(0, 3).map(float), min_size=n, max_size=n)) if act \
        else None
    backward = [False] * f + [True] * nb
    return Graph(n, [a for a, _ in edges], [b for _, b in edges], work, comm, mem,
                 group=group, backward=backward, act_mem=act_mem)
