"""Graph model: construction, validation errors, topological order, contraction."""
import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pipecore
from pipecore import Graph, errors
from pipecore.problem import Problem, check_k

from oracle import small_graphs


def chain(n=4, **kw):
    return Graph(n, list(range(n - 1)), list(range(1, n)), np.ones(n), **kw)


def test_csr_and_parallel_edges_merged():
    g = Graph(3, [0, 0, 1, 0], [1, 1, 2, 2], [1, 2, 3], [0.5, 0.5, 0.5])
    assert g.m == 3
    assert g.successors(0).tolist() == [1, 2]
    assert g.predecessors(2).tolist() == [0, 1]
    assert g.succ_ptr.dtype == np.int32 and g.work.dtype == np.float64
    assert not g.work.flags.writeable


def test_cost_arrays_are_private_copies():
    work = np.ones(3)
    g = Graph(3, [0], [1], work)
    assert work.flags.writeable  # caller's array untouched
    work[0] = 99
    assert g.work[0] == 1


@given(small_graphs(max_nodes=8))
def test_topological_order_respects_edges(g):
    order = g.topological_order()
    pos = np.empty(g.n, dtype=int)
    pos[order] = np.arange(g.n)
    assert sorted(order.tolist()) == list(range(g.n))
    assert np.all(pos[g.src] < pos[g.dst])


def test_cycle_error_names_a_node_on_the_cycle():
    with pytest.raises(errors.CycleError) as info:
        Graph(4, [0, 1, 2, 3], [1, 2, 3, 1], np.ones(4), names=["in", "a", "b", "c"])
    assert set(info.value.cycle) == {1, 2, 3}
    assert "cycle" in str(info.value) and any(x in str(info.value) for x in ("'a'", "'b'", "'c'"))
    assert isinstance(info.value, pipecore.InvalidGraphError)


@pytest.mark.parametrize("field", ["work", "comm", "mem"])
@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_bad_costs(field, bad):
    costs = dict(work=np.ones(3), comm=np.ones(3), mem=np.ones(3))
    costs[field][1] = bad
    with pytest.raises(errors.InvalidCostError, match=rf"{field}\[1\]"):
        Graph(3, [0], [1], **costs)


def test_wrong_cost_shape():
    with pytest.raises(errors.InvalidCostError, match="shape"):
        Graph(3, [0], [1], np.ones(3), comm=np.ones(2))


def test_unknown_and_duplicate_ids():
    with pytest.raises(errors.UnknownNodeError, match="'z'"):
        Graph.from_edges([("a", "b"), ("b", "z")], [1, 1], ids=["a", "b"])
    with pytest.raises(errors.DuplicateNodeError, match="'a'"):
        Graph.from_edges([("a", "b")], [1, 1, 1], ids=["a", "b", "a"])
    with pytest.raises(errors.UnknownNodeError, match="outside 0..1"):
        Graph(2, [0], [5], np.ones(2))


def test_self_loop_and_empty():
    with pytest.raises(errors.SelfLoopError, match="'b'"):
        Graph.from_edges([("a", "b"), ("b", "b")], [1, 1], ids=["a", "b"])
    with pytest.raises(errors.EmptyGraphError):
        Graph(0, [], [], [])


@pytest.mark.parametrize("k", [0, -3, 1.5, "2", True, None])
def test_bad_k(k):
    with pytest.raises(errors.InvalidStageCountError):
        check_k(k)
    with pytest.raises(errors.InvalidStageCountError):
        pipecore.solve(chain(), k)


def test_infeasible_memory_caps():
    g = Graph(3, [0, 1], [1, 2], np.ones(3), mem=[1.0, 5.0, 1.0])
    with pytest.raises(errors.InfeasibleMemoryError, match="node '1'"):
        Problem(g, 3, 4.0)
    with pytest.raises(errors.InfeasibleMemoryError, match="total"):
        Problem(g, 1, 6.0)
    grouped = Graph(3, [0, 1], [1, 2], np.ones(3), mem=[3.0, 1.0, 3.0], group=[0, -1, 0])
    with pytest.raises(errors.InfeasibleMemoryError, match="must share a stage"):
        Problem(grouped, 3, 5.0)
    with pytest.raises(errors.InfeasibleMemoryError):
        pipecore.solve(g, 1, mem_cap=6.0)
    with pytest.raises(errors.InvalidCostError):
        Problem(g, 3, -1.0)
    assert Problem(g, 3, 5.0).mem_cap == 5.0


def test_groups_relabelled_and_contracted_with_cycle():
    # 0 -> 1 -> 2 with 0 and 2 colocated: contraction must merge 1 as well (cycle).
    g = Graph(4, [0, 1, 2], [1, 2, 3], [1, 2, 3, 4], comm=[1, 1, 1, 1], group=[7, -1, 7, -1])
    assert g.group.tolist() == [0, -1, 0, -1]
    con = g.contract()
    assert con.graph.n == 2
    assert con.node_map[0] == con.node_map[1] == con.node_map[2] != con.node_map[3]
    q = con.node_map[0]
    assert sorted(con.members(q).tolist()) == [0, 1, 2]
    assert con.graph.work[q] == 6
    assert con.expand(np.array([0, 1])[np.argsort(con.graph.topological_order())]).shape == (4,)


@given(small_graphs(max_nodes=8, groups=True))
def test_contraction_is_a_dag_whose_stages_expand_validly(g):
    con = g.contract()
    order = con.graph.topological_order()
    stage_q = np.empty(con.graph.n, dtype=np.int32)
    stage_q[order] = np.arange(con.graph.n)
    part = pipecore.Partition(g, con.expand(stage_q), con.graph.n)
    assert part.is_valid()


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n))))
def test_native_strong_components_match_mutual_reachability(args):
    """Tarjan (used when contraction makes the class graph cyclic) against the definition:
    u, v share a component iff each reaches the other; components come sinks first."""
    from pipecore._native import _graph

    n, edges = args
    src = np.array([a for a, _ in edges], dtype=np.int32)
    dst = np.array([b for _, b in edges], dtype=np.int32)
    order = np.argsort(src, kind="stable")
    ptr = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(src, minlength=n), out=ptr[1:])
    comp = np.empty(n, dtype=np.int32)
    c = _graph.strong_components(ptr, np.ascontiguousarray(dst[order]), comp)
    reach = np.eye(n, dtype=bool)
    reach[src, dst] = True
    for w in range(n):   # Floyd-Warshall closure
        reach |= reach[:, [w]] & reach[[w], :]
    assert sorted(set(comp.tolist())) == list(range(c))
    assert np.array_equal(comp[:, None] == comp[None, :], reach & reach.T)
    assert all(comp[a] >= comp[b] for a, b in edges)


def test_networkx_round_trip():
    h = nx.DiGraph()
    h.add_node("x", work=2.0, comm=0.5, mem=3.0, group="g")
    h.add_node("y", work=1.0, comm=0.0, mem=1.0, group="g")
    h.add_node("z", work=4.0)
    h.add_edges_from([("x", "y"), ("y", "z")])
    g = Graph.from_networkx(h)
    assert g.names == ["x", "y", "z"]
    assert g.work.tolist() == [2.0, 1.0, 4.0]
    assert g.group.tolist() == [0, 0, -1]
    back = g.to_networkx()
    assert set(back.edges) == {("x", "y"), ("y", "z")}
    assert back.nodes["x"]["comm"] == 0.5


def test_training_fields_are_validated_and_kept():
    g = Graph(3, [0, 0], [1, 2], [1, 2, 3], backward=[False, True, True], act_mem=[1, 0, 2])
    assert g.is_training and g.backward.tolist() == [False, True, True]
    assert g.act_mem.tolist() == [1.0, 0.0, 2.0]
    assert not Graph(2, [0], [1], [1, 1], backward=[False, False]).is_training
    with pytest.raises(errors.InvalidGraphError, match="backward node to a forward node"):
        Graph(2, [0], [1], [1, 1], backward=[True, False])
    with pytest.raises(errors.InvalidGraphError, match="backward"):
        Graph(2, [0], [1], [1, 1], backward=[0.5, 0])
    with pytest.raises(errors.InvalidCostError, match="act_mem"):
        Graph(2, [0], [1], [1, 1], act_mem=[-1, 0])
