"""Training graphs from PyTorch: the AOTAutograd joint graph with backward flags,
seq_nr colour classes, weight gradients + optimizer state in mem, saved activations
in act_mem; embedded training models."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs PyTorch")
import torch.nn as nn  # noqa: E402

from pipecore import Graph, load_model, list_models  # noqa: E402
from pipecore.io.device import DeviceModel  # noqa: E402
from pipecore.io.torch import from_torch, from_transformers  # noqa: E402

UNIT = DeviceModel("unit", peak_flops=1e9, mem_bandwidth=1e9, link_bandwidth=1e9, time_unit=1.0)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 16)
        self.b = nn.Linear(16, 4)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def _mlp_graph(optimizer="adam"):
    with torch.device("meta"):
        m, x = MLP(), torch.zeros(2, 8)
    return from_torch(m, (x,), training=True, device=UNIT, optimizer=optimizer)


def test_joint_graph_marks_backward_and_ties_classes():
    g = _mlp_graph()
    assert g.is_training and g.metadata["training"]
    bw = g.backward
    fwd_names = {n.split("/")[-1] for n, b in zip(g.names, bw) if not b}
    bwd_names = {n.split("/")[-1] for n, b in zip(g.names, bw) if b}
    assert {"addmm", "relu", "addmm_1", "sum_1"} <= fwd_names
    assert "threshold_backward" in bwd_names and {"mm", "mm_1", "mm_2"} <= bwd_names
    # no edge from a backward node to a forward node (the Graph checks it; re-check here)
    assert not (bw[g.src] & ~bw[g.dst]).any()
    # every backward node shares a colour class with some forward node
    fwd_groups = set(g.group[~bw].tolist())
    assert all(c in fwd_groups for c in g.group[bw].tolist())
    by_name = {n.split("/")[-1]: i for i, n in enumerate(g.names)}
    assert g.group[by_name["threshold_backward"]] == g.group[by_name["relu"]]
    # the weight gradient of the second linear belongs to addmm_1
    assert g.group[by_name["mm_1"]] == g.group[by_name["addmm_1"]]


def test_memory_counts_weights_gradients_optimizer_and_saved_activations():
    params = 4 * (8 * 16 + 16 + 16 * 4 + 4)
    g_adam, g_sgd = _mlp_graph("adam"), _mlp_graph("sgd")
    bw = g_adam.backward
    assert g_adam.mem[~bw].sum() == pytest.approx(3 * params)       # weights + 2 Adam states
    assert g_sgd.mem[~bw].sum() == pytest.approx(params)
    assert g_adam.mem[bw].sum() == pytest.approx(params)            # one gradient per weight
    by_name = {n.split("/")[-1]: i for i, n in enumerate(g_adam.names)}
    assert g_adam.act_mem[by_name["relu"]] == 2 * 16 * 4            # saved for backward
    assert g_adam.act_mem[bw].sum() == 0
    with pytest.raises(ValueError, match="optimizer"):
        _mlp_graph("lion")


def test_inference_import_is_unchanged_by_the_option():
    with torch.device("meta"):
        m, x = MLP(), torch.zeros(2, 8)
    g = from_torch(m, (x,), device=UNIT)
    assert not g.is_training and g.n == 3


def test_from_transformers_training_small_bert():
    g = from_transformers("bert", seq_len=16, training=True,
                          config=dict(num_hidden_layers=1, hidden_size=32, num_attention_heads=2,
                                      intermediate_size=64, vocab_size=64))
    assert isinstance(g, Graph) and g.is_training
    assert 0 < g.backward.sum() < g.n
    assert g.metadata["uncounted_ops"] == {}
    bw = g.backward
    assert g.mem[bw].sum() > 0 and g.act_mem[~bw].sum() > 0


@pytest.mark.parametrize("name", ["bert-base-train", "gpt2-train"])
def test_embedded_training_models(name):
    assert name in list_models()
    g = load_model(name)
    assert g.is_training and g.metadata["training"] and g.metadata["k"] == 8
    bw = g.backward
    params = g.metadata["total_param_bytes"]
    assert g.mem[~bw].sum() == pytest.approx(3 * params, rel=1e-2)   # weights + Adam (+buffers)
    assert g.mem[bw].sum() > 0.5 * params    # weight gradients (tied weights share one)
    assert g.metadata["uncounted_ops"] == {}
    fwd_groups = set(g.group[~bw].tolist())
    assert all(c in fwd_groups for c in g.group[bw].tolist())


def test_cli_solves_embedded_training_model(capsys):
    """The embedded training model solves out of the box and prints its certificate."""
    from pipecore.cli import main

    code = main(["solve", "--model", "bert-base-train", "-k", "8", "--time-limit", "10"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "bert-base-train" in out and "lower bound" in out.lower()
