"""Embedded models: present, valid, compact, documented provenance, usable without extras."""
import json
import os
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest

from pipecore import Graph, load_model, list_models, solve
from pipecore.cli import main
from pipecore.models import DEFAULT_MODEL

REAL = {"bert-base", "gpt2", "t5-small", "vit-base", "llama-7b", "resnet50", "inception-v1",
        "densenet121"}


def test_the_real_models_are_embedded_and_default_is_bert():
    assert REAL <= set(list_models())
    assert DEFAULT_MODEL == "bert-base"
    with pytest.raises(ValueError, match="unknown model"):
        load_model("no-such-model")


@pytest.mark.parametrize("name", sorted(REAL))
def test_model_is_a_valid_compact_graph_with_provenance(name):
    g = load_model(name)
    assert isinstance(g, Graph)
    assert 100 <= g.n <= 5000, g.n                                   # hundreds to thousands
    order = g.topological_order()
    pos = np.empty(g.n, dtype=np.int64)
    pos[order] = np.arange(g.n)
    assert (pos[g.src] < pos[g.dst]).all()
    md = g.metadata
    assert md["name"] == name and md["generated_by"] == "scripts/make_models.py"
    assert md["importer"] in ("torch.export", "onnx") and md["source"]
    assert md["device"]["name"] == "a100" and md["time_unit"] == 1e-6
    assert isinstance(md["k"], int) and 2 <= md["k"] <= 16
    assert md["total_flops"] > 1e9 and g.total_work > 0 and g.comm.sum() > 0
    assert md["uncounted_ops"] == {}
    ref = resources.files("pipecore") / "data" / "models" / f"{name}.json.gz"
    with resources.as_file(ref) as path:
        assert os.path.getsize(path) < 300 * 1024


def test_known_model_sizes():
    """Parameter bytes and FLOPs match the published sizes of these networks (fp32, batch 1)."""
    bert = load_model("bert-base").metadata
    assert bert["total_param_bytes"] == pytest.approx(4 * 109.5e6, rel=0.01)   # 110M params
    assert bert["total_flops"] == pytest.approx(2 * 85e6 * 128, rel=0.05)      # 2 * params * tokens
    llama = load_model("llama-7b").metadata
    assert llama["total_param_bytes"] == pytest.approx(4 * 6.74e9, rel=0.01)
    assert llama["mem_cap"] == 16e9
    resnet = load_model("resnet50").metadata
    assert resnet["total_flops"] == pytest.approx(8.2e9, rel=0.02)


def test_loading_models_needs_no_optional_extra():
    code = ("import sys, pipecore\n"
            "for name in pipecore.list_models(): pipecore.load_model(name)\n"
            "bad = [m for m in ('torch', 'onnx', 'transformers', 'matplotlib', 'dask') "
            "if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_cli_solve_bert_base_k8(capsys):
    code = main(["solve", "--model", "bert-base", "-k", "8", "--json", "--time-limit", "30"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["k"] == 8 and len(out["stage"]) == load_model("bert-base").n
    assert out["upper_bound"] >= out["lower_bound"] > 0


def test_default_k_and_mem_cap_are_used():
    g = load_model("llama-7b")
    res = solve(g, g.metadata["k"], method="balanced", mem_cap=g.metadata["mem_cap"],
                time_limit=3)
    assert res.partition is not None
    assert res.partition.stage_memory().max() <= g.metadata["mem_cap"]


def test_regenerating_matches_the_shipped_file():
    """scripts/make_models.py reproduces the embedded bert-base (needs torch + transformers)."""
    pytest.importorskip("torch", reason="needs PyTorch to regenerate models")
    pytest.importorskip("transformers", reason="needs transformers to regenerate models")
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
    try:
        import make_models
    finally:
        sys.path.pop(0)
    fresh = make_models.build("bert-base")
    shipped = load_model("bert-base")
    assert fresh.n == shipped.n and fresh.m == shipped.m
    assert fresh.names == shipped.names
    assert np.array_equal(fresh.src, shipped.src) and np.array_equal(fresh.dst, shipped.dst)
    for key in ("work", "comm", "mem"):
        assert np.allclose(getattr(fresh, key), getattr(shipped, key), rtol=1e-5, atol=0)


def test_importers_name_their_extra_when_missing():
    """Without torch / onnx installed, the importers fail with an ImportError naming the extra."""
    code = ("import sys\n"
            "sys.modules['torch'] = None; sys.modules['onnx'] = None\n"
            "from pipecore.io import torch as pt, onnx as po\n"
            "for fn, extra in ((lambda: pt.from_torch(object()), 'pipecore[torch]'),\n"
            "                  (lambda: po.from_onnx('x.onnx'), 'pipecore[onnx]')):\n"
            "    try:\n"
            "        fn()\n"
            "    except ImportError as exc:\n"
            "        assert extra in str(exc), exc\n"
            "    else:\n"
            "        raise SystemExit('no ImportError')\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
