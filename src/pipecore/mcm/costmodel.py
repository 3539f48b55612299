"""Cost model of a multi-chip module (MCM): chiplets on a ring or a 2-D mesh.

A package has ``C`` chiplets numbered ``0..C-1`` (ring order, or a snake through the
mesh so consecutive chips are neighbours), each with its own compute rate and SRAM.
A partition puts every op on a chip; colocation groups share a chip and each chip's
SRAM holds its ops' memory. Data flow is constrained by the package's ``order``:

- ``"chain"``: data flows forward along the chip numbering (``chip[u] <= chip[v]``
  for every edge), the classic pipeline over a fixed chip order;
- ``"free"``: the chips form a pipeline in *any* order: a partition is valid iff its
  chip-level graph (an arc s -> t when a tensor goes from chip s to chip t) is
  acyclic. Which stage runs on which chip (the *chip path*) is then part of the
  solution, and with per-chip rates and hop latency on a mesh it matters.

The time a chip spends per pipeline step is ::

    cost[c] = sum_{v on c} work[v] / rate[c]                            compute
            + sum_{u in In(c)}  (comm[u] / bandwidth + hop_latency * hops(chip(u), c))
            + sum_{u in Out(c)} comm[u] / bandwidth                      link traffic

where ``In(c)`` are the tensors chip c receives and ``Out(c)`` those it sends, each
counted once per (tensor, chip) (a tensor is multicast); tensors with ``comm == 0``
carry no data and cost nothing. Units follow the graph: ``work`` is the op's time on
a reference chip (``rate = 1``), ``comm`` the tensor's transfer time over a
reference link (``bandwidth = 1``), ``mem`` the bytes it keeps in SRAM. Routing is
cut-through (intermediate chips are not charged). Throughput is
``1 / max_c cost[c]``; an invalid partition (backward edge or chip cycle, split group,
SRAM overflow) has throughput 0. With one unit-rate chip per stage, unit bandwidth and
zero latency, ``cost`` equals pipecore's stage cost (DESIGN.md section 1).
"""
from __future__ import annotations

import math
from typing import Any
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache

import numpy as np

from .. import errors
from .._native import _mcm
from ..algorithms.slicegraph import topo_members
from ..graph import Graph

__all__ = ["MCMConfig", "MCMProblem", "PRESETS", "preset"]

PRESETS = ("ring-4", "ring-8", "ring-16", "mesh-2x2", "mesh-2x4", "mesh-4x4", "mesh-2x4-het",
           "mesh-4x4-het")
ORDERS = ("chain", "free")
MAX_PATHS = 64


def _per_chip(name: str, value, C: int, *, allow_inf: bool = False) -> np.ndarray:
    """A per-chip float array from a scalar or C values; > 0 and finite (or inf if allowed)."""
    try:
        arr = np.array(np.broadcast_to(np.asarray(value, dtype=np.float64), (C,)))
    except (TypeError, ValueError):
        raise errors.InvalidCostError(
            f"{name}: expected a number or {C} numbers, got {value!r}") from None
    if np.isnan(arr).any() or (not allow_inf and np.isinf(arr).any()):
        raise errors.InvalidCostError(f"{name}: values must be finite numbers")
    if (arr <= 0).any():
        raise errors.InvalidCostError(f"{name}: values must be > 0, got {arr.tolist()}")
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True)
class MCMConfig:
    """An MCM package.

    Parameters
    ----------
    n_chips : int
        Number of chiplets C (>= 1).
    topology : {"ring", "mesh"}
        Ring: hop distance ``min(|i-j|, C-|i-j|)``. Mesh: ``mesh_shape = (rows, cols)``
        with chips numbered in snake order; hop distance is the Manhattan distance.
    compute_rate : float or array (C,)
        Ops' speed relative to the reference chip (time = work / rate).
    sram : float or array (C,)
        SRAM capacity per chip in the graph's ``mem`` units (``inf`` = unlimited).
    link_bandwidth : float
        Relative link bandwidth (transfer time = comm / bandwidth).
    hop_latency : float
        Extra time per hop for every tensor a chip receives.
    order : {"chain", "free"}
        Data flows along the chip numbering, or along any chip path (see module
        docstring). ``"free"`` needs ``n_chips <= 64``.
    """

    n_chips: int
    topology: str = "ring"
    compute_rate: object = 1.0
    sram: object = float("inf")
    link_bandwidth: float = 1.0
    hop_latency: float = 0.0
    mesh_shape: tuple | None = None
    name: str = ""
    order: str = "chain"
    rate: np.ndarray = field(init=False, repr=False, compare=False)
    sram_cap: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        C = self.n_chips
        if isinstance(C, bool) or not isinstance(C, (int, np.integer)) or C < 1:
            raise errors.InvalidStageCountError(f"n_chips must be an integer >= 1, got {C!r}")
        if self.order not in ORDERS:
            raise ValueError(f"order must be 'chain' or 'free', got {self.order!r}")
        if self.order == "free" and C > 64:
            raise ValueError(f"order='free' supports at most 64 chips, got {C}")
        if self.topology not in ("ring", "mesh"):
            raise ValueError(f"topology must be 'ring' or 'mesh', got {self.topology!r}")
        if self.topology == "mesh":
            shape = self.mesh_shape
            if shape is None:
                r = int(np.floor(np.sqrt(C)))
                while C % r:
                    r -= 1
                shape = (r, C // r)
            shape = tuple(int(x) for x in shape)
            if len(shape) != 2 or shape[0] * shape[1] != C or min(shape) < 1:
                raise ValueError(f"mesh_shape {self.mesh_shape!r} does not hold {C} chips")
            object.__setattr__(self, "mesh_shape", shape)
        if not (np.isfinite(self.link_bandwidth) and self.link_bandwidth > 0):
            raise errors.InvalidCostError(f"link_bandwidth must be finite and > 0, got {self.link_bandwidth!r}")
        if not (np.isfinite(self.hop_latency) and self.hop_latency >= 0):
            raise errors.InvalidCostError(f"hop_latency must be finite and >= 0, got {self.hop_latency!r}")
        object.__setattr__(self, "rate", _per_chip("compute_rate", self.compute_rate, C))
        object.__setattr__(self, "sram_cap", _per_chip("sram", self.sram, C, allow_inf=True))

    # ------------------------------------------------------------------ topology
    def coords(self) -> np.ndarray:
        """(C, 2) mesh coordinates in snake order (ring: (0, i))."""
        C = self.n_chips
        if self.topology == "ring":
            return np.stack([np.zeros(C, dtype=np.int64), np.arange(C)], axis=1)
        assert self.mesh_shape is not None, "a mesh has a shape"
        rows, cols = self.mesh_shape
        i = np.arange(C)
        r = i // cols
        c = np.where(r % 2 == 0, i % cols, cols - 1 - i % cols)
        return np.stack([r, c], axis=1)

    def hops(self) -> np.ndarray:
        """(C, C) hop distances between chips."""
        C = self.n_chips
        if self.topology == "ring":
            d = np.abs(np.arange(C)[:, None] - np.arange(C)[None, :])
            return np.minimum(d, C - d)
        xy = self.coords()
        return np.abs(xy[:, None, :] - xy[None, :, :]).sum(axis=2)

    @property
    def lathops(self) -> np.ndarray:
        """Flattened (C*C,) matrix hop_latency * hops, as the kernels take it."""
        return np.ascontiguousarray((self.hop_latency * self.hops()).ravel(), dtype=np.float64)

    def paths(self) -> np.ndarray:
        """(K, C) candidate chip paths (stage position -> chip) for the slicing decoders.

        ``chain``: the identity only. ``free``: every Hamiltonian path of the
        neighbour graph (hop distance 1; both directions, every start), in DFS order,
        thinned evenly to at most ``MAX_PATHS`` (a 2x4 mesh has 28, a 4x4 mesh 552,
        a ring 2C). Any permutation is a valid path; these are the ones without
        multi-hop links between consecutive stages. Cached."""
        return _paths(self.n_chips, self.order, self.topology, self.mesh_shape)

    def with_sram(self, sram) -> "MCMConfig":
        return replace(self, sram=sram)

    def sized_for(self, graph: Graph, slack: float = 1.25,
                  latency_per_comm: float | None = None) -> "MCMConfig":
        """A copy with ``slack * total_mem / C`` SRAM on every chip (never below the largest
        colocation class), a convenient way to make memory a real constraint; with
        ``latency_per_comm``, also ``hop_latency = latency_per_comm * mean comm`` of the
        graph's non-empty tensors (so latency is on the graph's time scale)."""
        con = graph.contract()
        need = max(float(graph.mem.sum()) * slack / self.n_chips, float(con.graph.mem.max()))
        kw: dict = {"sram": need}
        if latency_per_comm is not None:
            if not (np.isfinite(latency_per_comm) and latency_per_comm >= 0):
                raise errors.InvalidCostError(
                    f"latency_per_comm must be finite and >= 0, got {latency_per_comm!r}")
            nz = graph.comm[graph.comm > 0]
            kw["hop_latency"] = float(latency_per_comm * nz.mean()) if nz.size else 0.0
        return replace(self, **kw)

    def describe(self) -> str:
        rows, cols = self.mesh_shape or (1, self.n_chips)
        topo = f"ring of {self.n_chips}" if self.topology == "ring" else f"{rows}x{cols} mesh"
        return (f"MCM {self.name or topo}: {topo} chiplets ({self.order} order), rate "
                f"{_fmt_arr(self.rate)}, SRAM {_fmt_arr(self.sram_cap)}, link bandwidth "
                f"{self.link_bandwidth:g}, hop latency {self.hop_latency:g}")


def _fmt_arr(a: np.ndarray) -> str:
    return f"{a[0]:g}" if np.all(a == a[0]) else "[" + ", ".join(f"{x:g}" for x in a) + "]"


def _hamiltonian_paths(hops: np.ndarray, limit: int = 100_000) -> list:
    C = hops.shape[0]
    nbr = [np.flatnonzero(hops[c] == 1).tolist() for c in range(C)]
    out: list = []
    stack = [([s], 1 << s) for s in reversed(range(C))]
    while stack and len(out) < limit:
        path, used = stack.pop()
        if len(path) == C:
            out.append(path)
            continue
        for c in reversed(nbr[path[-1]]):
            if not used >> c & 1:
                stack.append((path + [c], used | 1 << c))
    return out


@lru_cache(maxsize=64)
def _paths(C: int, order: str, topology: str, mesh_shape) -> np.ndarray:
    if order == "chain" or C == 1:
        out = np.arange(C, dtype=np.int32)[None, :]
    else:
        cfg = MCMConfig(C, topology=topology, mesh_shape=mesh_shape)
        found = _hamiltonian_paths(cfg.hops()) or [list(range(C))]
        if len(found) > MAX_PATHS:
            pick = np.linspace(0, len(found) - 1, MAX_PATHS).round().astype(int)
            found = [found[i] for i in pick]
        out = np.asarray(found, dtype=np.int32)
    out.flags.writeable = False
    return out


def _het_rates(rows: int, cols: int) -> list:
    """Big/little chiplets: rate 2 and 0.5 at alternate corners, 1 elsewhere (snake numbering)."""
    grid = np.ones((rows, cols))
    grid[0, 0] = grid[rows - 1, cols - 1] = 2.0
    grid[0, cols - 1] = grid[rows - 1, 0] = 0.5
    cfg = MCMConfig(rows * cols, topology="mesh", mesh_shape=(rows, cols))
    xy = cfg.coords()
    return grid[xy[:, 0], xy[:, 1]].tolist()


def preset(name: str, **overrides) -> MCMConfig:
    """A named package: ``ring-4/8/16``, ``mesh-2x2/2x4/4x4``, ``mesh-2x4-het``, ``mesh-4x4-het``.

    Presets fix the topology and default link parameters (unit compute rate, unit
    bandwidth, hop latency 0.01 time units, chain order); SRAM is unlimited unless
    given, since it depends on the graph's units (see :meth:`MCMConfig.sized_for`).
    The ``-het`` meshes are heterogeneous with a free chip order: big chiplets (rate 2)
    at two opposite corners, little ones (rate 0.5) at the other two, rate 1 elsewhere,
    so the chip path and the hop distances are part of the problem. Any field can be
    overridden.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown MCM preset {name!r}; choose from {', '.join(PRESETS)}")
    kind, size = name.split("-")[:2]
    kw: dict = dict(hop_latency=0.01, name=name)
    if kind == "ring":
        kw.update(n_chips=int(size), topology="ring")
    else:
        r, c = (int(x) for x in size.split("x"))
        kw.update(n_chips=r * c, topology="mesh", mesh_shape=(r, c))
        if name.endswith("-het"):
            kw.update(compute_rate=_het_rates(r, c), order="free")
    kw.update(overrides)
    return MCMConfig(**kw)


class MCMProblem:
    """A graph placed on an MCM: the arrays every kernel needs, built once.

    Holds the original graph (costs are always evaluated on it), its colocation
    quotient (structure for repair and moves) and the native
    :class:`~pipecore._native._mcm.Kernel`. ``evaluate`` scores one assignment or a
    batch of them in native code.

    Work accounting: ``unit = n + m`` cost-model steps make one *evaluation* (a full
    O(n + m) scoring of one partition); incremental and partial evaluations (move
    deltas, the slicing decoder's segment sweeps) are charged their steps (see
    :mod:`pipecore._native._mcm`), so every search is held to the same cost-model work.
    """

    def __init__(self, graph: Graph, config: MCMConfig):
        if not isinstance(graph, Graph):
            raise TypeError(f"graph must be a pipecore.Graph, got {type(graph).__name__}")
        if not isinstance(config, MCMConfig):
            raise TypeError(f"config must be an MCMConfig, got {type(config).__name__}")
        self.graph = graph
        self.config = config
        self.C = config.n_chips
        con = graph.contract()
        self.contraction = con
        q = con.graph
        self.quotient = q
        self.node_map = np.ascontiguousarray(con.node_map, dtype=np.int32)
        self.rep = np.ascontiguousarray(con.member_idx[con.member_ptr[:-1]], dtype=np.int32)
        self.qsize = np.diff(con.member_ptr).astype(np.float64)
        self.qtopo = np.ascontiguousarray(q.topological_order(), dtype=np.int32)
        self.inv_rate = np.ascontiguousarray(1.0 / config.rate)
        self.inv_bw = 1.0 / float(config.link_bandwidth)
        self.lathops = config.lathops
        self.sram = np.ascontiguousarray(config.sram_cap, dtype=np.float64)
        self.unit = float(graph.n + graph.m)
        self.paths = config.paths()
        self._member_idx = topo_members(con)
        self.kernel = _mcm.Kernel(graph, con, self._member_idx, self.inv_rate, self.inv_bw,
                                  self.lathops, self.sram, config.order == "free")
        self._slicer: Any = None

    @property
    def free_order(self) -> bool:
        return self.config.order == "free"

    # ------------------------------------------------------------------ feasibility
    def check_feasible(self, use_all: bool = False) -> None:
        """Raise InfeasibleMemoryError on necessary conditions no partition can meet."""
        qmem = self.quotient.mem
        cap = self.sram
        if qmem.max() > cap.max() * (1 + 1e-12):
            raise errors.InfeasibleMemoryError(
                f"a colocation class needs mem {qmem.max():g} > the largest SRAM {cap.max():g}")
        if np.isfinite(cap).all() and qmem.sum() > cap.sum() * (1 + 1e-12):
            raise errors.InfeasibleMemoryError(
                f"total mem {qmem.sum():g} > total SRAM {cap.sum():g}")
        if use_all and self.quotient.n < self.C:
            raise errors.InfeasibleMemoryError(
                f"use_all_chips needs >= {self.C} placeable units, the graph has {self.quotient.n}")

    # ------------------------------------------------------------------ evaluation
    def _chips(self, chips) -> np.ndarray:
        arr = np.asarray(chips)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.graph.n:
            raise errors.InvalidPartitionError(
                f"expected one chip per node (shape (B, {self.graph.n})), got {np.shape(chips)}")
        return np.ascontiguousarray(arr, dtype=np.int32)

    def evaluate(self, chips) -> tuple[np.ndarray, np.ndarray]:
        """(bottleneck (B,), valid (B,) bool) for an assignment (n,) or a batch (B, n).

        O(B (n + m + C^2)) in one native call. Invalid assignments still get their
        bottleneck (inf when a chip index is out of range); use :meth:`throughput`.
        """
        arr = self._chips(chips)
        B = arr.shape[0]
        bott = np.empty(B)
        valid = np.empty(B, dtype=np.int8)
        self.kernel.evaluate_batch(arr, bott, valid)
        return bott, valid.astype(bool)

    def throughput(self, chips) -> np.ndarray:
        """1 / bottleneck per assignment, 0 for invalid ones (inf for an all-zero-cost graph)."""
        bott, valid = self.evaluate(chips)
        with np.errstate(divide="ignore"):
            thr = np.where(valid, 1.0 / bott, 0.0)
        return thr

    def breakdown(self, chip) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(compute, link traffic, mem) per chip for one assignment (n,)."""
        arr = self._chips(chip)[0]
        if arr.min() < 0 or arr.max() >= self.C:
            raise errors.InvalidPartitionError(f"chip index outside 0..{self.C - 1}")
        comp, traffic = np.empty(self.C), np.empty(self.C)
        self.kernel.breakdown(arr, comp, traffic)
        mem = np.bincount(arr, weights=self.graph.mem, minlength=self.C)
        return comp, traffic, mem

    def chip_costs(self, chip) -> np.ndarray:
        comp, traffic, _ = self.breakdown(chip)
        return comp + traffic

    def chip_order(self, chip) -> np.ndarray | None:
        """A chip path under which ``chip`` flows forward (used chips in a topological order
        of its chip graph, then the unused ones), or None if the chip graph has a cycle."""
        arr = self._chips(chip)[0]
        g = self.graph
        cross = arr[g.src] != arr[g.dst]
        adj = np.zeros((self.C, self.C), dtype=bool)
        adj[arr[g.src][cross], arr[g.dst][cross]] = True
        indeg = adj.sum(axis=0)
        order, ready = [], [c for c in range(self.C) if indeg[c] == 0]
        while ready:
            c = ready.pop(0)
            order.append(c)
            for t in np.flatnonzero(adj[c]):
                indeg[t] -= 1
                if indeg[t] == 0:
                    ready.append(int(t))
        return np.asarray(order, dtype=np.int32) if len(order) == self.C else None

    def violations(self, chip) -> list[str]:
        """Why one assignment is invalid (empty when valid)."""
        arr = self._chips(chip)[0]
        out = []
        if arr.min() < 0 or arr.max() >= self.C:
            return [f"chip index outside 0..{self.C - 1}"]
        g = self.graph
        if self.free_order:
            if self.chip_order(arr) is None:
                out.append("the chip graph has a cycle (no chip order makes every edge forward)")
        else:
            back = np.flatnonzero(arr[g.src] > arr[g.dst])
            if back.size:
                u, v = int(g.src[back[0]]), int(g.dst[back[0]])
                out.append(f"{back.size} edges go backward, e.g. {g.name(u)!r} (chip {arr[u]}) -> "
                           f"{g.name(v)!r} (chip {arr[v]})")
        split = np.flatnonzero(arr != arr[self.rep[self.node_map]])
        if split.size:
            out.append(f"{split.size} nodes are not on their colocation class's chip")
        mem = np.bincount(arr, weights=g.mem, minlength=self.C)
        for c in np.flatnonzero(mem > self.sram * (1 + 1e-12)):
            out.append(f"chip {int(c)} uses mem {mem[c]:g} > SRAM {self.sram[c]:g}")
        return out

    @cached_property
    def reference_chips(self) -> np.ndarray:
        """A simple valid-by-construction assignment: a topological order cut at equal
        work-per-rate quantiles along the first chip path (ignores SRAM), used to
        normalise rewards and to start local search."""
        q = self.quotient
        order = self.qtopo
        path = self.paths[0]
        w = q.work[order]
        total = w.sum()
        rate = self.config.rate[path]
        share = np.cumsum(rate) / rate.sum()
        if total <= 0:
            pos = (np.arange(q.n) + 0.5) / q.n
        else:
            pos = (np.cumsum(w) - 0.5 * w) / total
        chip_q = np.empty(q.n, dtype=np.int32)
        chip_q[order] = path[np.minimum(np.searchsorted(share, pos, side="left"), self.C - 1)]
        return chip_q[self.node_map]

    def expand(self, chip_q) -> np.ndarray:
        """Chip per original node from a chip per quotient node (works on batches too)."""
        return np.ascontiguousarray(np.asarray(chip_q, dtype=np.int32)[..., self.node_map])

    # ------------------------------------------------------------------ decoding
    def orders_from_keys(self, keys) -> np.ndarray:
        """(B, n) topological orders of the original nodes from (B, units) priority keys:
        Kahn's algorithm on the quotient emitting the ready class with the smallest key
        (SliceGraph's decoder, :class:`pipecore._native._slicing.Slicer`), classes expanded."""
        keys = np.ascontiguousarray(np.atleast_2d(keys), dtype=np.float64)
        if keys.shape[1] != self.quotient.n:
            raise errors.InvalidPartitionError(
                f"keys: expected shape (B, {self.quotient.n}), got {keys.shape}")
        if self._slicer is None:
            from .._native._slicing import Slicer

            self._slicer = Slicer(self.graph, self.contraction, self.C, self.graph.mem, math.inf, 1)
        return np.stack([self._slicer.order_from_keys(k) for k in keys]).astype(np.int32)

    def perms_from_keys(self, chip_keys) -> np.ndarray:
        """(B, C) chip paths from (B, C) chip keys: stage position t runs on the chip with
        the t-th smallest key (any permutation; the identity for a chain order)."""
        ck = np.atleast_2d(np.asarray(chip_keys, dtype=np.float64))
        if ck.shape[1] != self.C:
            raise ValueError(f"chip keys: expected shape (B, {self.C}), got {ck.shape}")
        if not self.free_order:
            return np.tile(np.arange(self.C, dtype=np.int32), (ck.shape[0], 1))
        return np.ascontiguousarray(np.argsort(ck, axis=1, kind="stable"), dtype=np.int32)

    def decode(self, keys, perms, *, dp: bool = True, ub: float = math.inf,
               use_all_chips: bool = False):
        """Decode (B, units) priority keys with (B, C) chip paths into valid partitions.

        Each key vector gives a topological order (Kahn, smallest key first); row b's
        stages run on chips ``perms[b, 0], perms[b, 1], ...`` (a chain package always
        uses the chip numbering). With ``dp=False`` the order is cut at rate-weighted work
        quantiles (SRAM-aware; one evaluation); with ``dp=True`` the optimal slicing of
        the order onto the path replaces the cut when better (exact for zero hop latency;
        latency in the DP is charged as if every tensor came from the previous stage, the
        result is then evaluated exactly). ``ub`` only prunes: a DP that cannot beat it
        keeps the cut. Returns ``(chips (B, n), bottleneck (B,), evaluations (B,))``, the
        cost-model work of each decode in evaluations (steps / (n + m)); bottleneck is
        inf when no valid partition was found (SRAM).
        """
        keys = np.atleast_2d(keys)
        perms = np.atleast_2d(np.asarray(perms))
        if perms.shape != (keys.shape[0], self.C) or not (
                np.sort(perms, axis=1) == np.arange(self.C)).all():
            raise ValueError(f"perms: expected {keys.shape[0]} permutations of 0..{self.C - 1}")
        if not self.free_order:
            perms = np.tile(np.arange(self.C), (keys.shape[0], 1))
        orders = self.orders_from_keys(keys)
        return self.decode_orders(orders, perms, dp=dp, ub=ub, use_all_chips=use_all_chips)

    def decode_orders(self, orders, perms, *, dp: bool = True, ub: float = math.inf,
                      use_all_chips: bool = False):
        """:meth:`decode` for explicit (B, n) topological orders (classes contiguous) and
        (B, C) chip paths (not checked: the kernel trusts them)."""
        orders = np.ascontiguousarray(np.atleast_2d(orders), dtype=np.int32)
        perms = np.ascontiguousarray(np.atleast_2d(perms), dtype=np.int32)
        B = orders.shape[0]
        chips = np.empty((B, self.graph.n), dtype=np.int32)
        val, steps = np.empty(B), np.empty(B)
        self.kernel.decode_orders(orders, perms, chips, val, steps, bool(dp), float(ub),
                                  bool(use_all_chips))
        return chips, val, steps / self.unit

    def __repr__(self) -> str:
        return f"MCMProblem(n={self.graph.n}, units={self.quotient.n}, chips={self.C})"
