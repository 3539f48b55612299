"""Small deterministic PyTorch models for ``pipecore split`` and the pipeline tests.

Each factory returns ``(module, example_args)`` with weights drawn from a fixed
seed, so every process of a distributed run builds the same model. ``tiny_bert``
builds HuggingFace BERT from a small config (random init, no download).
"""
from __future__ import annotations

__all__ = ["tiny_bert", "skip_cnn", "mlp", "tiny_gpt2"]


def _torch():
    import torch

    return torch


def tiny_bert(batch: int = 2, seq_len: int = 16, layers: int = 2, hidden: int = 64):
    """BERT from a tiny ``BertConfig`` (random init, eval mode); input: token ids."""
    torch = _torch()
    import transformers

    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=128, hidden_size=hidden, num_hidden_layers=layers,
                                  num_attention_heads=2, intermediate_size=2 * hidden,
                                  max_position_embeddings=max(64, seq_len))
    model = transformers.BertModel(cfg).eval()
    ids = torch.randint(0, cfg.vocab_size, (batch, seq_len), generator=torch.Generator().manual_seed(1))
    return model, (ids,)


def tiny_gpt2(batch: int = 2, seq_len: int = 32, layers: int = 4, hidden: int = 128):
    """GPT-2 LM from a small ``GPT2Config`` (random init, eval mode, no KV cache)."""
    torch = _torch()
    import transformers

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=512, n_embd=hidden, n_layer=layers, n_head=4,
                                  n_positions=max(64, seq_len), use_cache=False,
                                  bos_token_id=511, eos_token_id=511)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    ids = torch.randint(0, cfg.vocab_size, (batch, seq_len), generator=torch.Generator().manual_seed(1))
    return model, (ids,)


def _skip_cnn_class():
    torch = _torch()
    nn = torch.nn

    class SkipCNN(nn.Module):
        """Conv blocks with residual (skip) connections and a long skip to the head."""

        def __init__(self, width: int = 16, blocks: int = 3):
            super().__init__()
            self.stem = nn.Conv2d(3, width, 3, padding=1)
            self.blocks = nn.ModuleList(
                nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width),
                              nn.ReLU(), nn.Conv2d(width, width, 3, padding=1))
                for _ in range(blocks))
            self.head = nn.Linear(2 * width, 10)

        def forward(self, x):
            h0 = torch.relu(self.stem(x))
            h = h0
            for blk in self.blocks:
                h = torch.relu(h + blk(h))
            pooled = torch.cat([h.mean((2, 3)), h0.amax((2, 3))], dim=1)  # long skip from stem
            return self.head(pooled)

    return SkipCNN


def skip_cnn(batch: int = 2, size: int = 16, width: int = 16, blocks: int = 3):
    """A CNN with residual blocks and a stem-to-head skip (random init, eval mode)."""
    torch = _torch()
    torch.manual_seed(0)
    model = _skip_cnn_class()(width, blocks).eval()
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    return model, (x,)


def mlp(batch: int = 32, width: int = 512, depth: int = 8):
    """A plain MLP (linear + GELU layers): compute-heavy ops with few nodes."""
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(0)
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.GELU()]
    model = nn.Sequential(*layers).eval()
    x = torch.randn(batch, width, generator=torch.Generator().manual_seed(1))
    return model, (x,)
