"""Cost model: native kernel vs the literal definition, move deltas, validity explanations."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipecore import Graph, Partition, errors
from pipecore.generators import layered_dag
from pipecore.partition import evaluate_bottleneck

from oracle import reference_stage_costs, small_graphs


@st.composite
def graph_and_stage(draw, max_nodes=8):
    g = draw(small_graphs(max_nodes=max_nodes, groups=draw(st.booleans())))
    k = draw(st.integers(1, 4))
    stage = draw(st.lists(st.integers(0, k - 1), min_size=g.n, max_size=g.n))
    return g, np.array(stage), k


@given(graph_and_stage())
def test_kernel_matches_definition_on_any_assignment(case):
    g, stage, k = case
    part = Partition(g, stage, k)
    np.testing.assert_allclose(part.stage_costs(), reference_stage_costs(g, stage, k),
                               rtol=1e-12, atol=1e-12)
    assert part.bottleneck == pytest.approx(max(reference_stage_costs(g, stage, k)), abs=1e-12)
    assert evaluate_bottleneck(g, part.stage, k) == pytest.approx(part.bottleneck, abs=1e-12)


def test_kernel_matches_definition_on_larger_random_graph():
    g = layered_dag(300, fan_in=3, seed=4)
    rng = np.random.default_rng(0)
    stage = rng.integers(0, 5, g.n)
    np.testing.assert_allclose(Partition(g, stage, 5).stage_costs(),
                               reference_stage_costs(g, stage, 5), rtol=1e-10)


@given(graph_and_stage(), st.data())
def test_move_delta_equals_recomputation(case, data):
    g, stage, k = case
    part = Partition(g, stage, k)
    v = data.draw(st.integers(0, g.n - 1))
    s = data.draw(st.integers(0, k - 1))
    delta = part.move_delta(v, s)
    after = part.moved(v, s).stage_costs()
    np.testing.assert_allclose(part.stage_costs() + delta, after, atol=1e-9)


def test_hand_computed_costs():
    # a -> b, a -> c, b -> d, c -> d ; stages {a,b} {c,d}
    g = Graph.from_edges([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
                         work=[1, 2, 3, 4], comm=[10, 20, 30, 40], ids="abcd")
    part = Partition.from_stages(g, [["a", "b"], ["c", "d"]])
    b = part.breakdown()
    # stage 0 sends a (to c) and b (to d), receives nothing; stage 1 receives a and b, sends nothing
    assert b.work.tolist() == [3, 7]
    assert b.send.tolist() == [30, 0]
    assert b.recv.tolist() == [0, 30]
    assert part.bottleneck == 37
    assert part.is_valid()


def test_violations_explained():
    g = Graph.from_edges([("a", "b"), ("b", "c")], work=[1, 1, 1], mem=[2, 2, 2],
                         group=[0, -1, 0], ids="abc")
    part = Partition(g, [1, 0, 1], 2)
    problems = part.violations(mem_cap=3.0)
    text = " | ".join(problems)
    assert "'a' -> 'b' goes backward" in text
    assert "stage 1 uses mem 4 > mem_cap 3" in text
    assert not part.is_valid()
    split = Partition(g, [0, 0, 1], 2).violations()
    assert any("colocation group 0 is split" in p for p in split)
    with pytest.raises(errors.InvalidPartitionError):
        part.check(3.0)


def test_bad_stage_vectors():
    g = Graph(3, [0], [1], np.ones(3))
    with pytest.raises(errors.InvalidPartitionError, match="shape"):
        Partition(g, [0, 1], 2)
    with pytest.raises(errors.InvalidPartitionError, match="outside 0..1"):
        Partition(g, [0, 1, 2], 2)
    with pytest.raises(errors.InvalidPartitionError, match="integer"):
        Partition(g, [0, 0.5, 1], 2)
    with pytest.raises(errors.UnknownNodeError, match="'q'"):
        Partition.from_stages(g, [["0", "q"]])
    with pytest.raises(errors.InvalidStageCountError):
        Partition(g, [0, 0, 0], 0)


def test_empty_stages_allowed_and_stages_listing():
    g = Graph(3, [0, 1], [1, 2], [1, 2, 3], comm=[1, 1, 1])
    part = Partition(g, [0, 0, 3], 4)
    assert part.stage_costs().tolist() == [4, 0, 0, 4]
    assert [s.tolist() for s in part.stages()] == [[0, 1], [], [], [2]]
    assert part.relabel().k == 2
