"""Measured costs: per-node timing on this machine, the gloo link, the split CLI."""
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs PyTorch")

from pipecore.cli import main  # noqa: E402
from pipecore.io.launch import export_factory, load_factory  # noqa: E402
from pipecore.io.measure import measure_exported, measure_link, profile  # noqa: E402
from pipecore.io.torch import from_exported  # noqa: E402


def test_profile_measures_every_node():
    model, args, _ = load_factory("pipecore.examples:mlp")
    g = profile(model, args, repeats=3, warmup=1, link=(1e-4, 1e9))
    ref = from_exported(torch.export.export(model, args))
    assert g.n == ref.n and np.array_equal(g.src, ref.src) and g.names == ref.names
    assert (g.work > 0).all() and g.metadata["costs"] == "measured"
    # linear layers dominate GELUs in an MLP
    lin = [w for w, n in zip(g.work, g.names) if "linear" in n]
    act = [w for w, n in zip(g.work, g.names) if "gelu" in n]
    assert np.median(lin) > np.median(act)
    out = 32 * 512 * 4
    assert g.comm[0] == pytest.approx((1e-4 + out / 1e9) / 1e-6)
    assert np.array_equal(g.mem, ref.mem)


def test_bad_link_rejected():
    ep, _, args, _ = export_factory("pipecore.examples:mlp")
    with pytest.raises(ValueError, match="link"):
        measure_exported(ep, args, link="tcp", repeats=1, warmup=0)
    with pytest.raises(ValueError, match="bandwidth"):
        measure_exported(ep, args, link=(0.0, 0.0), repeats=1, warmup=0)


def test_gloo_link_is_measured_between_two_processes():
    latency, bandwidth = measure_link(sizes=(1 << 10, 1 << 20, 1 << 22), repeats=5)
    assert 0 <= latency < 1.0 and 1e6 < bandwidth < 1e13


def test_split_cli_writes_runnable_stages(tmp_path, capsys):
    out = tmp_path / "pipe"
    code = main(["split", "pipecore.examples:skip_cnn", "-k", "2", "--out", str(out),
                 "--json", "--time-limit", "2"])
    assert code == 0
    info = json.loads(capsys.readouterr().out)
    assert info["k"] == 2 and len(info["stages"]) == 2
    for f in ("graph.json", "partition.json", "stage0.pt", "stage1.py", "run_pipeline.py"):
        assert os.path.exists(out / f)
    mods = [torch.load(out / f"stage{s}.pt", weights_only=False) for s in range(2)]
    x = torch.load(out / "inputs.pt", weights_only=False)
    ref = torch.load(out / "reference.pt", weights_only=False)
    y = mods[1](*mods[0](*(t[:2] for t in x)))
    torch.testing.assert_close(y[0], ref[0][:2], rtol=0, atol=1e-5)
    assert main(["split", "no_such_module:f", "-k", "2", "--out", str(out)]) == 2


# ------------------------------------------------ corrections (not timing-sensitive)
from pipecore import Partition  # noqa: E402
from pipecore.io.measure import (NodeTimer, fit_link, link_comm,  # noqa: E402
                                 plan_stage_times, stamp_cost, time_nodes)
from pipecore.io.stages import split_exported  # noqa: E402


class _Ticks:
    """A fake clock that advances by one 'second' per read: every interval between
    two stamps is exactly one stamp cost, whatever the op did."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        self.t += 1.0
        return self.t


def test_stamp_cost_is_the_spacing_of_empty_stamps():
    assert stamp_cost(_Ticks(), stamps=10, repeats=3) == 1.0
    assert 0 <= stamp_cost("wall", stamps=50, repeats=3) < 1e-3


def test_node_timer_runs_ops_in_order_and_subtracts_the_stamp_cost():
    ep, _, args, _ = export_factory("pipecore.examples:mlp")
    gm = split_exported(ep, [0] * from_exported(ep).n).modules[0]
    ops = [n.name for n in gm.graph.nodes if n.op in ("call_function", "call_method")]
    timer = NodeTimer(gm, _Ticks())
    assert timer.names == ops and timer.cost == 1.0
    with torch.no_grad():
        assert (timer.run(args) == 0).all()          # 1 tick per gap, 1 tick subtracted
        torch.testing.assert_close(timer.module(*args), gm(*args), rtol=0, atol=0)
    real = time_nodes(gm, args, warmup=0, repeats=2)
    assert list(real) == ops and all(t >= 0 for t in real.values())
    with pytest.raises(ValueError, match="clock"):
        NodeTimer(gm, "sundial")


def test_fit_link_recovers_a_line_and_ignores_outliers():
    b = np.array([4, 1 << 10, 1 << 16, 1 << 20, 1 << 24], dtype=float)
    lat, bw = fit_link(b, 2e-3 + b / 3e9)
    assert lat == pytest.approx(2e-3) and bw == pytest.approx(3e9)
    # an outlier does not move an L1 fit; bimodal samples: the line follows the majority
    y = 2e-3 + b / 3e9
    y[3] *= 1.3
    assert fit_link(b, y) == pytest.approx((2e-3, 3e9))
    y = 2e-3 + b / 3e9
    y[[0, 2]] -= 1.9e-3          # two messages found the peer awake
    assert fit_link(b, y) == pytest.approx((2e-3, 3e9))
    # negative intercept -> pure bandwidth term
    lat, bw = fit_link(b[1:], b[1:] / 1e9 - 1e-6 + 1e-9)
    assert lat == 0.0 and bw > 0
    with pytest.raises(ValueError):
        fit_link(b, np.zeros_like(b))


def test_link_comm_one_message_per_tensor():
    assert link_comm([0, 100, 1000], 1e-3, 1e5).tolist() == [0.0, 1e-3 + 1e-3, 1e-3 + 1e-2]
    assert link_comm([10, 20], 1e-3, 0.0).tolist() == [0.0, 0.0]


def test_plan_stage_times_charges_every_tensor_a_stage_really_sends():
    ep, _, args, _ = export_factory("pipecore.examples:skip_cnn")
    g = measure_exported(ep, args, repeats=1, warmup=0, link=(1e-3, 1e30))
    st = np.zeros(g.n, dtype=np.int64)
    st[g.n // 3:], st[2 * g.n // 3:] = 1, 2
    plan = split_exported(ep, st)
    assert any(plan.passthrough)                   # the long skip crosses stage 1
    t = plan_stage_times(plan, g, st)
    work = np.bincount(st, weights=g.work) * 1e-6
    msgs = [len(plan.inputs[s]) * (s > 0) + len(plan.outputs[s]) * (s < 2) for s in range(3)]
    np.testing.assert_allclose(t - work, np.array(msgs) * 1e-3, rtol=1e-9)
    f = Partition(g, st, 3).stage_costs() * 1e-6   # the cost model skips pass-through
    assert t[1] > f[1] + 1.5e-3


def test_plan_stage_times_charges_folded_ops_every_stage_recomputes():
    ep, _, args, _ = export_factory("pipecore.examples:tiny_bert")
    g = measure_exported(ep, args, repeats=1, warmup=0)
    folded = g.metadata["folded"]
    assert folded and all(t >= 0 and 0 <= row < g.n for t, row in folded.values())
    st = np.minimum(np.arange(g.n) * 2 // g.n, 1)
    plan = split_exported(ep, st)
    # the attention mask is built from arange in every stage that reads it
    again = [n.name for n in plan.modules[1].graph.nodes
             if n.name in folded and st[folded[n.name][1]] != 1]
    assert again
    t = plan_stage_times(plan, g, st)
    work = np.bincount(st, weights=g.work) * 1e-6
    np.testing.assert_allclose(t[1] - work[1], sum(folded[n][0] for n in again), rtol=1e-9)
    g.metadata["folded"] = {}        # without the record: the cost model's work only
    np.testing.assert_allclose(plan_stage_times(plan, g, st), work, rtol=1e-9)
