"""Hostile-input fuzzing (issue 12): random malformed graphs, partitions and options thrown
at the readers, ``Graph``, ``solve`` and ``evaluate``. Every call must either raise a
documented exception (:class:`pipecore.PipecoreError` family) or return a valid answer
whose lower bound is sound (checked against brute force on tiny instances) - never
crash, hang or certify a wrong bound."""
from __future__ import annotations

import copy
import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipecore
from pipecore import Graph, Partition, PipecoreError
from pipecore.io import native

from oracle import brute_force

SETTINGS = settings(max_examples=60, deadline=5000,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

#: JSON values a hostile file may hold anywhere.
junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.sampled_from(
        [0, -1, 1, 2**31, 2**32, 2**63, 1e308, -0.0, 0.5, 2.7, "1.5", "abc", "", "0"]),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=6)


def _pipecore_doc(n: int = 4) -> dict:
    g = Graph(n, list(range(n - 1)), list(range(1, n)), work=[1.0 + i for i in range(n)],
              comm=[0.25] * n, mem=[1.0] * n, metadata={"k": 2, "mem_cap": 3.0})
    return json.loads(json.dumps(native.graph_to_dict(g)))


def _msr_doc(n: int = 4) -> dict:
    return {"maxFPGAs": 2, "maxSizePerFPGA": 3.0,
            "nodes": [{"id": i, "fpgaLatency": 1.0 + i, "size": 1.0, "colorClass": None}
                      for i in range(n)],
            "edges": [{"sourceId": i, "destId": i + 1, "cost": 0.25} for i in range(n - 1)]}


def _paths(obj, prefix=()):
    """Every (container path) in a JSON document, for targeted mutation."""
    yield prefix
    if isinstance(obj, dict):
        for key, v in obj.items():
            yield from _paths(v, prefix + (key,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated(draw, base):
    """``base`` with 1-3 values replaced by junk, keys deleted or lists truncated."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "truncate"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "truncate" and isinstance(parent[path[-1]], list):
            parent[path[-1]] = parent[path[-1]][:draw(st.integers(0, 2))]
        else:
            parent[path[-1]] = draw(junk)
    return doc


def _check_answer(g: Graph, k: int, cap, res) -> None:
    """A valid partition, or none with a reason; bounds ordered and sound."""
    assert res.lower_bound >= 0 and not math.isnan(res.lower_bound)
    if res.partition is not None:
        assert res.partition.is_valid(mem_cap=cap)
        assert res.lower_bound <= res.upper_bound * (1 + 1e-9)
    if g.n <= 6 and k <= 3:
        opt, _ = brute_force(g, k, cap)
        assert res.lower_bound <= opt * (1 + 1e-9) + 1e-12, (res.lower_bound, opt)
        if res.partition is not None:
            assert res.upper_bound >= opt * (1 - 1e-9) - 1e-12
        if math.isfinite(opt):
            assert res.quality is not pipecore.Quality.INFEASIBLE
        elif res.quality.value == "optimal":
            pytest.fail("optimal claimed on an infeasible instance")


def _load_and_solve(tmp_path, doc) -> None:
    path = tmp_path / "g.json"
    path.write_text(json.dumps(doc))  # NaN/Infinity tokens included, as Python writes them
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the MSR reader's cost notice
            g = pipecore.load_graph(path)
    except PipecoreError:
        return
    k = min(int(g.metadata.get("k") or 2), 3)
    cap = g.metadata.get("mem_cap")
    try:
        res = pipecore.solve(g, k, mem_cap=cap, time_limit=3)
    except PipecoreError:
        return
    _check_answer(g, k, cap, res)


@SETTINGS
@given(doc=mutated(_pipecore_doc()))
def test_fuzz_pipecore_json_reader(tmp_path_factory, doc):
    _load_and_solve(tmp_path_factory.mktemp("fz"), doc)


@SETTINGS
@given(doc=mutated(_msr_doc()))
def test_fuzz_device_placement_reader(tmp_path_factory, doc):
    _load_and_solve(tmp_path_factory.mktemp("fz"), doc)


@SETTINGS
@given(doc=st.one_of(junk, st.just({"format": native.GRAPH_FORMAT}),
                     st.just({"nodes": [], "edges": [], "maxFPGAs": 1})))
def test_fuzz_arbitrary_json_is_rejected_cleanly(tmp_path_factory, doc):
    _load_and_solve(tmp_path_factory.mktemp("fz"), doc)


numbers = st.one_of(st.integers(-3, 2**33), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([True, "1", None, 1e308, 2.5, [1], b"x"]))
#: node counts: small ones, and the huge ones that must be refused at once (out of int32
#: range, or beyond this machine's memory); a legal graph of 10^8 nodes would take
#: seconds to build, so counts between are left out.
node_counts = st.one_of(st.integers(-3, 10**5), st.floats(max_value=1e5), st.just(math.nan),
                        st.sampled_from([2**31 - 2, 2**31 - 1, 2**31, 2**33, 1e12, math.inf,
                                         True, "1", None, 2.5, [1], b"x"]))


@SETTINGS
@given(n=node_counts, src=st.lists(numbers, max_size=4), dst=st.lists(numbers, max_size=4),
       work=st.one_of(st.none(), st.lists(numbers, max_size=5)),
       comm=st.one_of(st.none(), st.lists(numbers, max_size=5)),
       group=st.one_of(st.none(), st.lists(numbers, max_size=5)))
def test_fuzz_graph_constructor(n, src, dst, work, comm, group):
    try:
        g = Graph(n, src, dst, work=work, comm=comm, group=group)
    except PipecoreError:
        return
    assert g.n >= 1 and np.isfinite(g.work).all() and (g.work >= 0).all()
    res = pipecore.solve(g, 2, time_limit=3)
    _check_answer(g, 2, None, res)


@SETTINGS
@given(k=numbers, mem_cap=st.one_of(st.none(), numbers),
       method=st.sampled_from(["auto", "ideals", "slicegraph", "anneal", "local", "mip",
                               "random", "balanced", "uniform", "nosuch", ""]),
       options=st.dictionaries(st.sampled_from(["population", "generations", "max_ideals",
                                                "mip", "jobs", "fallback", "typo", "workers"]),
                               numbers, max_size=2),
       time_limit=st.one_of(st.none(), st.sampled_from([0.5, 1, "5", -1, 0, math.nan])),
       seed=st.one_of(st.none(), numbers))
def test_fuzz_solve_arguments(k, mem_cap, method, options, time_limit, seed):
    g = Graph(5, [0, 0, 1, 2], [1, 2, 3, 4], work=[1, 2, 3, 1, 2], comm=[0.5] * 5,
              mem=[1, 1, 1, 1, 1])
    try:
        res = pipecore.solve(g, k, mem_cap=mem_cap, method=method, time_limit=time_limit,
                             seed=seed, **options)
    except PipecoreError:
        return
    _check_answer(g, int(k), mem_cap, res)


@SETTINGS
@given(stage=st.one_of(junk, st.lists(numbers, min_size=0, max_size=6)), k=st.one_of(numbers,
       st.sampled_from([10**9, 10**18])))
def test_fuzz_partitions_and_evaluate(tmp_path_factory, stage, k):
    g = Graph(4, [0, 1, 2], [1, 2, 3], work=[1, 2, 3, 4], comm=[0.5] * 4)
    try:
        p = Partition(g, stage, k)
    except PipecoreError:
        p = None
    if p is not None:
        assert p.stage.size == g.n and p.stage.min() >= 0 and p.stage.max() < p.k
        assert math.isfinite(p.bottleneck)
        assert p.breakdown().stages.size <= g.n  # empty stages cost nothing, whatever k is
    path = tmp_path_factory.mktemp("fz") / "p.json"
    try:
        text = json.dumps({"format": "pipecore.partition", "version": 1, "k": k,
                           "stage": stage})
    except TypeError:  # bytes: not JSON at all
        return
    path.write_text(text)
    try:
        q = pipecore.load_partition(g, path)
    except PipecoreError:
        return
    assert math.isfinite(q.bottleneck)


def test_graphs_beyond_memory_are_refused_up_front(monkeypatch):
    """A graph, or a solve, that cannot fit in RAM raises GraphTooLargeError at once
    instead of getting the process killed by the system (fuzzing found n = 10^8)."""
    from pipecore import GraphTooLargeError, _runtime

    monkeypatch.setattr(_runtime, "physical_memory", lambda: 10**6)
    with pytest.raises(GraphTooLargeError, match="nodes needs about"):
        Graph(100_000, [0], [1])
    monkeypatch.undo()
    g = Graph(2_000, [0], [1])
    monkeypatch.setattr(_runtime, "physical_memory", lambda: 10**6)
    with pytest.raises(GraphTooLargeError, match="GiB; this machine has"):
        pipecore.solve(g, 2, time_limit=1)
