"""A graph neural network policy that proposes a chip per node (needs PyTorch, extra ``rl``).

Input: per-node features (:func:`node_features`) of a graph placed on an MCM.
Network: an MLP embedding, ``rounds`` of message passing (mean over predecessors
and over successors, separate weights, residual + LayerNorm), one multi-head
self-attention layer over all nodes (global context: how much work lies before and
after a node, where the heavy ops are), and a linear head emitting C logits per
node. The policy is size-agnostic in the graph (any n) and fixed in C, so one set
of weights transfers across graphs placed on the same package.

Two heads: ``"categorical"`` (C free logits per node) and ``"ordinal"`` (default):
a pipeline places ops in order, so the head predicts a position on the chip axis
``mu_v = C * (cw_v + delta_v)`` (``cw_v`` = the node's cumulative-work position
feature, ``delta_v`` learned, initialised to 0) and a spread ``sigma_v``, and the
logits are ``-(c + 1/2 - mu_v)^2 / (2 sigma_v^2)`` plus learned free logits
(initialised to 0). At initialisation it samples noisy work-balanced splits; what
it learns is where to deviate from them. This is an inductive bias, not a fixed
answer: every output is trained by the same policy gradient.

Cost per forward pass: O(L (n + m) d + n^2 d) time, O(n^2) memory for attention.
"""
from __future__ import annotations

from typing import Any

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("pipecore.mcm.policy needs PyTorch: pip install 'pipecore[rl]'") from exc

from .costmodel import MCMProblem

__all__ = ["N_FEATURES", "node_features", "GraphTensors", "ChipPolicy", "KeyPolicy",
           "make_policy", "save_checkpoint", "load_checkpoint"]

N_FEATURES = 11
CW_FEATURE = 8  # index of the cumulative-work position in node_features
CHECKPOINT_FORMAT = "pipecore-mcm-policy/1"


def node_features(problem: MCMProblem) -> np.ndarray:
    """(n, 11) float32 features, each scaled to about [0, 1] per graph.

    Normalised work, comm and mem (by their maxima); mem as a share of a chip's SRAM
    (0 when unlimited); depth (by max depth); log in/out degree (by the max);
    topological position (rank / n); cumulative work and cumulative mem before the
    node along the topological order (shares of the totals); work share times C
    (how much of a balanced chip one op fills). O(n + m).
    """
    g = problem.graph
    n, C = g.n, problem.C

    def scaled(x):
        mx = float(np.max(x)) if x.size else 0.0
        return x / mx if mx > 0 else np.zeros_like(x)

    order = g.topological_order()
    rank = np.empty(n)
    rank[order] = np.arange(n) / max(n - 1, 1)
    depth = g.depth().astype(np.float64)
    indeg, outdeg = np.diff(g.pred_ptr).astype(float), np.diff(g.succ_ptr).astype(float)
    wsum, msum = g.work.sum(), g.mem.sum()
    cw = np.empty(n)
    cw[order] = (np.cumsum(g.work[order]) - 0.5 * g.work[order]) / wsum if wsum > 0 else rank[order]
    cm = np.empty(n)
    cm[order] = (np.cumsum(g.mem[order]) - 0.5 * g.mem[order]) / msum if msum > 0 else rank[order]
    cap = float(problem.sram.min())
    memshare = np.minimum(g.mem / cap, 1.0) if np.isfinite(cap) and cap > 0 else np.zeros(n)
    wshare = np.minimum(g.work * C / wsum, 1.0) if wsum > 0 else np.zeros(n)
    feats = np.stack([scaled(g.work), scaled(g.comm), scaled(g.mem), memshare, scaled(depth),
                      scaled(np.log1p(indeg)), scaled(np.log1p(outdeg)), rank, cw, cm, wshare],
                     axis=1)
    return feats.astype(np.float32)


class GraphTensors:
    """Torch tensors of one problem (features and mean-aggregation matrices), built once."""

    def __init__(self, problem: MCMProblem):
        g = problem.graph
        n = g.n
        self.n = n
        self.x = torch.from_numpy(node_features(problem))
        src = torch.from_numpy(g.src.astype(np.int64))
        dst = torch.from_numpy(g.dst.astype(np.int64))
        indeg = np.maximum(np.diff(g.pred_ptr), 1).astype(np.float32)
        outdeg = np.maximum(np.diff(g.succ_ptr), 1).astype(np.float32)
        # pred_mean[v] = mean of h over predecessors of v: rows dst, cols src
        self.pred_mean = torch.sparse_coo_tensor(
            torch.stack([dst, src]), torch.from_numpy(1.0 / indeg[g.dst]), (n, n),
            check_invariants=True).coalesce()
        self.succ_mean = torch.sparse_coo_tensor(
            torch.stack([src, dst]), torch.from_numpy(1.0 / outdeg[g.src]), (n, n),
            check_invariants=True).coalesce()


class ChipPolicy(nn.Module):
    """GNN + attention policy: ``forward(tensors) -> logits (n, C)``.

    Parameters
    ----------
    n_chips : int
        Chips of the package (output size per node).
    hidden : int
        Embedding width d.
    rounds : int
        Message-passing rounds L.
    heads : int
        Attention heads (must divide ``hidden``).
    """

    def __init__(self, n_chips: int, hidden: int = 64, rounds: int = 3, heads: int = 4,
                 head: str = "ordinal"):
        super().__init__()
        if head not in ("ordinal", "categorical"):
            raise ValueError(f"head must be 'ordinal' or 'categorical', got {head!r}")
        self.hparams: dict[str, Any] = dict(n_chips=int(n_chips), hidden=int(hidden),
                                            rounds=int(rounds), heads=int(heads), head=head)
        d = hidden
        self.embed = nn.Sequential(nn.Linear(N_FEATURES, d), nn.ReLU(), nn.Linear(d, d))
        self.mp = nn.ModuleList([nn.Linear(3 * d, d) for _ in range(rounds)])
        self.mp_norm = nn.ModuleList([nn.LayerNorm(d) for _ in range(rounds)])
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.attn_norm = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
        self.ff_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, n_chips)
        if head == "ordinal":
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
            self.pos = nn.Linear(d, 2)  # (delta, spread)
            nn.init.zeros_(self.pos.weight)
            nn.init.zeros_(self.pos.bias)
            self.register_buffer("centres", torch.arange(n_chips, dtype=torch.float32) + 0.5)

    @property
    def n_chips(self) -> int:
        return self.hparams["n_chips"]

    def forward(self, t: GraphTensors) -> "torch.Tensor":
        h = self.embed(t.x)
        for lin, norm in zip(self.mp, self.mp_norm):
            agg = torch.cat([h, torch.sparse.mm(t.pred_mean, h), torch.sparse.mm(t.succ_mean, h)],
                            dim=1)
            h = norm(h + torch.relu(lin(agg)))
        a, _ = self.attn(h[None], h[None], h[None], need_weights=False)
        h = self.attn_norm(h + a[0])
        h = self.ff_norm(h + self.ff(h))
        logits = self.head(h)
        if self.hparams["head"] == "ordinal":
            C = self.n_chips
            pos = self.pos(h)
            mu = C * (t.x[:, CW_FEATURE] + pos[:, 0])
            sigma = 0.2 + nn.functional.softplus(pos[:, 1] + 0.5)  # ~1.17 chips at init
            logits = logits - (self.centres[None, :] - mu[:, None]) ** 2 / (2 * sigma[:, None] ** 2)
        return logits

    def distribution(self, t: GraphTensors) -> "torch.distributions.Categorical":
        return torch.distributions.Categorical(logits=self.forward(t))


def save_checkpoint(path, policy: nn.Module, *, optimizer=None, extra: dict | None = None) -> None:
    """Write the policy (hyper-parameters + weights), optionally the optimizer and metadata."""
    state = {"format": CHECKPOINT_FORMAT, "hparams": dict(policy.hparams),
             "state_dict": policy.state_dict(), "extra": dict(extra or {})}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    torch.save(state, path)


def load_checkpoint(path, *, optimizer=None) -> tuple[nn.Module, dict]:
    """Rebuild a policy from :func:`save_checkpoint`; returns (policy, extra metadata)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a pipecore MCM policy checkpoint")
    policy = make_policy(state["hparams"])
    policy.load_state_dict(state["state_dict"])
    if optimizer is not None and "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    return policy, state["extra"]


class KeyPolicy(nn.Module):
    """GNN + attention policy emitting a *priority key* per node and a chip-path choice.

    The same trunk as :class:`ChipPolicy` (MLP embedding, ``rounds`` of predecessor /
    successor message passing, one self-attention layer). Heads: a key mean per node
    ``mu_v = rank_v + delta_v`` (``rank_v`` = the node's topological position feature,
    ``delta_v`` learned and initialised to 0, so the untrained policy proposes BFS-like
    orders), one learned log spread ``log_sigma`` shared by all nodes, and logits over
    the package's ``n_paths`` candidate chip paths from the mean-pooled embedding
    (initialised uniform). Keys are decoded by Kahn's smallest-key-first order and the
    MCM slicing DP (:meth:`pipecore.mcm.MCMProblem.decode`): every sample is a valid
    partition, no repair. Size-agnostic in the graph; fixed in the package's paths.
    """

    def __init__(self, n_paths: int = 1, hidden: int = 64, rounds: int = 3, heads: int = 4,
                 sigma: float = 0.02):
        super().__init__()
        if int(n_paths) < 1:
            raise ValueError(f"n_paths must be >= 1, got {n_paths!r}")
        if not (sigma > 0):
            raise ValueError(f"sigma must be > 0, got {sigma!r}")
        self.hparams: dict[str, Any] = dict(n_paths=int(n_paths), hidden=int(hidden),
                                            rounds=int(rounds), heads=int(heads),
                                            sigma=float(sigma), kind="keys")
        d = hidden
        self.embed = nn.Sequential(nn.Linear(N_FEATURES, d), nn.ReLU(), nn.Linear(d, d))
        self.mp = nn.ModuleList([nn.Linear(3 * d, d) for _ in range(rounds)])
        self.mp_norm = nn.ModuleList([nn.LayerNorm(d) for _ in range(rounds)])
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.attn_norm = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
        self.ff_norm = nn.LayerNorm(d)
        self.key = nn.Linear(d, 1)
        nn.init.zeros_(self.key.weight)
        nn.init.zeros_(self.key.bias)
        self.path = nn.Linear(d, int(n_paths))
        nn.init.zeros_(self.path.weight)
        nn.init.zeros_(self.path.bias)
        self.log_sigma = nn.Parameter(torch.tensor(float(np.log(sigma))))

    @property
    def n_paths(self) -> int:
        return self.hparams["n_paths"]

    def forward(self, t: GraphTensors):
        """(key means (n,), log sigma (), path logits (n_paths,))."""
        h = self.embed(t.x)
        for lin, norm in zip(self.mp, self.mp_norm):
            agg = torch.cat([h, torch.sparse.mm(t.pred_mean, h), torch.sparse.mm(t.succ_mean, h)],
                            dim=1)
            h = norm(h + torch.relu(lin(agg)))
        a, _ = self.attn(h[None], h[None], h[None], need_weights=False)
        h = self.attn_norm(h + a[0])
        h = self.ff_norm(h + self.ff(h))
        mu = t.x[:, RANK_FEATURE] + 0.1 * self.key(h)[:, 0]
        return mu, self.log_sigma.clamp(-7.0, 0.0), self.path(h.mean(dim=0))


RANK_FEATURE = 7  # index of the topological position in node_features


def make_policy(hparams: dict) -> nn.Module:
    """Rebuild a policy of either kind from its ``hparams``."""
    hp = dict(hparams)
    if hp.pop("kind", "chips") == "keys":
        return KeyPolicy(**hp)
    return ChipPolicy(**hp)
