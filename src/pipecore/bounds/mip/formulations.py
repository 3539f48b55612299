"""MIP formulations of pipeline partitioning (DESIGN.md section 3), as sparse models.

Every formulation here is one *chain model*: the colocation classes of the graph
(groups and the cycles they create, :meth:`Graph.contract`) are split into P
consecutive *parts* ``0..P-1`` (a chain of ideals), and each part is charged its
work plus the communication crossing its boundary. Variables (all vectorised,
no per-variable Python objects):

* ``y[c, j]`` in {0, 1}: class c lies in parts ``<= j`` (``y[c, P-1] = 1``);
  ``x[c, j] = y[c, j] - y[c, j-1]`` is "c in part j" (an expression, not a variable).
  Precedence for every class edge (u, w): ``y[w, j] <= y[u, j]``; ``y[c, j] <= y[c, j+1]``.
* ``r[p, j] >= x[w, j] - x[u, j]`` for every producer p = u and successor class w
  of u outside u's class: part j receives u's tensor.
* ``s[p, j] >= x[u, j] - x[w, j]``: u's part sends u's tensor.
* ``T``: the bottleneck. A *group* of parts G with multiplicity m_G (the number
  of real stages it stands for) gets ``sum_{j in G} (work.x_j + comm.(r_j + s_j)) <= m_G T``
  and ``sum_{j in G} mem.x_j <= m_G cap``.

Formulations (each a relaxation of the true problem, proofs in the docstrings):

* :func:`exact_model`: P = k parts, one group per stage; exact (plus symmetry breaking).
* :func:`block_model`: the bottleneck-block relaxation (before / block / after,
  before and after aggregated into one group of multiplicity k - 1).
* :func:`position_model`: guess the position i of a block (or a window of
  consecutive stages): before (i stages) / block(s) / after, each aggregated side
  its own group. Valid for *every* i on its own, so the best bound is the max over i.

Sizes: O(q k) binaries, O(pairs * P) continuous variables and rows, where q is
the number of classes and pairs the distinct (producer, consumer class) pairs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from ..._arrays import unique_sorted
from ...problem import Problem, Schedule
from .model import MipModel

__all__ = ["PipelineInstance", "ChainModel", "exact_model", "block_model", "position_model",
           "chain_model", "model_nnz", "model_size_problem", "MAX_MODEL_NNZ",
           "MODEL_NNZ_PER_SECOND"]

#: no chain model beyond this many nonzeros: its arrays and the solver's copies would
#: take gigabytes (about 60 bytes per nonzero in all), and no solver gets past its LP.
MAX_MODEL_NNZ = 20_000_000
#: nonzeros per second for building a chain model in numpy *and* loading it into the
#: solver (measured on one core: about 4 million per second for each), used to skip a
#: model that could not even be loaded in the time left. Neither step is interruptible.
MODEL_NNZ_PER_SECOND = 2_000_000


@dataclass
class PipelineInstance:
    """Graph structure every formulation needs, computed once (O(n + m log m)).

    ``cls[v]`` is the class of original node v; class work/mem are summed;
    ``edge_u/edge_w`` are the distinct class-level edges; ``pair_p/pair_w`` the
    distinct (producer index, successor class) pairs with the successor outside
    the producer's class; ``prod`` the producers (original node ids), ``pcomm``
    their comm and ``pcls`` their class.
    """

    problem: Problem
    k: int
    mem_cap: float | None
    q: int
    cls: np.ndarray
    cwork: np.ndarray
    cmem: np.ndarray
    edge_u: np.ndarray
    edge_w: np.ndarray
    prod: np.ndarray
    pcomm: np.ndarray
    pcls: np.ndarray
    pair_p: np.ndarray
    pair_w: np.ndarray
    training: bool = False
    cact: np.ndarray | None = None     # 1F1B only: activation memory per class

    @property
    def graph(self):
        return self.problem.graph

    @classmethod
    def build(cls_, problem: Problem) -> "PipelineInstance":
        """The arrays of ``problem`` (k = ``k_eff``: more stages than classes only adds
        empty ones). Class-level precedence edges come from the contraction."""
        graph = problem.graph
        con = graph.contract()
        cmap = np.asarray(con.node_map, dtype=np.int64)
        q = con.graph.n
        edge_u = con.graph.src.astype(np.int64)
        edge_w = con.graph.dst.astype(np.int64)
        cu, cw = cmap[graph.src], cmap[graph.dst]
        ext = cu != cw
        # (producer, successor class) pairs, producers with zero comm carry no cost: skip
        u = graph.src[ext].astype(np.int64)
        w = cw[ext]
        keep = graph.comm[u] > 0
        u, w = u[keep], w[keep]
        pkey = unique_sorted(u * q + w)
        pu, pw = pkey // q, pkey % q
        prod, pair_p = np.unique(pu, return_inverse=True)
        return cls_(problem=problem, k=problem.k_eff, mem_cap=problem.mem_cap, q=q, cls=cmap,
                    cwork=np.asarray(con.graph.work, dtype=np.float64),
                    cmem=np.bincount(cmap, weights=problem.stage_mem, minlength=q),
                    edge_u=edge_u, edge_w=edge_w, prod=prod,
                    pcomm=np.asarray(graph.comm[prod], dtype=np.float64), pcls=cmap[prod],
                    pair_p=pair_p.astype(np.int64), pair_w=pw, training=graph.is_training,
                    cact=cls_._cact(problem, cmap, q))

    @staticmethod
    def _cact(problem: Problem, cmap: np.ndarray, q: int) -> np.ndarray | None:
        """Activation memory per class when a 1F1B cap can bind (else None)."""
        g = problem.graph
        if problem.schedule != Schedule.ONE_F_ONE_B or problem.mem_cap is None or not g.act_mem.any():
            return None
        return np.bincount(cmap, weights=g.act_mem, minlength=q)

    def class_stage(self, stage: np.ndarray) -> np.ndarray:
        """Stage of every class from an original stage vector (classes share a stage)."""
        out = np.zeros(self.q, dtype=np.int64)
        out[self.cls] = np.asarray(stage, dtype=np.int64)
        return out


@dataclass
class ChainModel:
    """A :class:`MipModel` plus the layout needed to warm-start and decode it."""

    model: MipModel
    inst: PipelineInstance
    P: int
    groups: list
    kind: str
    position: int | None = None
    info: dict = field(default_factory=dict)

    # variable offsets
    @property
    def ny(self) -> int:
        return self.inst.q * self.P

    @property
    def n_prod(self) -> int:
        return self.inst.prod.size

    @property
    def t_index(self) -> int:
        return self.ny + 2 * self.n_prod * self.P

    def warm_start(self, part_of_class: np.ndarray) -> np.ndarray | None:
        """Full x vector for a class -> part assignment (None if it breaks a bound on T)."""
        inst, P = self.inst, self.P
        part = np.asarray(part_of_class, dtype=np.int64)
        j = np.arange(P)
        y = (part[:, None] <= j[None, :]).astype(np.float64)
        x = (part[:, None] == j[None, :]).astype(np.float64)
        npr = self.n_prod
        r = np.zeros((npr, P))
        s = np.zeros((npr, P))
        if inst.pair_p.size:
            cu = inst.pcls[inst.pair_p]
            diff = x[inst.pair_w] - x[cu]
            np.maximum.at(r, inst.pair_p, np.maximum(diff, 0.0))
            np.maximum.at(s, inst.pair_p, np.maximum(-diff, 0.0))
        cost = inst.cwork @ x + inst.pcomm @ (r + s)  # per part
        mem = inst.cmem @ x
        t = 0.0
        for parts, mult in self.groups:
            t = max(t, float(cost[parts].sum()) / mult)
            if inst.mem_cap is not None and mem[parts].sum() > mult * inst.problem.cap_limit:
                return None
        lo, hi = self.model.col_lower[self.t_index], self.model.col_upper[self.t_index]
        t = max(t, lo)
        if t > hi:
            return None
        vec = np.concatenate([y.ravel(), r.ravel(), s.ravel(), [t]])
        if self.model.max_violation(vec) > 1e-7:
            return None
        return vec

    def decode_stage(self, xvec: np.ndarray) -> np.ndarray:
        """Original-node part index from a solution vector (y rounded at 0.5)."""
        y = np.asarray(xvec[: self.ny]).reshape(self.inst.q, self.P)
        part_c = (y < 0.5).sum(axis=1)
        part_c = np.minimum(part_c, self.P - 1)
        return part_c[self.inst.cls].astype(np.int32)


def model_nnz(inst: PipelineInstance, P: int) -> int:
    """Upper estimate of the nonzeros of a chain model with ``P`` parts, in O(1) (from
    the row counts of :func:`chain_model`: monotone and precedence rows 2 each, receive
    and send rows 5 each, cost rows 2 per class and producer, memory and symmetry rows
    2 and 4 per class, per part)."""
    per_part = (2 * inst.q + 2 * inst.edge_u.size + 10 * inst.pair_p.size
                + 4 * inst.prod.size + 8 * inst.q + 4)
    return int(P) * per_part


def model_size_problem(inst: PipelineInstance, P: int, seconds: float = math.inf) -> str:
    """Why a chain model with ``P`` parts should not be built ("" if it may): more than
    :data:`MAX_MODEL_NNZ` nonzeros, or more than ``seconds`` to build and load it at
    :data:`MODEL_NNZ_PER_SECOND`. O(1); keeps every MIP phase within its budget and
    memory whatever the graph and k."""
    nnz = model_nnz(inst, P)
    if nnz > MAX_MODEL_NNZ:
        return (f"the MIP would have ~{nnz:,} nonzeros ({inst.q:,} classes x {P:,} parts), "
                f"over the cap of {MAX_MODEL_NNZ:,}")
    if nnz / MODEL_NNZ_PER_SECOND > seconds:
        return (f"the MIP (~{nnz:,} nonzeros) cannot be built and loaded in the "
                f"{max(seconds, 0.0):.2g} s left")
    return ""


class _Rows:
    """Sparse rows of a chain model under construction (COO triplets + row bounds).

    Columns: ``y[c, j]`` at ``c * P + j`` (class c is in parts 0..j), then the receive
    and send indicators, then T. ``x[c, j] = y[c, j] - y[c, j-1]`` is "c is in part j"."""

    def __init__(self, P: int):
        self.P = P
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.lo: list[np.ndarray] = []
        self.up: list[np.ndarray] = []
        self.nrow = 0

    def yi(self, c, j) -> np.ndarray:
        return np.asarray(c, dtype=np.int64) * self.P + j

    def add(self, r_idx, col, v) -> None:
        r_idx, col, v = np.broadcast_arrays(np.asarray(r_idx, dtype=np.int64),
                                            np.asarray(col, dtype=np.int64),
                                            np.asarray(v, dtype=np.float64))
        self.rows.append(r_idx.ravel())
        self.cols.append(col.ravel())
        self.vals.append(v.ravel())

    def add_x(self, r_idx, c, j, v) -> None:
        """Add coefficient v on x[c, j] = y[c, j] - y[c, j-1] to rows r_idx (arrays)."""
        r_idx, c, j, v = np.broadcast_arrays(np.asarray(r_idx, dtype=np.int64),
                                             np.asarray(c, dtype=np.int64),
                                             np.asarray(j, dtype=np.int64),
                                             np.asarray(v, dtype=np.float64))
        self.add(r_idx, self.yi(c, j), v)
        m = j > 0
        self.add(r_idx[m], self.yi(c[m], j[m] - 1), -v[m])

    def new(self, count: int, lower: float, upper: float) -> np.ndarray:
        idx = np.arange(self.nrow, self.nrow + count, dtype=np.int64)
        self.lo.append(np.full(count, lower, dtype=np.float64))
        self.up.append(np.full(count, upper, dtype=np.float64))
        self.nrow += count
        return idx

    def matrix(self, nvar: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
        def cat(parts, dtype):
            return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
        A = sp.csr_matrix((cat(self.vals, np.float64),
                           (cat(self.rows, np.int64), cat(self.cols, np.int64))),
                          shape=(self.nrow, nvar))
        return A, cat(self.lo, np.float64), cat(self.up, np.float64)


def _order_rows(b: _Rows, inst: PipelineInstance, ny: int, nr: int) -> None:
    """Monotone y, precedence, and the receive/send indicator rows (P > 1)."""
    P, cc = b.P, np.arange(inst.q, dtype=np.int64)
    jj = np.arange(P - 1, dtype=np.int64)
    C, J = np.meshgrid(cc, jj, indexing="ij")          # monotone: y[c, j] <= y[c, j+1]
    r_idx = b.new(C.size, -math.inf, 0.0).reshape(C.shape)
    b.add(r_idx, b.yi(C, J), 1.0)
    b.add(r_idx, b.yi(C, J + 1), -1.0)
    if inst.edge_u.size:                               # precedence: y[w, j] <= y[u, j]
        E, J = np.meshgrid(np.arange(inst.edge_u.size), jj, indexing="ij")
        r_idx = b.new(E.size, -math.inf, 0.0).reshape(E.shape)
        b.add(r_idx, b.yi(inst.edge_w[E], J), 1.0)
        b.add(r_idx, b.yi(inst.edge_u[E], J), -1.0)
    if not inst.pair_p.size:
        return
    cu = inst.pcls[inst.pair_p]
    # inference: part 0 never receives, part P-1 never sends (ideals); training
    # graphs: backward edges cross boundaries backwards, so every part needs both
    lo_r, hi_s = (0, P) if inst.training else (1, P - 1)
    K, J = np.meshgrid(np.arange(inst.pair_p.size), np.arange(lo_r, P), indexing="ij")
    r_idx = b.new(K.size, -math.inf, 0.0).reshape(K.shape)
    b.add_x(r_idx, inst.pair_w[K], J, 1.0)
    b.add_x(r_idx, cu[K], J, -1.0)
    b.add(r_idx, ny + inst.pair_p[K] * P + J, -1.0)
    K, J = np.meshgrid(np.arange(inst.pair_p.size), np.arange(0, hi_s), indexing="ij")
    r_idx = b.new(K.size, -math.inf, 0.0).reshape(K.shape)
    b.add_x(r_idx, cu[K], J, 1.0)
    b.add_x(r_idx, inst.pair_w[K], J, -1.0)
    b.add(r_idx, ny + nr + inst.pair_p[K] * P + J, -1.0)


def _group_rows(b: _Rows, inst: PipelineInstance, groups, kind: str, ny: int, nr: int,
                T: int) -> None:
    """Per group of parts: cost <= mult * T, and memory <= mult * cap."""
    P, npr = b.P, inst.prod.size
    pp = np.arange(npr, dtype=np.int64)
    nzw = np.flatnonzero(inst.cwork > 0)
    for parts, mult in groups:
        r_cost = b.new(1, -math.inf, 0.0)[0]
        for j in parts:
            b.add_x(np.full(nzw.size, r_cost), nzw, j, inst.cwork[nzw])
            if npr:
                b.add(r_cost, ny + pp * P + j, inst.pcomm)
                b.add(r_cost, ny + nr + pp * P + j, inst.pcomm)
        b.add(r_cost, T, -float(mult))
        if inst.mem_cap is not None:
            r_mem = b.new(1, -math.inf, float(mult) * inst.mem_cap)[0]
            for j in parts:
                cm = _part_mem(inst, kind, P, j)
                nzm = np.flatnonzero(cm > 0)
                b.add_x(np.full(nzm.size, r_mem), nzm, j, cm[nzm])


def chain_model(inst: PipelineInstance, P: int, groups: Sequence[tuple[Sequence[int], float]], *,
                t_lower: float = 0.0, t_upper: float = math.inf, symmetry: bool = False,
                kind: str = "chain", position: int | None = None) -> ChainModel:
    """Build the chain model with ``P`` parts and cost/memory rows per group (see module doc).

    ``t_lower``/``t_upper`` bound T (a valid lower bound of the optimum and the
    value of a known partition keep the optimum feasible, so the dual bound stays
    valid). ``symmetry`` adds "part j empty => part j+1 empty" rows, valid only
    when every part is one stage of multiplicity 1 (empty stages can be moved to
    the end without changing any stage cost). Built in O(nnz) with numpy.
    """
    q, npr = inst.q, inst.prod.size
    ny, nr = q * P, npr * P
    T = ny + 2 * nr
    nvar = T + 1
    b = _Rows(P)
    cc = np.arange(q, dtype=np.int64)
    if P > 1:
        _order_rows(b, inst, ny, nr)
    _group_rows(b, inst, groups, kind, ny, nr, T)
    if symmetry and P > 1:
        # part j empty => part j+1 empty:  q * sum_c x[c, j] - sum_c x[c, j+1] >= 0
        # (exact 1F1B model: mirrored, empty parts first, see exact_model)
        first = kind == "exact" and inst.cact is not None
        for j in range(P - 1):
            r_s = b.new(1, 0.0, math.inf)[0]
            b.add_x(np.full(q, r_s), cc, j + first, float(q))
            b.add_x(np.full(q, r_s), cc, j + 1 - first, -1.0)
    A, row_lower, row_upper = b.matrix(nvar)
    col_lower, col_upper = np.zeros(nvar), np.ones(nvar)
    col_lower[b.yi(cc, P - 1)] = 1.0  # every class is in some part
    # r[., 0] (part 0 is an ideal: never receives) and s[., P-1] (never sends) are 0;
    # not in training graphs, where backward edges cross stage boundaries backwards
    if npr and not inst.training:
        pp = np.arange(npr, dtype=np.int64)
        col_upper[ny + pp * P + 0] = 0.0
        col_upper[ny + nr + pp * P + P - 1] = 0.0
    col_lower[T] = max(float(t_lower), 0.0)
    col_upper[T] = float(t_upper)
    integrality = np.zeros(nvar, dtype=bool)
    integrality[:ny] = True
    c = np.zeros(nvar)
    c[T] = 1.0
    model = MipModel(c=c, A=A, row_lower=row_lower, row_upper=row_upper,
                     col_lower=col_lower, col_upper=col_upper, integrality=integrality)
    return ChainModel(model=model, inst=inst, P=P, groups=[(list(g), float(m)) for g, m in groups],
                      kind=kind, position=position)


def _part_mem(inst: PipelineInstance, kind: str, P: int, j: int) -> np.ndarray:
    """Memory coefficient per class in part j: one micro-batch (plain, and every
    relaxation, where 1F1B memory only weakens to it), or ``cmem + (P-1-j) cact`` in the
    exact 1F1B model (part j of P holds P - j micro-batches, empty parts first)."""
    if kind == "exact" and inst.cact is not None:
        return inst.cmem + (P - 1 - j) * inst.cact
    return inst.cmem


def exact_model(inst: PipelineInstance, *, t_lower: float = 0.0, t_upper: float = math.inf,
                symmetry: bool = True) -> ChainModel:
    """The exact MIP: k parts, each one stage. Its optimum is the optimum bottleneck.

    Proof sketch: a 0/1 ``y`` satisfying monotonicity and precedence is exactly a
    chain of ideals of the class DAG, i.e. a valid k-partition (classes kept
    whole); at an optimum ``r``/``s`` sit at their lower bounds, which equal the
    receive / send indicators of DESIGN.md section 1 (producers with comm 0 are
    dropped, they cost nothing). Symmetry breaking (empty stages last) loses
    nothing because moving empty stages to the end keeps every stage's cost.
    1F1B with a cap (``inst.cact``): part j holds ``cmem + (k-1-j) cact``, exact when
    the empty parts come first (a non-empty stage at position j then has k - j
    non-empty stages from it on), so the symmetry rows are mirrored (part j+1
    empty => part j empty); moving empty stages to the front keeps every cost and
    never raises a stage's memory, so some optimum satisfies them. Every other
    formulation keeps one micro-batch per stage: 1F1B memory is at least that, so
    they remain relaxations (valid bounds).
    """
    k = inst.k
    return chain_model(inst, k, [([j], 1.0) for j in range(k)], t_lower=t_lower,
                       t_upper=t_upper, symmetry=symmetry, kind="exact")


def block_model(inst: PipelineInstance, *, t_lower: float = 0.0,
                t_upper: float = math.inf) -> ChainModel:
    """The bottleneck-block relaxation: before / block / after, with
    ``T >= f(block)`` and ``(k-1) T >= work + send(before) + work + recv(after)``.

    Valid: in an optimal partition with bottleneck T*, take any stage i as the
    block, the stages before it as "before" and those after as "after". The block
    row is f(S_i) <= T*. The k-1 other stages cost at most (k-1) T* in total, and
    that total includes their work, the send of every tensor leaving "before" (sent
    by its own stage, which does not contain the later consumer) and the receive of
    every tensor entering "after" (received by at least one stage there). Memory:
    the other stages hold at most (k-1) cap. So (partition, T*) is feasible and
    the relaxation's optimum, hence its dual bound, is <= T*.
    """
    k = inst.k
    if k == 1:
        return chain_model(inst, 1, [([0], 1.0)], t_lower=t_lower, t_upper=t_upper, kind="block")
    return chain_model(inst, 3, [([0, 2], float(k - 1)), ([1], 1.0)], t_lower=t_lower,
                       t_upper=t_upper, kind="block")


def position_parts(k: int, i: int, window: int = 1) -> list[tuple[list[int], float]]:
    """Groups for position i (0-based) with ``window`` single stages i..i+window-1."""
    window = max(1, min(window, k - i))
    groups = []
    j = 0
    if i > 0:
        groups.append(([j], float(i)))
        j += 1
    for _ in range(window):
        groups.append(([j], 1.0))
        j += 1
    after = k - i - window
    if after > 0:
        groups.append(([j], float(after)))
        j += 1
    return groups


def position_model(inst: PipelineInstance, i: int, *, window: int = 1, t_lower: float = 0.0,
                   t_upper: float = math.inf) -> ChainModel:
    """Guess-the-position relaxation for stage i (0-based): before (i stages, aggregated),
    stages i..i+window-1 modelled exactly, after (the rest, aggregated).

    Valid for every i on its own: in an optimal partition (bottleneck T*), let
    "before" be stages 0..i-1, the window stages i..i+w-1 and "after" the rest.
    Each window stage costs <= T*. Any run R of consecutive stages costs in total
    at least work(R) + comm of tensors R sends out (each sent once by its stage)
    + comm of tensors it receives from outside (each received at least once), and
    at most |R| T*; the model charges exactly these boundary terms to "before"
    (|R| = i) and "after" (|R| = k-i-w), and memory <= |R| cap. So T* is feasible
    and the dual bound of every position is a lower bound; their max is too.
    """
    groups = position_parts(inst.k, i, window)
    return chain_model(inst, len(groups), groups, t_lower=t_lower, t_upper=t_upper,
                       kind="position", position=i)


def part_of_stage(kind: str, k: int, stage_c: np.ndarray, position: int | None = None,
                  window: int = 1) -> np.ndarray:
    """Map a class stage vector onto the parts of a formulation (for warm starts)."""
    stage_c = np.asarray(stage_c, dtype=np.int64)
    if kind == "exact":
        used = unique_sorted(stage_c)  # compact: empty stages last (symmetry breaking)
        remap = np.zeros(k, dtype=np.int64)
        remap[used] = np.arange(used.size)
        return remap[stage_c]   # (1F1B: rejected by the mirrored rows unless all used)
    if kind == "block":
        raise ValueError("block model warm start needs a chosen block stage")
    assert position is not None, "a position warm start needs a position"
    i = int(position)
    w = max(1, min(window, k - i))
    off = 1 if i > 0 else 0
    part = np.where(stage_c < i, 0, stage_c - i + off)
    part = np.where(stage_c >= i + w, off + w, part)
    return part
