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

__all__ = ["N_FEATURES", "node_features", "chip_features", "graph_profile", "GraphTensors",
           "ChipPolicy", "KeyPolicy",
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
        self.chips = torch.from_numpy(chip_features(problem.config))
        self.profile = torch.from_numpy(graph_profile(problem))


class _Trunk(nn.Module):
    """The shared GNN trunk of both policies: MLP embedding of the node features,
    ``rounds`` of predecessor/successor mean message passing with residual LayerNorm,
    one self-attention layer and a feed-forward layer. O(rounds * (n + m) * d + n^2 d).
    (A base class, not a sub-module, so checkpoint keys stay flat.)"""

    def _build_trunk(self, d: int, rounds: int, heads: int) -> None:
        self.embed = nn.Sequential(nn.Linear(N_FEATURES, d), nn.ReLU(), nn.Linear(d, d))
        self.mp = nn.ModuleList([nn.Linear(3 * d, d) for _ in range(rounds)])
        self.mp_norm = nn.ModuleList([nn.LayerNorm(d) for _ in range(rounds)])
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.attn_norm = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
        self.ff_norm = nn.LayerNorm(d)

    def _trunk(self, t: GraphTensors) -> "torch.Tensor":
        h = self.embed(t.x)
        for lin, norm in zip(self.mp, self.mp_norm):
            agg = torch.cat([h, torch.sparse.mm(t.pred_mean, h), torch.sparse.mm(t.succ_mean, h)],
                            dim=1)
            h = norm(h + torch.relu(lin(agg)))
        a, _ = self.attn(h[None], h[None], h[None], need_weights=False)
        h = self.attn_norm(h + a[0])
        h = self.ff_norm(h + self.ff(h))
        return h


class ChipPolicy(_Trunk):
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
        self._build_trunk(d, rounds, heads)
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
        h = self._trunk(t)
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


N_CHIP_FEATURES = 7


def chip_features(config) -> np.ndarray:
    """(C, 7) float32 chip features: rate / max rate, min rate / rate, SRAM / max SRAM
    (1 when unlimited), mesh row and column (scaled to [0, 1]), mean hop distance to the
    other chips (by the max), position along the first candidate path (scaled)."""
    C = config.n_chips
    rate = config.rate
    sram = config.sram_cap
    fin = np.isfinite(sram)
    sram_f = np.where(fin, sram / (sram[fin].max() if fin.any() else 1.0), 1.0)
    xy = config.coords().astype(np.float64)
    span = np.maximum(xy.max(axis=0), 1.0)
    hops = config.hops().astype(np.float64)
    mh = hops.mean(axis=1)
    pos = np.empty(C)
    pos[config.paths()[0]] = np.arange(C) / max(C - 1, 1)
    feats = np.stack([rate / rate.max(), rate.min() / rate, sram_f, xy[:, 0] / span[0],
                      xy[:, 1] / span[1], mh / max(mh.max(), 1e-12), pos], axis=1)
    return feats.astype(np.float32)


N_GRAPH_BINS = 8


def graph_profile(problem: MCMProblem) -> np.ndarray:
    """(16,) float32: shares of the total work and of the total memory in each eighth of
    the topological order (by rank): where along a pipeline the graph is heavy, which
    decides whether fast chips should come early or late. O(n)."""
    g = problem.graph
    rank = np.empty(g.n)
    rank[g.topological_order()] = np.arange(g.n) / max(g.n, 1)
    b = np.minimum((rank * N_GRAPH_BINS).astype(int), N_GRAPH_BINS - 1)
    out = []
    for x in (g.work, g.mem):
        tot = float(x.sum())
        h = np.bincount(b, weights=x, minlength=N_GRAPH_BINS)
        out.append(h / tot if tot > 0 else np.full(N_GRAPH_BINS, 1.0 / N_GRAPH_BINS))
    return np.concatenate(out).astype(np.float32)


class KeyPolicy(_Trunk):
    """GNN + attention policy emitting a *priority key* per node and per chip.

    The same trunk as :class:`ChipPolicy` (MLP embedding, ``rounds`` of predecessor /
    successor message passing, one self-attention layer). Heads: a key mean per node
    ``mu_v = rank_v + 0.1 delta_v`` (``rank_v`` = the node's topological position
    feature, ``delta_v`` learned and initialised to 0, so the untrained policy proposes
    BFS-like orders); a key mean per chip ``nu_c = pos_c + eps_c`` from the chip's
    features (:func:`chip_features`) and the mean-pooled graph embedding (``pos_c`` =
    its position on the package's first candidate path, so the untrained policy
    proposes that path); the chip head also sees the graph's work / memory profile along
    its topological order (:func:`graph_profile`); learned log spreads for node keys and
    chip keys. Keys decode by
    Kahn's smallest-key-first order, chips by increasing key, and the MCM slicing DP
    (:meth:`pipecore.mcm.MCMProblem.decode`): every sample is a valid partition, no
    repair. Size-agnostic in the graph and in the package (any C).
    """

    def __init__(self, hidden: int = 64, rounds: int = 3, heads: int = 4,
                 sigma: float = 0.02, chip_sigma: float = 0.3):
        super().__init__()
        if not (sigma > 0 and chip_sigma > 0):
            raise ValueError(f"sigma and chip_sigma must be > 0, got {sigma!r}, {chip_sigma!r}")
        self.hparams: dict[str, Any] = dict(hidden=int(hidden), rounds=int(rounds),
                                            heads=int(heads), sigma=float(sigma),
                                            chip_sigma=float(chip_sigma), kind="keys")
        d = hidden
        self._build_trunk(d, rounds, heads)
        self.key = nn.Linear(d, 1)
        self.chip_embed = nn.Sequential(nn.Linear(N_CHIP_FEATURES, d), nn.ReLU())
        self.glob_embed = nn.Sequential(nn.Linear(2 * N_GRAPH_BINS, d), nn.ReLU())
        self.chip_key = nn.Sequential(nn.Linear(3 * d, d), nn.ReLU(), nn.Linear(d, 1))
        for lin in (self.key, self.chip_key[2]):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.log_sigma = nn.Parameter(torch.tensor(float(np.log(sigma))))
        self.log_chip_sigma = nn.Parameter(torch.tensor(float(np.log(chip_sigma))))

    def forward(self, t: GraphTensors):
        """(node key means (n,), log sigma, chip key means (C,), chip log sigma)."""
        h = self._trunk(t)
        mu = t.x[:, RANK_FEATURE] + 0.1 * self.key(h)[:, 0]
        ce = self.chip_embed(t.chips)
        g = h.mean(dim=0).expand(ce.shape[0], -1)
        gp = self.glob_embed(t.profile).expand(ce.shape[0], -1)
        nu = t.chips[:, CHIP_POS_FEATURE] + self.chip_key(torch.cat([ce, g, gp], dim=1))[:, 0]
        return mu, self.log_sigma.clamp(-7.0, 0.0), nu, self.log_chip_sigma.clamp(-7.0, 0.0)


CHIP_POS_FEATURE = 6  # index of the first-path position in chip_features
RANK_FEATURE = 7  # index of the topological position in node_features


def make_policy(hparams: dict) -> nn.Module:
    """Rebuild a policy of either kind from its ``hparams``."""
    hp = dict(hparams)
    if hp.pop("kind", "chips") == "keys":
        return KeyPolicy(**hp)
    return ChipPolicy(**hp)
