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
