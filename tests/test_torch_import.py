"""PyTorch importer (torch.export): hand-computed FLOPs, meta device, transformers models."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs PyTorch (pip install torch==2.13.0)")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from pipecore import Graph, solve  # noqa: E402
from pipecore.io.device import DeviceModel  # noqa: E402
from pipecore.io.torch import from_torch, from_transformers, profile_exported  # noqa: E402

UNIT = DeviceModel("unit", peak_flops=1e9, mem_bandwidth=1e9, link_bandwidth=1e9, time_unit=1.0)


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 16 * 16, 10)

    def forward(self, x):
        y = F.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(torch.flatten(y, 1))


class Attn(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(32, 64))

    def forward(self, x):                      # x: [2, 4, 16, 32]
        h = torch.softmax(x @ self.w, dim=-1)  # [2, 4, 16, 64]
        return F.scaled_dot_product_attention(h, h, h)


def _flops_by_op(graph_or_ep):
    table, _ = profile_exported(graph_or_ep)
    out = {}
    for t, f in zip(table.op_types, table.flops):
        out[t] = out.get(t, 0.0) + f
    return table, out


def test_convnet_flops_by_hand_cpu_and_meta_agree():
    x = torch.zeros(1, 3, 32, 32)
    ep = torch.export.export(ConvNet().eval(), (x,))
    table, by_op = _flops_by_op(ep)
    conv = 2 * 8 * 32 * 32 * 27 + 8 * 32 * 32
    assert by_op["conv2d"] == conv
    assert by_op["relu"] == 8 * 32 * 32
    assert by_op["max_pool2d"] == 8 * 16 * 16 * 4
    assert by_op["linear"] == 2 * 2048 * 10 + 10
    assert table.total_flops == conv + 8192 + 8192 + 40970
    assert dict(zip(table.op_types, table.param_bytes))["conv2d"] == 4 * (8 * 27 + 8)
    g_cpu = from_torch(ConvNet(), (x,), device=UNIT)
    with torch.device("meta"):
        net = ConvNet()
    g_meta = from_torch(net, (torch.zeros(1, 3, 32, 32, device="meta"),), device=UNIT)
    assert g_cpu.n == g_meta.n == 5 and g_cpu.m == g_meta.m == 4
    assert np.array_equal(g_cpu.work, g_meta.work) and np.array_equal(g_cpu.mem, g_meta.mem)
    assert g_meta.metadata["total_flops"] == table.total_flops
    conv_row = [i for i, n in enumerate(g_meta.names) if n.endswith("conv2d")][0]
    assert g_meta.comm[conv_row] == pytest.approx(4 * 8 * 32 * 32 / 1e9)


def test_matmul_softmax_and_sdpa_flops_by_hand():
    with torch.device("meta"):
        m = Attn()
    ep = torch.export.export(m, (torch.zeros(2, 4, 16, 32, device="meta"),))
    table, by_op = _flops_by_op(ep)
    bh, s, d = 2 * 4, 16, 64
    assert by_op["matmul"] == 2 * bh * s * 32 * 64
    assert by_op["softmax"] == 3 * bh * s * d
    scores = bh * s * s
    assert by_op["scaled_dot_product_attention"] == 2 * scores * d * 2 + 3 * scores
    assert table.param_bytes[table.op_types.index("matmul")] == 4 * 32 * 64


def _linear_flops(in_f, out_f, rows):
    return 2 * rows * in_f * out_f + rows * out_f


def test_bert_from_default_config_on_meta_device():
    pytest.importorskip("transformers", reason="needs transformers (pip install transformers)")
    L, H, I, S, heads = 2, 64, 128, 16, 4
    g = from_transformers("bert", seq_len=S, config=dict(
        num_hidden_layers=L, hidden_size=H, intermediate_size=I, num_attention_heads=heads))
    assert isinstance(g, Graph) and g.metadata["importer"] == "torch.export"
    assert g.metadata["uncounted_ops"] == {}
    counts = g.metadata["op_counts"]
    assert counts["linear"] == L * 6 + 1                   # q,k,v,o,ffn1,ffn2 per layer + pooler
    assert counts["scaled_dot_product_attention"] == L
    assert counts["layer_norm"] == 2 * L + 1
    assert 15 * L < g.n < 40 * L                        # ~24 ATen ops per layer
    # linear + attention FLOPs by hand (the rest is elementwise)
    from pipecore.io.torch import transformers_model

    model, args, kwargs = transformers_model("bert", seq_len=S, config=dict(
        num_hidden_layers=L, hidden_size=H, intermediate_size=I, num_attention_heads=heads))
    _, by_op = _flops_by_op(torch.export.export(model, args, kwargs))
    per_layer = 4 * _linear_flops(H, H, S) + _linear_flops(H, I, S) + _linear_flops(I, H, S)
    assert by_op["linear"] == L * per_layer + _linear_flops(H, H, 1)
    scores = heads * S * S
    assert by_op["scaled_dot_product_attention"] == L * (4 * scores * (H // heads) + 3 * scores)
    # weights: every parameter is counted (word/position/type embeddings, layers, pooler)
    n_params = sum(p.numel() for p in model.parameters())
    assert g.metadata["total_param_bytes"] >= 4 * (n_params - 512 * H)  # position table sliced
    res = solve(g, 3, method="balanced")
    assert res.partition is not None and res.partition.is_valid()


@pytest.mark.parametrize("arch", ["gpt2", "t5", "vit", "llama"])
def test_other_transformers_export_without_cache(arch):
    pytest.importorskip("transformers", reason="needs transformers (pip install transformers)")
    small = {"gpt2": dict(n_layer=2, n_embd=64, n_head=4, vocab_size=1000, n_positions=64),
             "t5": dict(num_layers=2, num_decoder_layers=2, d_model=64, d_ff=128, num_heads=4,
                        d_kv=16, vocab_size=1000),
             "vit": dict(num_hidden_layers=2, hidden_size=64, intermediate_size=128,
                         num_attention_heads=4, image_size=32, patch_size=8),
             "llama": dict(num_hidden_layers=2, hidden_size=64, intermediate_size=128,
                           num_attention_heads=4, num_key_value_heads=2, vocab_size=1000)}[arch]
    g = from_transformers(arch, seq_len=16, config=small)
    assert g.n > 20 and g.metadata["total_flops"] > 0
    order = g.topological_order()
    pos = np.empty(g.n, dtype=np.int64)
    pos[order] = np.arange(g.n)
    assert (pos[g.src] < pos[g.dst]).all()
    assert (np.diff(g.succ_ptr) == 0).sum() >= 1
    assert g.metadata["arch"] == arch and g.metadata["uncounted_ops"] == {}
