"""Cost model of a multi-chip module (MCM): chiplets on a ring or a 2-D mesh.

A package has ``C`` chiplets ordered ``0..C-1`` along the pipeline (ring order, or
a snake through the mesh so consecutive chips are neighbours). A partition puts
every op on a chip; data must flow forward along the chip order
(``chip[u] <= chip[v]`` for every edge), colocation groups share a chip and each
chip's SRAM holds its ops' memory. The time a chip spends per pipeline step is ::

    cost[c] = sum_{v on c} work[v] / rate[c]                            compute
            + sum_{u in In(c)}  (comm[u] / bandwidth + hop_latency * hops(chip(u), c))
            + sum_{u in Out(c)} comm[u] / bandwidth                      link traffic

where ``In(c)`` are the tensors chip c receives and ``Out(c)`` those it sends, each
counted once per (tensor, chip) (a tensor is multicast); tensors with ``comm == 0``
carry no data and cost nothing. Units follow the graph: ``work`` is the op's time on
a reference chip (``rate = 1``), ``comm`` the tensor's transfer time over a
reference link (``bandwidth = 1``), ``mem`` the bytes it keeps in SRAM. Routing is
cut-through (intermediate chips are not charged). Throughput is
``1 / max_c cost[c]``; an invalid partition (backward edge, split group, SRAM
overflow) has throughput 0. With one unit-rate chip per stage, unit bandwidth and
zero latency, ``cost`` equals pipecore's stage cost (DESIGN.md section 1).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from .. import errors
from .._native import _mcm
from ..graph import Graph

__all__ = ["MCMConfig", "MCMProblem", "PRESETS", "preset"]

PRESETS = ("ring-4", "ring-8", "ring-16", "mesh-2x2", "mesh-2x4", "mesh-4x4")


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
    """

    n_chips: int
    topology: str = "ring"
    compute_rate: object = 1.0
    sram: object = float("inf")
    link_bandwidth: float = 1.0
    hop_latency: float = 0.0
    mesh_shape: tuple | None = None
    name: str = ""
    rate: np.ndarray = field(init=False, repr=False, compare=False)
    sram_cap: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        C = self.n_chips
        if isinstance(C, bool) or not isinstance(C, (int, np.integer)) or C < 1:
            raise errors.InvalidStageCountError(f"n_chips must be an integer >= 1, got {C!r}")
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

    def with_sram(self, sram) -> "MCMConfig":
        return replace(self, sram=sram)

    def sized_for(self, graph: Graph, slack: float = 1.25) -> "MCMConfig":
        """A copy with ``slack * total_mem / C`` SRAM on every chip (never below the largest
        colocation class), a convenient way to make memory a real constraint."""
        con = graph.contract()
        need = max(float(graph.mem.sum()) * slack / self.n_chips, float(con.graph.mem.max()))
        return replace(self, sram=need)

    def describe(self) -> str:
        topo = (f"ring of {self.n_chips}" if self.topology == "ring"
                else f"{self.mesh_shape[0]}x{self.mesh_shape[1]} mesh")
        return (f"MCM {self.name or topo}: {topo} chiplets, rate {_fmt_arr(self.rate)}, "
                f"SRAM {_fmt_arr(self.sram_cap)}, link bandwidth {self.link_bandwidth:g}, "
                f"hop latency {self.hop_latency:g}")


def _fmt_arr(a: np.ndarray) -> str:
    return f"{a[0]:g}" if np.all(a == a[0]) else "[" + ", ".join(f"{x:g}" for x in a) + "]"


def preset(name: str, **overrides) -> MCMConfig:
    """A named package: ``ring-4``, ``ring-8``, ``ring-16``, ``mesh-2x2``, ``mesh-2x4``, ``mesh-4x4``.

    Presets fix the topology and default link parameters (unit compute rate, unit
    bandwidth, hop latency 0.01 time units); SRAM is unlimited unless given, since
    it depends on the graph's units (see :meth:`MCMConfig.sized_for`). Any field can
    be overridden.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown MCM preset {name!r}; choose from {', '.join(PRESETS)}")
    kind, size = name.split("-")
    kw: dict = dict(hop_latency=0.01, name=name)
    if kind == "ring":
        kw.update(n_chips=int(size), topology="ring")
    else:
        r, c = (int(x) for x in size.split("x"))
        kw.update(n_chips=r * c, topology="mesh", mesh_shape=(r, c))
    kw.update(overrides)
    return MCMConfig(**kw)


class MCMProblem:
    """A graph placed on an MCM: the arrays every kernel needs, built once.

    Holds the original graph (costs are always evaluated on it) and its colocation
    quotient (structure for repair and moves). ``evaluate`` scores one assignment or
    a batch of them in native code.
    """

    def __init__(self, graph: Graph, config: MCMConfig):
        if not isinstance(graph, Graph):
            raise TypeError(f"graph must be a pipecore.Graph, got {type(graph).__name__}")
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

        O(B (n + m + C)) in one native call. Invalid assignments still get their
        bottleneck (inf when a chip index is out of range); use :meth:`throughput`.
        """
        arr = self._chips(chips)
        g = self.graph
        B = arr.shape[0]
        bott = np.empty(B)
        valid = np.empty(B, dtype=np.int8)
        _mcm.evaluate_batch(g.succ_ptr, g.succ_idx, g.src, g.dst, g.work, g.comm, g.mem,
                            self.node_map, self.rep, arr, self.inv_rate, self.inv_bw,
                            self.lathops, self.sram, bott, valid)
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
        g = self.graph
        _mcm.chip_breakdown(g.succ_ptr, g.succ_idx, g.work, g.comm, arr, self.inv_rate,
                            self.inv_bw, self.lathops, comp, traffic)
        mem = np.bincount(arr, weights=g.mem, minlength=self.C)
        return comp, traffic, mem

    def chip_costs(self, chip) -> np.ndarray:
        comp, traffic, _ = self.breakdown(chip)
        return comp + traffic

    def violations(self, chip) -> list[str]:
        """Why one assignment is invalid (empty when valid)."""
        arr = self._chips(chip)[0]
        out = []
        if arr.min() < 0 or arr.max() >= self.C:
            return [f"chip index outside 0..{self.C - 1}"]
        g = self.graph
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
        work-per-rate quantiles (ignores SRAM), used to normalise rewards."""
        q = self.quotient
        order = self.qtopo
        w = q.work[order]
        total = w.sum()
        share = np.cumsum(self.config.rate) / self.config.rate.sum()
        if total <= 0:
            pos = (np.arange(q.n) + 0.5) / q.n
        else:
            pos = (np.cumsum(w) - 0.5 * w) / total
        chip_q = np.empty(q.n, dtype=np.int32)
        chip_q[order] = np.minimum(np.searchsorted(share, pos, side="right"), self.C - 1)
        return chip_q[self.node_map]

    def expand(self, chip_q) -> np.ndarray:
        """Chip per original node from a chip per quotient node (works on batches too)."""
        return np.ascontiguousarray(np.asarray(chip_q, dtype=np.int32)[..., self.node_map])

    def __repr__(self) -> str:
        return f"MCMProblem(n={self.graph.n}, units={self.quotient.n}, chips={self.C})"
