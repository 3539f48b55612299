"""Partitions and the cost model (DESIGN.md section 1).

A :class:`Partition` assigns a stage ``0..k-1`` to every node. Its stage cost is
compute plus every tensor it receives plus every tensor it sends, each counted
once per stage; the bottleneck is the largest stage cost. Evaluation runs in the
native kernel in O(n + m + k).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import errors
from ._native import _cost
from .graph import Graph, check_k

__all__ = ["Partition", "StageBreakdown", "evaluate_bottleneck"]


@dataclass(frozen=True)
class StageBreakdown:
    """Per-stage cost components (arrays of length k)."""

    work: np.ndarray
    recv: np.ndarray
    send: np.ndarray
    mem: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.work + self.recv + self.send


def _stage_array(graph: Graph, stage, k: int) -> np.ndarray:
    arr = np.asarray(stage)
    if arr.shape != (graph.n,):
        raise errors.InvalidPartitionError(
            f"stage vector: expected one stage per node (shape ({graph.n},)), got {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise errors.InvalidPartitionError("stage vector: stages must be integers")
    arr = np.ascontiguousarray(arr, dtype=np.int32)
    bad = (arr < 0) | (arr >= k)
    if bad.any():
        v = int(np.flatnonzero(bad)[0])
        raise errors.InvalidPartitionError(
            f"node {graph.name(v)!r} has stage {int(arr[v])}, outside 0..{k - 1}")
    return arr


def evaluate_bottleneck(graph: Graph, stage: np.ndarray, k: int) -> float:
    """Bottleneck of a raw int32 stage vector (no validation; for inner loops)."""
    return _cost.bottleneck(graph.succ_ptr, graph.succ_idx, graph.work, graph.comm, stage, k)


class Partition:
    """A k-stage assignment of a graph's nodes.

    Parameters
    ----------
    graph : Graph
    stage : array_like of int, shape (n,)
        Stage of each node, in ``0..k-1``.
    k : int, optional
        Number of stages (default ``max(stage) + 1``). Stages may be empty.
    """

    __slots__ = ("graph", "stage", "k", "_breakdown")

    def __init__(self, graph: Graph, stage, k: int | None = None):
        if k is None:
            arr = np.asarray(stage)
            k = int(arr.max()) + 1 if arr.size else 1
        self.k = check_k(k)
        self.graph = graph
        self.stage = _stage_array(graph, stage, self.k)
        self.stage.flags.writeable = False
        self._breakdown = None

    @classmethod
    def from_stages(cls, graph: Graph, stages, k: int | None = None) -> "Partition":
        """Build from a list of node lists (indices or names), one per stage."""
        index = {name: i for i, name in enumerate(graph.names)}
        stage = np.full(graph.n, -1, dtype=np.int64)
        for s, nodes in enumerate(stages):
            for v in nodes:
                i = v if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else index.get(v)
                if i is None or not 0 <= i < graph.n:
                    raise errors.UnknownNodeError(f"stage {s} names unknown node {v!r}")
                if stage[i] >= 0:
                    raise errors.InvalidPartitionError(f"node {graph.name(i)!r} is in two stages")
                stage[i] = s
        missing = np.flatnonzero(stage < 0)
        if missing.size:
            raise errors.InvalidPartitionError(f"node {graph.name(int(missing[0]))!r} has no stage")
        return cls(graph, stage, k if k is not None else max(len(stages), 1))

    # ------------------------------------------------------------------ costs
    def breakdown(self) -> StageBreakdown:
        """Per-stage work, received and sent communication, and memory (cached)."""
        if self._breakdown is None:
            k = self.k
            w, r, s = np.empty(k), np.empty(k), np.empty(k)
            g = self.graph
            _cost.stage_breakdown(g.succ_ptr, g.succ_idx, g.work, g.comm, self.stage, w, r, s)
            mem = np.bincount(self.stage, weights=g.mem, minlength=k)
            self._breakdown = StageBreakdown(w, r, s, mem)
        return self._breakdown

    def stage_costs(self) -> np.ndarray:
        """Cost f(S_i) of every stage, shape (k,)."""
        return self.breakdown().total

    @property
    def bottleneck(self) -> float:
        """The largest stage cost; throughput is its inverse."""
        return float(self.stage_costs().max())

    def stage_memory(self) -> np.ndarray:
        return self.breakdown().mem

    def stages(self) -> list[np.ndarray]:
        """Node indices of each stage."""
        order = np.argsort(self.stage, kind="stable")
        cuts = np.searchsorted(self.stage[order], np.arange(1, self.k))
        return np.split(order, cuts)

    def move_delta(self, v: int, new_stage: int) -> np.ndarray:
        """Change of every stage cost if node v moved to ``new_stage`` (O(deg) native).

        Only v's terms and its predecessors' can change, so the kernel touches
        O(outdeg(v) + sum of outdeg over pred(v)) entries.
        """
        if not 0 <= new_stage < self.k:
            raise errors.InvalidPartitionError(f"stage {new_stage} outside 0..{self.k - 1}")
        if not 0 <= v < self.graph.n:
            raise errors.UnknownNodeError(f"node {v} outside 0..{self.graph.n - 1}")
        g = self.graph
        delta = np.zeros(self.k)
        _cost.move_delta(g.succ_ptr, g.succ_idx, g.pred_ptr, g.pred_idx, g.work, g.comm,
                         self.stage.copy(), int(v), int(new_stage), delta)
        return delta

    def moved(self, v: int, new_stage: int) -> "Partition":
        stage = self.stage.copy()
        stage[v] = new_stage
        return Partition(self.graph, stage, self.k)

    # ------------------------------------------------------------------ validity
    def violations(self, mem_cap: float | None = None, limit: int = 10) -> list[str]:
        """Why this partition is invalid (empty list when it is valid).

        Checks that every edge goes forward (``stage[u] <= stage[v]``), that every
        colocation group lies in one stage, and that no stage exceeds ``mem_cap``.
        At most ``limit`` messages per kind.
        """
        g, st = self.graph, self.stage
        out: list[str] = []
        back = np.flatnonzero(st[g.src] > st[g.dst])
        for e in back[:limit]:
            u, v = int(g.src[e]), int(g.dst[e])
            out.append(f"edge {g.name(u)!r} -> {g.name(v)!r} goes backward "
                       f"(stage {int(st[u])} -> {int(st[v])})")
        if back.size > limit:
            out.append(f"... and {back.size - limit} more backward edges")
        if g.group is not None:
            has = g.group >= 0
            grp = g.group[has]
            ngroups = int(grp.max()) + 1
            lo = np.full(ngroups, np.iinfo(np.int32).max)
            hi = np.full(ngroups, -1)
            np.minimum.at(lo, grp, st[has])
            np.maximum.at(hi, grp, st[has])
            split = np.flatnonzero(lo != hi)
            for gid in split[:limit]:
                out.append(f"colocation group {int(gid)} is split over stages "
                           f"{int(lo[gid])}..{int(hi[gid])}")
        if mem_cap is not None:
            mem = self.stage_memory()
            for s in np.flatnonzero(mem > mem_cap * (1 + 1e-12))[:limit]:
                out.append(f"stage {int(s)} uses mem {mem[s]:g} > mem_cap {mem_cap:g}")
        return out

    def is_valid(self, mem_cap: float | None = None) -> bool:
        return not self.violations(mem_cap, limit=1)

    def check(self, mem_cap: float | None = None) -> "Partition":
        """Return self, or raise InvalidPartitionError listing the violations."""
        problems = self.violations(mem_cap)
        if problems:
            raise errors.InvalidPartitionError("invalid partition: " + "; ".join(problems))
        return self

    # ------------------------------------------------------------------ misc
    def relabel(self, k: int | None = None) -> "Partition":
        """Same partition with empty stages dropped (stage order kept), optionally padded to k."""
        used = np.unique(self.stage)
        remap = np.full(self.k, -1, dtype=np.int32)
        remap[used] = np.arange(used.size, dtype=np.int32)
        return Partition(self.graph, remap[self.stage], max(k or 0, used.size, 1))

    def __eq__(self, other) -> bool:
        return (isinstance(other, Partition) and other.graph is self.graph and other.k == self.k
                and np.array_equal(other.stage, self.stage))

    def __hash__(self):
        return hash((id(self.graph), self.k, self.stage.tobytes()))

    def __repr__(self) -> str:
        return f"Partition(k={self.k}, bottleneck={self.bottleneck:.6g})"
