"""MCM cost model: hand-computed cases, agreement with pipecore's stage cost, validity checks."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from oracle import reference_stage_costs, small_graphs

from pipecore import Graph, Partition, errors
from pipecore.generators import dnn_like
from pipecore.mcm import MCMConfig, MCMProblem, PRESETS, preset


def _chain():
    # a -> b -> c, plus a -> c
    return Graph(3, [0, 1, 0], [1, 2, 2], work=[2.0, 4.0, 6.0], comm=[1.0, 0.5, 3.0],
                 mem=[1.0, 2.0, 3.0])


def test_hand_computed_ring():
    g = _chain()
    cfg = MCMConfig(4, compute_rate=[1.0, 2.0, 1.0, 1.0], link_bandwidth=2.0, hop_latency=0.25)
    p = MCMProblem(g, cfg)
    chip = np.array([0, 1, 3])
    # chip0: work 2; a sent once (to chips 1 and 3): 1/2 = 0.5                 -> 2.5
    # chip1: work 4/2 = 2; receives a: 0.5 + 1 hop * 0.25; sends b: 0.25       -> 3.0
    # chip3: work 6; receives a over 1 hop (ring 0-3): 0.5 + 0.25,
    #        receives b over 2 hops: 0.25 + 0.5                                 -> 7.5
    costs = p.chip_costs(chip)
    np.testing.assert_allclose(costs, [2.5, 3.0, 0.0, 7.5])
    bott, valid = p.evaluate(chip)
    assert bott[0] == pytest.approx(7.5) and valid[0]
    assert p.throughput(chip)[0] == pytest.approx(1 / 7.5)


def test_hand_computed_mesh_hops():
    cfg = MCMConfig(6, topology="mesh", mesh_shape=(2, 3), hop_latency=1.0)
    # snake order: row 0 = chips 0,1,2 ; row 1 = chips 5,4,3 (left to right)
    np.testing.assert_array_equal(cfg.coords(), [[0, 0], [0, 1], [0, 2], [1, 2], [1, 1], [1, 0]])
    h = cfg.hops()
    assert h[2, 3] == 1 and h[0, 5] == 1 and h[0, 3] == 3 and h[1, 4] == 1
    ring = MCMConfig(8).hops()
    assert ring[0, 7] == 1 and ring[0, 4] == 4 and ring[1, 6] == 3
    g = Graph(2, [0], [1], work=[1.0, 1.0], comm=[2.0, 0.0])
    p = MCMProblem(g, cfg)
    np.testing.assert_allclose(p.chip_costs([0, 3]), [3.0, 0, 0, 1.0 + 2.0 + 3.0, 0, 0])


def test_zero_comm_tensor_costs_nothing():
    g = Graph(2, [0], [1], work=[1.0, 1.0], comm=[0.0, 0.0])
    p = MCMProblem(g, MCMConfig(3, hop_latency=5.0))
    np.testing.assert_allclose(p.chip_costs([0, 2]), [1.0, 0.0, 1.0])


@given(small_graphs(max_nodes=7, groups=True), st.integers(1, 4), st.data())
def test_unit_config_equals_pipeline_cost(g, C, data):
    """Unit rate, unit bandwidth, no latency: chip cost == DESIGN.md stage cost."""
    chip = np.array(data.draw(st.lists(st.integers(0, C - 1), min_size=g.n, max_size=g.n)))
    p = MCMProblem(g, MCMConfig(C))
    np.testing.assert_allclose(p.chip_costs(chip), reference_stage_costs(g, chip, C), atol=1e-9)
    bott, valid = p.evaluate(chip)
    assert valid[0] == Partition(g, chip, C).is_valid()


@given(small_graphs(max_nodes=7, groups=True), st.integers(1, 4), st.data())
def test_batch_matches_single_and_validity(g, C, data):
    B = 5
    chips = np.array(data.draw(st.lists(st.lists(st.integers(0, C - 1), min_size=g.n, max_size=g.n),
                                        min_size=B, max_size=B)))
    sram = data.draw(st.floats(1.0, 12.0))
    rate = data.draw(st.lists(st.floats(0.5, 2.0), min_size=C, max_size=C))
    p = MCMProblem(g, MCMConfig(C, compute_rate=rate, sram=sram, hop_latency=0.1,
                                link_bandwidth=1.5))
    bott, valid = p.evaluate(chips)
    for b in range(B):
        assert bott[b] == pytest.approx(p.chip_costs(chips[b]).max(), abs=1e-12)
        expect = Partition(g, chips[b], C).is_valid(sram)
        assert valid[b] == expect == (not p.violations(chips[b]))
    thr = p.throughput(chips)
    assert np.all(thr[~valid] == 0)


def test_out_of_range_chip_is_invalid_not_a_crash():
    g = _chain()
    p = MCMProblem(g, MCMConfig(2))
    bott, valid = p.evaluate(np.array([[0, 1, 2], [0, -1, 1]]))
    assert not valid.any() and np.isinf(bott).all()
    with pytest.raises(errors.InvalidPartitionError):
        p.evaluate(np.zeros(5, dtype=int))


def test_presets_and_config_errors():
    for name in PRESETS:
        cfg = preset(name)
        assert cfg.hops().shape == (cfg.n_chips, cfg.n_chips)
        assert (cfg.hops()[np.arange(cfg.n_chips - 1), np.arange(1, cfg.n_chips)] == 1).all()
    assert preset("ring-16").n_chips == 16 and preset("mesh-4x4").mesh_shape == (4, 4)
    with pytest.raises(ValueError):
        preset("torus-3")
    with pytest.raises(errors.InvalidStageCountError):
        MCMConfig(0)
    with pytest.raises(errors.InvalidCostError):
        MCMConfig(3, compute_rate=[1.0, 2.0])
    with pytest.raises(errors.InvalidCostError):
        MCMConfig(3, sram=-1.0)
    with pytest.raises(errors.InvalidCostError):
        MCMConfig(3, link_bandwidth=0.0)
    with pytest.raises(ValueError):
        MCMConfig(6, topology="mesh", mesh_shape=(4, 2))


def test_sized_for_and_reference_is_valid_without_sram():
    g = dnn_like(6, seed=3)
    cfg = preset("ring-4").sized_for(g, 1.3)
    assert cfg.sram_cap[0] >= g.mem.sum() * 1.3 / 4 * (1 - 1e-12)
    p = MCMProblem(g, preset("ring-4"))
    assert p.evaluate(p.reference_chips)[1][0]
    assert "ring of 4" in cfg.describe()
