"""Partitions and the cost model (DESIGN.md section 1).

A :class:`Partition` is a stage index per node. Its stage costs
``f(S) = work(S) + comm(In(S)) + comm(Out(S))`` are evaluated by the native kernel
in O(n + m) over the *occupied* stages only, so a partition into ``k = 10**9``
stages costs no more than one into ``n``: stages nobody uses are empty and cost
nothing. The same formula holds for training graphs (a stage then holds forward
and backward nodes, and an edge may cross its boundary in either direction).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import errors
from ._native import _cost
from ._validate import as_int_array
from .graph import Graph
from .problem import MEM_RTOL, Schedule, check_k

__all__ = ["Partition", "StageBreakdown", "evaluate_bottleneck"]


@dataclass(frozen=True)
class StageBreakdown:
    """Per-stage cost components of the non-empty stages.

    ``stages`` lists the indices of the non-empty stages in increasing order; every
    array is aligned with it. ``mem`` is the memory the stage holds under the
    schedule it was computed for (static plus activations of the micro-batches in
    flight), ``static`` and ``act`` its two parts. Stages not listed are empty.
    """

    k: int
    stages: np.ndarray
    nodes: np.ndarray
    work: np.ndarray
    recv: np.ndarray
    send: np.ndarray
    static: np.ndarray
    act: np.ndarray
    mem: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.work + self.recv + self.send

    def dense(self, field: str = "total") -> np.ndarray:
        """One component for every stage ``0..k-1`` (zeros for empty stages); O(k) memory."""
        out = np.zeros(self.k)
        out[self.stages] = getattr(self, field)
        return out

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per non-empty stage."""
        total = self.total
        return [{"stage": int(s), "nodes": int(c), "work": float(w), "recv": float(r),
                 "send": float(d), "total": float(t), "mem": float(m)}
                for s, c, w, r, d, t, m in zip(self.stages, self.nodes, self.work, self.recv,
                                               self.send, total, self.mem)]


def _checked_stages(graph: Graph, stage: Any, k: int) -> tuple[np.ndarray, int]:
    """A contiguous int32 stage vector (it may alias ``stage``) and its largest stage, or
    InvalidPartitionError naming the node. O(n); an integer numpy array in range takes
    a fast path of two reductions and no conversion when it is already int32."""
    if isinstance(stage, np.ndarray) and stage.dtype.kind in "iu" and stage.shape == (graph.n,) \
            and graph.n:
        lo, hi = int(stage.min()), int(stage.max())
        if lo >= 0 and hi < k:
            return np.ascontiguousarray(stage, dtype=np.int32), hi
    arr = as_int_array(stage, "stage", graph.n, maximum=None,
                       error=errors.InvalidPartitionError)
    bad = (arr < 0) | (arr >= k)
    if bad.any():
        v = int(np.flatnonzero(bad)[0])
        raise errors.InvalidPartitionError(
            f"node {graph.name(v)!r} has stage {int(arr[v])}, outside 0..{k - 1}")
    return arr.astype(np.int32), int(arr.max()) if arr.size else 0


def _stage_array(graph: Graph, stage: Any, k: int) -> np.ndarray:
    """A read-only int32 copy of a stage vector, or InvalidPartitionError naming the node."""
    arr, _ = _checked_stages(graph, stage, k)
    out = arr.copy() if arr is stage or arr.base is not None else arr
    out.flags.writeable = False
    return out


def evaluate_bottleneck(graph: Graph, stage: Any, k: int) -> float:
    """Bottleneck of a stage vector (validated; ``InvalidPartitionError`` on a stage
    outside ``0..k-1``). O(n + m). For inner loops, use :class:`Partition` once and
    the native kernels on its arrays.

    Examples
    --------
    >>> g = Graph(2, [0], [1], work=[1.0, 2.0], comm=[0.5, 0.0])
    >>> evaluate_bottleneck(g, [0, 1], 2)     # stage 1: work 2 + receive 0.5
    2.5
    """
    arr, top = _checked_stages(graph, stage, check_k(k))
    return float(_cost.bottleneck(graph.succ_ptr, graph.succ_idx, graph.work, graph.comm,
                                  arr, top + 1))


class Partition:
    """A k-stage assignment of a graph's nodes.

    Parameters
    ----------
    graph : Graph
    stage : array_like of int, shape (n,)
        Stage of each node, in ``0..k-1``.
    k : int, optional
        Number of stages (default ``max(stage) + 1``). Stages may be empty.

    Examples
    --------
    >>> g = Graph(3, [0, 1], [1, 2], work=[1.0, 2.0, 3.0], comm=[0.5, 0.5, 0.0])
    >>> p = Partition(g, [0, 0, 1], k=2)
    >>> p.stage_costs().tolist(), p.bottleneck
    ([3.5, 3.5], 3.5)
    >>> p.violations()
    []
    """

    __slots__ = ("graph", "stage", "k", "_breakdown")

    def __init__(self, graph: Graph, stage: Any, k: int | None = None):
        if not isinstance(graph, Graph):
            raise TypeError(f"graph must be a pipecore.Graph, got {type(graph).__name__}")
        if k is None:
            arr = as_int_array(stage, "stage", graph.n, minimum=0,
                               error=errors.InvalidPartitionError)
            k = int(arr.max()) + 1 if arr.size else 1
        self.k = check_k(k)
        self.graph = graph
        self.stage = _stage_array(graph, stage, self.k)
        self._breakdown: dict[Schedule, StageBreakdown] = {}

    @classmethod
    def from_stages(cls, graph: Graph, stages: Any, k: int | None = None) -> "Partition":
        """Build from a list of node lists (indices or names), one per stage."""
        index = {name: i for i, name in enumerate(graph.names)}
        stage = np.full(graph.n, -1, dtype=np.int64)
        for s, nodes in enumerate(stages):
            if isinstance(nodes, (str, bytes)) or not hasattr(nodes, "__iter__"):
                raise errors.InvalidPartitionError(f"stage {s}: expected a list of nodes")
            for v in nodes:
                i = v if isinstance(v, (int, np.integer)) and not isinstance(v, bool) \
                    else index.get(v) if isinstance(v, str) else None
                if i is None or not 0 <= i < graph.n:
                    raise errors.UnknownNodeError(f"stage {s} names unknown node {v!r}")
                if stage[i] >= 0:
                    raise errors.InvalidPartitionError(
                        f"node {graph.name(int(i))!r} is in two stages")
                stage[int(i)] = s
        missing = np.flatnonzero(stage < 0)
        if missing.size:
            raise errors.InvalidPartitionError(f"node {graph.name(int(missing[0]))!r} has no stage")
        return cls(graph, stage, k if k is not None else max(len(stages), 1))

    # ------------------------------------------------------------------ costs
    def breakdown(self, schedule: Schedule | str = Schedule.PLAIN) -> StageBreakdown:
        """Per-stage work, received and sent communication and memory of the non-empty
        stages (cached). O(n + m) plus O(n log n) when the stage indices are sparse."""
        schedule = Schedule(schedule)
        if schedule not in self._breakdown:
            self._breakdown[schedule] = self._compute(schedule)
        return self._breakdown[schedule]

    def _compute(self, schedule: Schedule) -> StageBreakdown:
        g, st = self.graph, self.stage
        hi = int(st.max()) + 1 if st.size else 1
        if hi <= 4 * g.n + 64:           # dense: index the kernel by stage directly
            counts = np.bincount(st, minlength=hi)
            stages = np.flatnonzero(counts)
            local, span = st, hi
        else:                            # sparse stage ids: compact them first
            stages, local = np.unique(st, return_inverse=True)
            local = np.ascontiguousarray(local, dtype=np.int32)
            span = stages.size
            counts = np.bincount(local, minlength=span)
        w, r, s = np.empty(span), np.empty(span), np.empty(span)
        _cost.stage_breakdown(g.succ_ptr, g.succ_idx, g.work, g.comm, local, w, r, s)
        static = np.bincount(local, weights=g.mem, minlength=span)
        act = np.bincount(local, weights=g.act_mem, minlength=span) if g.act_mem.any() \
            else np.zeros(span)
        if span != stages.size:          # dense path: keep only the occupied stages
            w, r, s, static, act = w[stages], r[stages], s[stages], static[stages], act[stages]
            counts = counts[stages]
        if schedule is Schedule.ONE_F_ONE_B:
            inflight = np.arange(stages.size, 0, -1, dtype=np.float64)
        else:
            inflight = np.ones(stages.size)
        return StageBreakdown(self.k, stages.astype(np.int64), counts.astype(np.int64), w, r, s,
                              static, act, static + inflight * act)

    def stage_costs(self) -> np.ndarray:
        """Cost f(S_i) of every stage, shape (k,) (O(k) memory; see :meth:`breakdown`
        for the non-empty stages only)."""
        return self.breakdown().dense("total")

    @property
    def bottleneck(self) -> float:
        """The largest stage cost; throughput is its inverse."""
        total = self.breakdown().total
        return float(total.max()) if total.size else 0.0

    def stage_memory(self, schedule: Schedule | str = Schedule.PLAIN) -> np.ndarray:
        """Memory of every stage under ``schedule``, shape (k,)."""
        return self.breakdown(schedule).dense("mem")

    def stages(self) -> list[np.ndarray]:
        """Node indices of each stage (k lists; O(n + k))."""
        order = np.argsort(self.stage, kind="stable")
        cuts = np.searchsorted(self.stage[order], np.arange(1, self.k))
        return np.split(order, cuts)

    def move_delta(self, v: int, new_stage: int) -> np.ndarray:
        """Change of every stage cost if node v moved to ``new_stage`` (O(deg) native,
        plus O(k) for the returned array).

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
    def violations(self, mem_cap: float | None = None, *,
                   schedule: Schedule | str = Schedule.PLAIN, limit: int = 10) -> list[str]:
        """Why this partition is invalid (empty list when it is valid).

        Checks that every precedence edge goes forward (``stage[u] <= stage[v]``; in a
        training graph only forward-to-forward edges and the mirrored edges of
        backward-only classes, :meth:`Graph.precedence_edges`), that every colocation
        group (colour class) lies in one stage, and that no stage holds more than
        ``mem_cap`` under ``schedule``. At most ``limit`` messages per kind.
        """
        from ._validate import as_float

        g, st = self.graph, self.stage
        out: list[str] = []
        src, dst = g.precedence_edges()
        back = np.flatnonzero(st[src] > st[dst])
        for e in back[:limit]:
            u, v = int(src[e]), int(dst[e])
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
            cap = as_float(mem_cap, "mem_cap", minimum=0.0, error=errors.InvalidCostError)
            b = self.breakdown(schedule)
            for i in np.flatnonzero(b.mem > cap * (1 + MEM_RTOL))[:limit]:
                out.append(f"stage {int(b.stages[i])} uses mem {b.mem[i]:g} > mem_cap {cap:g}")
        return out

    def is_valid(self, mem_cap: float | None = None, *,
                 schedule: Schedule | str = Schedule.PLAIN) -> bool:
        return not self.violations(mem_cap, schedule=schedule, limit=1)

    def check(self, mem_cap: float | None = None, *,
              schedule: Schedule | str = Schedule.PLAIN) -> "Partition":
        """Return self, or raise InvalidPartitionError listing the violations."""
        problems = self.violations(mem_cap, schedule=schedule)
        if problems:
            raise errors.InvalidPartitionError("invalid partition: " + "; ".join(problems))
        return self

    # ------------------------------------------------------------------ misc
    def relabel(self, k: int | None = None) -> "Partition":
        """Same partition with empty stages dropped (stage order kept), optionally padded to k."""
        used, local = np.unique(self.stage, return_inverse=True)
        return Partition(self.graph, local.astype(np.int32), max(k or 0, used.size, 1))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Partition) and other.graph is self.graph and other.k == self.k
                and np.array_equal(other.stage, self.stage))

    def __hash__(self) -> int:
        return hash((id(self.graph), self.k, self.stage.tobytes()))

    def __repr__(self) -> str:
        return f"Partition(k={self.k}, bottleneck={self.bottleneck:.6g})"
