"""Synthetic generators: exact sizes, valid DAGs, determinism, realistic structure and skew."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipecore import Graph, solve
from pipecore.generators import REGAL_MIX, dnn_like, layered_dag, regal_like


def _is_dag(g: Graph) -> bool:
    order = g.topological_order()
    pos = np.empty(g.n, dtype=np.int64)
    pos[order] = np.arange(g.n)
    return bool((pos[g.src] < pos[g.dst]).all())


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 400), seed=st.integers(0, 10_000), long_skip=st.sampled_from([0.0, 0.3]))
def test_regal_like_has_exactly_n_nodes_one_source_one_sink(n, seed, long_skip):
    g = regal_like(n, seed=seed, long_skip=long_skip)
    assert g.n == n and _is_dag(g)
    assert (np.diff(g.pred_ptr) == 0).sum() == 1 and (np.diff(g.succ_ptr) == 0).sum() == 1
    assert g.names[0] == "input" and g.names[-1] == "output"
    assert (g.work >= 0).all() and (g.comm > 0).all() and (g.mem > 0).all()
    assert len(set(g.names)) == n


def test_regal_like_is_deterministic_per_seed():
    a, b, c = regal_like(500, seed=3), regal_like(500, seed=3), regal_like(500, seed=4)
    assert np.array_equal(a.src, b.src) and np.array_equal(a.work, b.work) and a.names == b.names
    assert not (np.array_equal(a.src, c.src) and np.array_equal(a.work, c.work))


def test_regal_like_structure_residual_branchy_and_skewed():
    g = regal_like(3000, seed=1)
    out_deg = np.diff(g.succ_ptr)
    in_deg = np.diff(g.pred_ptr)
    assert (out_deg >= 3).any() and (in_deg >= 3).any()       # branch points and merges
    assert g.m > g.n                                           # residual / skip edges
    names = np.array(g.names)
    for kind in REGAL_MIX:
        assert any(f".{kind}." in s for s in g.names[:2000]), kind
    heavy = np.char.find(names.astype(str), ".op") >= 0
    # heavy ops (conv/matmul) are a minority of nodes but carry most of the work
    assert heavy.mean() < 0.5 and g.work[heavy].sum() > 0.75 * g.work.sum()
    # costs are heavy-tailed: the top 5% of nodes hold a large share of the work
    top = np.sort(g.work)[::-1][: g.n // 20]
    assert top.sum() > 0.25 * g.work.sum()
    # data-movement ops (concat) do no work
    mv = np.char.find(names.astype(str), ".mv") >= 0
    assert mv.any() and (g.work[mv] == 0).all()
    # the depth is long, as in real networks (a chain of blocks)
    assert g.depth().max() > g.n // 4


def test_regal_like_custom_mix_and_long_skips():
    g = regal_like(400, seed=0, mix={"attention": 1.0})
    assert all(".attention." in s or s.startswith(("input", "output", "tail"))
               for s in g.names)
    plain = regal_like(2000, seed=5, long_skip=0.0)
    skipped = regal_like(2000, seed=5, long_skip=0.5)
    assert skipped.m > plain.m
    with pytest.raises(ValueError, match="unknown block"):
        regal_like(100, mix={"nope": 1.0})
    with pytest.raises(ValueError, match="n >= 2"):
        regal_like(1)
    with pytest.raises(ValueError, match="probabilities"):
        regal_like(100, mix={"chain": 0.0})


def test_regal_like_scales_to_large_testbeds():
    g = regal_like(100_000, seed=2, names=False)
    assert g.n == 100_000 and g.m > 100_000 and _is_dag(g)


def test_regal_like_graphs_are_solvable():
    g = regal_like(120, seed=7)
    res = solve(g, 4, method="balanced")
    assert res.partition is not None and res.partition.is_valid()
    assert res.upper_bound >= g.total_work / 4


def test_old_generators_keep_their_signatures():
    g = layered_dag(300, fan_in=3, seed=4)
    assert g.n == 300 and _is_dag(g)
    d = dnn_like(4, seed=1)
    assert _is_dag(d) and d.names[0] == "input"
    assert dnn_like(3, branches=3, seed=2).n > dnn_like(3, branches=1, seed=2).n
