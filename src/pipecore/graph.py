"""The graph model: an immutable, validated DAG in CSR form.

Every kernel reads the same arrays: ``succ_ptr/succ_idx`` (successors) and
``pred_ptr/pred_idx`` (predecessors) as int32 CSR, ``work``, ``comm``, ``mem``
as float64 per node, and ``group`` (int32, -1 for "no colocation group").
Parallel edges are merged (communication is node-weighted, so they carry no
extra cost). Construction is O(n + m log m) and fully vectorised.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from ._arrays import unique_sorted
from ._runtime import require_memory
from . import errors

from ._validate import INT32_MAX, as_float_array, as_int, as_int_array

__all__ = ["Graph", "Contraction"]

_INT = np.int32


def _as_cost(name: str, values, n: int) -> np.ndarray:
    """Validate one per-node cost array: shape (n,), numbers, finite, >= 0, and small
    enough that sums over the whole graph stay finite (no overflow to inf)."""
    if values is None:
        arr = np.zeros(n, dtype=np.float64)
    else:
        arr = as_float_array(values, name, n, error=errors.InvalidCostError)
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise errors.InvalidCostError(f"{name}[{i}] = {arr[i]!r}: costs must be finite")
        neg = arr < 0
        if neg.any():
            i = int(np.flatnonzero(neg)[0])
            raise errors.InvalidCostError(f"{name}[{i}] = {arr[i]!r}: costs must be >= 0")
        with np.errstate(over="ignore"):
            total = float(np.sum(arr))
        if not total <= _COST_SUM_MAX:
            raise errors.InvalidCostError(
                f"{name}: the values sum to {total:g}, which overflows the cost sums "
                f"(the total must stay below {_COST_SUM_MAX:g}); rescale the costs "
                f"(e.g. to other time or memory units)")
    arr = np.ascontiguousarray(arr)
    arr.flags.writeable = False
    return arr


#: every cost sum pipecore forms (a stage: its work plus two comm terms per producer)
#: must stay finite; a total below this per cost array guarantees it.
_COST_SUM_MAX = 1e300


def _csr(n: int, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR (ptr, idx) of the edges grouped by ``src``; ``dst`` order is kept within a row."""
    order = np.argsort(src, kind="stable")
    ptr = np.zeros(n + 1, dtype=_INT)
    np.cumsum(np.bincount(src, minlength=n), out=ptr[1:])
    idx = np.ascontiguousarray(dst[order], dtype=_INT)
    ptr.flags.writeable = False
    idx.flags.writeable = False
    return ptr, idx


def _is_acyclic(n: int, src: np.ndarray, dst: np.ndarray) -> bool:
    """Whether the digraph on n nodes with these edges is acyclic (native Kahn, O(n + m))."""
    from ._native import _graph

    succ_ptr, succ_idx = _csr(n, src, dst)
    pred_ptr, _ = _csr(n, dst, src)
    order = np.empty(n, dtype=_INT)
    return _graph.topological_order(succ_ptr, succ_idx, pred_ptr, order) == n


def _pairs(edges) -> list:
    """The edges as a list of 2-sequences, or InvalidGraphError naming the bad one."""
    out = list(edges)
    for i, e in enumerate(out):
        if isinstance(e, (str, bytes)) or not hasattr(e, "__len__") or len(e) != 2:
            raise errors.InvalidGraphError(f"edges[{i}] = {e!r}: expected a pair (src, dst)")
    return out


def _edge_array(edges) -> np.ndarray:
    """An (m, 2) int64 array of edge indices from an array or an iterable of pairs."""
    if isinstance(edges, np.ndarray):
        if edges.size and (edges.ndim != 2 or edges.shape[1] != 2):
            raise errors.InvalidGraphError(f"edges: expected shape (m, 2), got {edges.shape}")
        flat = as_int_array(edges.ravel(), "edges", maximum=None)
        return flat.reshape(-1, 2)
    ends = [x for e in _pairs(edges) for x in e]
    return as_int_array(ends, "edges", maximum=None).reshape(-1, 2)


#: bytes a Graph holds per node and per edge (CSR both ways, costs, order), estimated
#: low: a graph that cannot fit even so is refused before anything is allocated.
GRAPH_BYTES_PER_NODE = 48
GRAPH_BYTES_PER_EDGE = 40


class Graph:
    """A validated computation DAG with per-node costs, stored as CSR arrays.

    Parameters
    ----------
    n : int
        Number of nodes, indexed ``0..n-1``.
    src, dst : array_like of int
        Edge endpoints (``src[i] -> dst[i]``). Parallel edges are merged.
    work, comm, mem : array_like of float, optional
        Per-node compute time, output-transfer time and resident memory (default 0).
    group : array_like of int, optional
        Colocation group per node (``-1`` = none); nodes of one group share a stage.
        In a training graph the group is the *colour class* that ties backward nodes
        to the forward nodes whose gradients they compute (DESIGN.md section 1b).
    backward : array_like of bool, optional
        Training graphs: True for backward (gradient) nodes. Backward nodes impose no
        stage order; each follows the forward nodes of its group. No edge may go from
        a backward node to a forward node. ``None`` (default): an inference graph.
    act_mem : array_like of float, optional
        Activation bytes a node keeps per micro-batch in flight (default 0); ``mem``
        is then the static part (weights, gradients, optimizer state). Only the 1F1B
        memory model tells the two apart; a plain per-stage cap counts ``mem + act_mem``.
    names : sequence of str, optional
        Human-readable node names (default ``"0"``, ``"1"``, ...).
    metadata : mapping, optional
        Free-form information carried from a file (e.g. a default ``k`` and ``mem_cap``).

    Raises
    ------
    EmptyGraphError, SelfLoopError, UnknownNodeError, InvalidCostError, CycleError
    """

    __slots__ = (
        "n", "m", "src", "dst", "succ_ptr", "succ_idx", "pred_ptr", "pred_idx",
        "work", "comm", "mem", "act_mem", "group", "backward", "_names", "metadata", "_topo",
        "_contraction", "_precedence",
    )

    def __init__(self, n: int, src, dst, work=None, comm=None, mem=None, *,
                 group=None, backward=None, act_mem=None,
                 names: Sequence[str] | None = None,
                 metadata: Mapping[str, Any] | None = None):
        n = as_int(n, "n", maximum=INT32_MAX - 1)
        if n <= 0:
            raise errors.EmptyGraphError("graph has no nodes")
        require_memory(GRAPH_BYTES_PER_NODE * n + GRAPH_BYTES_PER_EDGE * len(src),
                       f"a graph of {n:,} nodes")
        src = as_int_array(np.ravel(src) if isinstance(src, np.ndarray) else src, "src",
                           maximum=None)
        dst = as_int_array(np.ravel(dst) if isinstance(dst, np.ndarray) else dst, "dst",
                           maximum=None)
        if src.shape != dst.shape:
            raise errors.InvalidGraphError(f"src and dst differ in length ({src.size} vs {dst.size})")
        for arr in (src, dst):
            bad = (arr < 0) | (arr >= n)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise errors.UnknownNodeError(
                    f"edge {i} ({int(src[i])} -> {int(dst[i])}) names a node outside 0..{n - 1}"
                )
        loops = src == dst
        if loops.any():
            i = int(np.flatnonzero(loops)[0])
            label = names[int(src[i])] if names is not None else int(src[i])
            raise errors.SelfLoopError(f"self-loop on node {label!r} (edge {i})")
        key = unique_sorted(src * n + dst)  # merge parallel edges, sort by (src, dst)
        self.src = (key // n).astype(_INT)
        self.dst = (key % n).astype(_INT)
        self.src.flags.writeable = False
        self.dst.flags.writeable = False
        self.n = n
        self.m = int(key.size)
        self.succ_ptr, self.succ_idx = _csr(n, self.src, self.dst)
        self.pred_ptr, self.pred_idx = _csr(n, self.dst, self.src)
        self.work = _as_cost("work", work, n)
        self.comm = _as_cost("comm", comm, n)
        self.mem = _as_cost("mem", mem, n)
        self.act_mem = _as_cost("act_mem", act_mem, n)
        if names is not None:
            names = [str(s) for s in names]
            if len(names) != n:
                raise errors.InvalidGraphError(f"names: expected {n} entries, got {len(names)}")
            if len(set(names)) != n:
                seen: dict[str, int] = {}
                for i, name in enumerate(names):
                    if name in seen:
                        raise errors.DuplicateNodeError(
                            f"duplicate node name {name!r} (nodes {seen[name]} and {i}); "
                            f"names must identify nodes")
                    seen[name] = i
        self._names = names
        self.group = self._check_group(group)
        self.backward = self._check_backward(backward)
        self.metadata = dict(metadata or {})
        self._topo: np.ndarray | None = None
        self._contraction: Contraction | None = None
        self._precedence: tuple[np.ndarray, np.ndarray] | None = None
        self.topological_order()  # raises CycleError

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_edges(cls, edges, work, comm=None, mem=None, *, group=None, backward=None,
                   act_mem=None, names=None, ids: Sequence[Hashable] | None = None,
                   metadata=None) -> "Graph":
        """Build from an edge list and per-node cost arrays.

        ``edges`` is an (m, 2) array-like or an iterable of pairs. Without ``ids``
        the endpoints are node indices ``0..n-1`` with ``n = len(work)``; with
        ``ids`` (one hashable id per node, in the order of ``work``) the endpoints
        are ids, which must be unique. Names default to ``str(id)``.

        Examples
        --------
        >>> g = Graph.from_edges([("embed", "attn"), ("attn", "mlp")], work=[1.0, 4.0, 2.0],
        ...                      comm=[0.5, 0.5, 0.1], ids=["embed", "attn", "mlp"])
        >>> g.n, g.m, g.names[1]
        (3, 2, 'attn')
        >>> Graph.from_edges([(0, 5)], work=[1.0, 1.0])
        Traceback (most recent call last):
        ...
        pipecore.errors.UnknownNodeError: ...
        """
        if work is None:
            raise errors.InvalidCostError("work: expected a 1-D array with one value per node")
        work_arr = as_float_array(work, "work", error=errors.InvalidCostError)
        n = work_arr.shape[0]
        pairs = list(edges) if not isinstance(edges, np.ndarray) else edges
        if ids is not None:
            ids = list(ids)
            if len(ids) != n:
                raise errors.InvalidGraphError(f"ids: expected {n} entries, got {len(ids)}")
            index: dict = {}
            for i, node_id in enumerate(ids):
                if node_id in index:
                    raise errors.DuplicateNodeError(f"duplicate node id {node_id!r}")
                index[node_id] = i
            try:
                arr = np.array([(index[a], index[b]) for a, b in _pairs(pairs)], dtype=np.int64)
            except KeyError as exc:
                raise errors.UnknownNodeError(f"edge names unknown node id {exc.args[0]!r}") from None
            if names is None:
                names = [str(x) for x in ids]
        else:
            arr = _edge_array(pairs)
        arr = arr.reshape(-1, 2) if arr.size else np.zeros((0, 2), dtype=np.int64)
        return cls(n, arr[:, 0], arr[:, 1], work_arr, comm, mem, group=group, backward=backward,
                   act_mem=act_mem, names=names, metadata=metadata)

    @classmethod
    def from_networkx(cls, g, work: str = "work", comm: str = "comm", mem: str = "mem",
                      group: str = "group") -> "Graph":
        """Build from a ``networkx.DiGraph``; costs are read from node attributes (default 0)."""
        nodes = list(g.nodes)
        attrs = [g.nodes[v] for v in nodes]
        w = [a.get(work, 0.0) for a in attrs]
        c = [a.get(comm, 0.0) for a in attrs]
        m = [a.get(mem, 0.0) for a in attrs]
        grp = None
        if any(group in a for a in attrs):
            labels: dict = {}
            grp = [labels.setdefault(a[group], len(labels)) if a.get(group) is not None else -1
                   for a in attrs]
        return cls.from_edges(list(g.edges), w, c, m, group=grp, ids=nodes)

    def to_networkx(self):
        """Return a ``networkx.DiGraph`` with ``work``, ``comm``, ``mem``, ``group`` attributes."""
        import networkx as nx

        g = nx.DiGraph()
        for v in range(self.n):
            attrs = dict(work=float(self.work[v]), comm=float(self.comm[v]), mem=float(self.mem[v]))
            if self.group is not None and self.group[v] >= 0:
                attrs["group"] = int(self.group[v])
            g.add_node(self.name(v), **attrs)
        names = self.names
        g.add_edges_from((names[a], names[b]) for a, b in zip(self.src.tolist(), self.dst.tolist()))
        return g

    # ------------------------------------------------------------------ accessors
    @property
    def names(self) -> list[str]:
        """Node names (``str(index)`` when none were given)."""
        if self._names is None:
            return [str(i) for i in range(self.n)]
        return self._names

    def name(self, v: int) -> str:
        return self._names[v] if self._names is not None else str(v)

    def successors(self, v: int) -> np.ndarray:
        return self.succ_idx[self.succ_ptr[v]:self.succ_ptr[v + 1]]

    def predecessors(self, v: int) -> np.ndarray:
        return self.pred_idx[self.pred_ptr[v]:self.pred_ptr[v + 1]]

    @property
    def total_work(self) -> float:
        return float(self.work.sum())

    def topological_order(self) -> np.ndarray:
        """A topological order (Kahn, ties by index), cached; raises CycleError on a cycle."""
        if self._topo is None:
            from ._native import _graph

            order = np.empty(self.n, dtype=_INT)
            placed = _graph.topological_order(self.succ_ptr, self.succ_idx, self.pred_ptr, order)
            if placed < self.n:
                cycle = self._find_cycle(order[:placed])
                shown = " -> ".join(self.name(v) for v in cycle[:10])
                more = " -> ..." if len(cycle) > 10 else ""
                raise errors.CycleError(
                    f"graph has a cycle through node {self.name(cycle[0])!r}: "
                    f"{shown}{more} -> {self.name(cycle[0])}", cycle=cycle)
            order.flags.writeable = False
            self._topo = order
        return self._topo

    def depth(self) -> np.ndarray:
        """Longest-path depth (in edges) of every node from a source, O(n + m)."""
        from ._native import _graph

        out = np.empty(self.n, dtype=_INT)
        _graph.depth(self.topological_order(), self.succ_ptr, self.succ_idx, out)
        return out

    def _find_cycle(self, placed: np.ndarray) -> list[int]:
        """Walk predecessors inside the unplaced nodes until one repeats (error path only)."""
        alive = np.ones(self.n, dtype=bool)
        alive[placed] = False
        v = int(np.flatnonzero(alive)[0])
        seen: dict[int, int] = {}
        path: list[int] = []
        while v not in seen:
            seen[v] = len(path)
            path.append(v)
            preds = self.predecessors(v)
            v = int(preds[alive[preds]][0])  # an unplaced node always has an unplaced predecessor
        cycle = path[seen[v]:]
        cycle.reverse()  # predecessor walk -> forward order
        return cycle

    def _check_backward(self, backward) -> np.ndarray | None:
        if backward is None:
            return None
        b = np.asarray(backward)
        if b.shape != (self.n,):
            raise errors.InvalidGraphError(f"backward: expected shape ({self.n},), got {b.shape}")
        if b.dtype != np.bool_:
            if not np.issubdtype(b.dtype, np.integer) or not np.isin(b, (0, 1)).all():
                raise errors.InvalidGraphError("backward: expected booleans (True = backward node)")
            b = b.astype(bool)
        if not b.any():
            return None
        bad = np.flatnonzero(b[self.src] & ~b[self.dst])
        if bad.size:
            e = int(bad[0])
            raise errors.InvalidGraphError(
                f"edge {self.name(int(self.src[e]))!r} -> {self.name(int(self.dst[e]))!r} goes "
                f"from a backward node to a forward node; training graphs must not have such "
                f"edges (the backward pass only consumes forward results)")
        b = np.ascontiguousarray(b)
        b.flags.writeable = False
        return b

    @property
    def is_training(self) -> bool:
        """Whether the graph has backward nodes (training semantics, DESIGN.md section 1b)."""
        return self.backward is not None

    def _check_group(self, group) -> np.ndarray | None:
        if group is None:
            return None
        g = np.asarray(group)
        if g.shape != (self.n,):
            raise errors.InvalidGraphError(f"group: expected shape ({self.n},), got {g.shape}")
        if not np.issubdtype(g.dtype, np.integer):
            raise errors.InvalidGraphError("group: expected integer labels (-1 for none)")
        if (g < -1).any():
            raise errors.InvalidGraphError("group: labels must be >= 0, or -1 for none")
        if (g < 0).all():
            return None
        # relabel to 0..G-1 (dense), keep -1
        out = np.full(self.n, -1, dtype=_INT)
        has = g >= 0
        _, dense = np.unique(g[has], return_inverse=True)
        out[has] = dense
        out.flags.writeable = False
        return out

    # ------------------------------------------------------------------ transforms
    def precedence_edges(self) -> tuple[np.ndarray, np.ndarray]:
        """The edges a partition must keep forward, as (src, dst) node arrays (cached).

        Inference graphs: every edge. Training graphs (DESIGN.md section 1b): the
        forward-to-forward edges, plus, for every backward edge ``a -> c`` that
        touches a backward-only class (no forward node: its stage is set by an empty
        forward placeholder), the mirrored edge ``class(c) -> class(a)`` between
        representative nodes of the two classes. Edges that touch a backward node
        otherwise impose no order. O(n + m).
        """
        if self._precedence is None:
            self._precedence = self._build_precedence()
        return self._precedence

    def _class_labels(self) -> tuple[np.ndarray, int]:
        """Colocation class label per node (groups share one; others are singletons)."""
        label = np.arange(self.n, dtype=np.int64)
        if self.group is not None:
            has = self.group >= 0
            label[has] = self.n + self.group[has]  # group members share one label
            _, label = np.unique(label, return_inverse=True)
        return label.astype(np.int64), int(label.max()) + 1

    def _build_precedence(self) -> tuple[np.ndarray, np.ndarray]:
        if self.backward is None:
            return self.src, self.dst
        bw = self.backward
        fwd_edge = ~bw[self.src] & ~bw[self.dst]
        src, dst = [self.src[fwd_edge]], [self.dst[fwd_edge]]
        label, q = self._class_labels()
        has_fwd = np.zeros(q, dtype=bool)
        has_fwd[label[~bw]] = True
        # representative node of each class: a forward member if any, else any member
        rep = np.full(q, -1, dtype=np.int64)
        order = np.argsort(bw, kind="stable")          # forward nodes first
        rep[label[order[::-1]]] = order[::-1]          # the last write wins: a forward node
        both_bw = bw[self.src] & bw[self.dst]
        a, c = self.src[both_bw].astype(np.int64), self.dst[both_bw].astype(np.int64)
        orphan = ~has_fwd[label[a]] | ~has_fwd[label[c]]
        ma, mc = rep[label[c[orphan]]], rep[label[a[orphan]]]   # mirrored: class(c) -> class(a)
        keep = label[ma] != label[mc]
        src.append(ma[keep].astype(_INT))
        dst.append(mc[keep].astype(_INT))
        s, d = np.concatenate(src).astype(np.int64), np.concatenate(dst).astype(np.int64)
        key = unique_sorted(s * self.n + d)
        ps, pd = (key // self.n).astype(_INT), (key % self.n).astype(_INT)
        ps.flags.writeable = False
        pd.flags.writeable = False
        return ps, pd

    def contract(self) -> "Contraction":
        """Contract colocation classes, then every cycle that contraction creates (cached).

        Nodes that must share a stage (one group -- in a training graph one colour
        class, forward and backward nodes together -- or one strongly connected
        component of the class graph) become one node. The quotient's edges are the
        :meth:`precedence_edges` between classes, so a chain of ideals of the
        quotient is exactly a valid partition; its work and mem are summed; its
        ``comm`` is the sum of the members' comm over members with a successor
        outside the class, an upper bound on what the class can send (exact costs
        are always evaluated on the original graph, since communication is per
        producer). O(n + m): a native Kahn pass decides whether the class graph is
        acyclic (the common case); only when it is not is the native Tarjan pass
        (strongly connected components) needed.
        """
        if self._contraction is None:
            self._contraction = self._build_contraction()
        return self._contraction

    def _build_contraction(self) -> "Contraction":
        label, q = self._class_labels()
        src, dst = self.precedence_edges()
        qs, qd = label[src], label[dst]
        keep = qs != qd
        qs, qd = qs[keep], qd[keep]
        if (self.group is None and self.backward is None) or _is_acyclic(q, qs, qd):
            return Contraction.build(self, label.astype(_INT), q)
        from ._native import _graph

        succ_ptr, succ_idx = _csr(q, qs, qd)
        comp = np.empty(q, dtype=_INT)
        ncomp = _graph.strong_components(succ_ptr, succ_idx, comp)
        return Contraction.build(self, comp[label].astype(_INT), ncomp)

    def __repr__(self) -> str:
        groups = 0 if self.group is None else int(self.group.max()) + 1
        kind = ", training" if self.backward is not None else ""
        return (f"Graph(n={self.n}, m={self.m}, work={self.total_work:.6g}, "
                f"groups={groups}{kind})")


@dataclass(frozen=True)
class Contraction:
    """A quotient DAG of a graph plus the map back to original nodes.

    ``node_map[v]`` is the quotient node of original node v; ``members(q)`` lists
    the original nodes of quotient node q; :meth:`expand` turns a quotient stage
    vector into an original one.
    """

    graph: Graph
    original: Graph
    node_map: np.ndarray
    member_ptr: np.ndarray
    member_idx: np.ndarray

    @classmethod
    def build(cls, original: Graph, node_map: np.ndarray, q: int) -> "Contraction":
        """The quotient of ``original`` under ``node_map`` (class per node, 0..q-1), with the
        precedence edges between classes. O(n + m log m)."""
        all_s, all_d = node_map[original.src], node_map[original.dst]
        external = np.zeros(original.n, dtype=bool)
        external[original.src[all_s != all_d]] = True
        ps, pd = original.precedence_edges()
        src, dst = node_map[ps], node_map[pd]
        keep = src != dst
        work = np.bincount(node_map, weights=original.work, minlength=q)
        mem = np.bincount(node_map, weights=original.mem, minlength=q)
        act = np.bincount(node_map, weights=original.act_mem, minlength=q)
        comm = np.bincount(node_map, weights=original.comm * external, minlength=q)
        member_ptr = np.zeros(q + 1, dtype=_INT)
        np.cumsum(np.bincount(node_map, minlength=q), out=member_ptr[1:])
        member_idx = np.argsort(node_map, kind="stable").astype(_INT)
        names = None
        if original._names is not None:  # a class is named after its first member
            names = [original._names[i] for i in member_idx[member_ptr[:-1]].tolist()]
        quotient = Graph(q, src[keep], dst[keep], work, comm, mem, act_mem=act, names=names,
                         metadata=original.metadata)
        return cls(quotient, original, node_map.astype(_INT), member_ptr, member_idx)

    def members(self, q: int) -> np.ndarray:
        return self.member_idx[self.member_ptr[q]:self.member_ptr[q + 1]]

    def expand(self, quotient_stage) -> np.ndarray:
        """Stage per original node from a stage per quotient node."""
        return np.asarray(quotient_stage, dtype=_INT)[self.node_map]
