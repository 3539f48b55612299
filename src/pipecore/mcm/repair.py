"""Constraint repair: the valid MCM partition closest to a proposal.

A proposal (a chip per node, e.g. sampled from a policy) may send data backward,
split a colocation group, overflow a chip's SRAM or leave chips empty. Repair finds
the valid partition minimising a per-(node, chip) cost:

- ``objective="moves"``: the number of nodes whose chip changes;
- ``objective="likelihood"``: ``-sum_v log p[v, chip(v)]`` for a policy's per-node
  chip distribution ``p`` (the most likely valid partition);

subject to forward data flow along the chip order, SRAM per chip and, optionally,
every chip used. With a free chip order (``MCMConfig(order="free")``) the chip order
is first chosen from the proposal (chips sorted by the mean topological rank of the
ops proposed for them, unused chips last) and the repair is exact *for that order*:
the program below runs on stage positions with costs and SRAM permuted. Two solvers:

- **exact** (``method="mip"``): a 0/1 program on the colocation quotient with
  "prefix" variables ``y[q, c] = [chip(q) <= c]`` (so a forward edge u -> v is the
  2-term row ``y[v, c] <= y[u, c]``), solved through
  :func:`pipecore.bounds.mip.solve_model` (HiGHS or Gurobi) with a time limit and
  the greedy repair as warm start (it *is* the proposal when the proposal is
  valid). On a time-out with no incumbent, or a backend error, the greedy answer
  is returned and ``method``/``message`` say so.
- **greedy** (``method="greedy"``): the native heuristic of
  ``pipecore._native._mcm.repair_one`` (monotone fix, SRAM sweeps, fill empty
  chips), microseconds per proposal; used to score many samples in training and
  search. It never returns an invalid partition; it can fail (quality
  ``no_solution``) on tight SRAM where a valid partition still exists.

Every result reports how far the repair moved the proposal (``moved`` nodes).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .. import errors
from .._native import _mcm
from ..result import Quality, Termination
from .costmodel import MCMProblem

__all__ = ["RepairResult", "repair", "greedy_repair", "greedy_repair_batch", "cost_matrix"]

_GREEDY_FAIL = {1: "SRAM could not be met greedily", 2: "could not fill every chip greedily"}


@dataclass
class RepairResult:
    """Outcome of one repair.

    ``chip`` is a valid assignment (None when none was found). ``quality`` and
    ``termination`` speak the vocabulary of :class:`~pipecore.result.SolveResult`:
    ``optimal`` (proven closest), ``feasible`` (a MIP incumbent or the greedy answer,
    ``method`` says which), ``infeasible`` (proven: no valid partition), ``no_solution``
    (none found, infeasibility not proven). ``moved`` counts nodes
    whose chip differs from the proposal; ``objective`` is the repair objective and
    ``bound`` a proven lower bound on it (nan if none).
    """

    chip: np.ndarray | None
    quality: Quality
    termination: Termination
    method: str
    moved: int
    objective: float
    bound: float = math.nan
    wall_time: float = 0.0
    message: str = ""

    @property
    def success(self) -> bool:
        return self.chip is not None


def cost_matrix(problem: MCMProblem, proposal=None, probs=None,
                objective: str = "moves") -> np.ndarray:
    """(units, C) cost of putting each colocation class on each chip."""
    C, nq, n = problem.C, problem.quotient.n, problem.graph.n
    if objective == "moves":
        if proposal is None:
            raise ValueError("objective='moves' needs a proposal (one chip per node)")
        prop = _proposal(problem, proposal)
        out = np.empty((1, nq, C))
        _mcm.moves_cost(problem.node_map, problem.qsize, prop[None, :], out)
        return out[0]
    if objective == "likelihood":
        if probs is None:
            raise ValueError("objective='likelihood' needs probs (one chip distribution per node)")
        p = np.asarray(probs, dtype=np.float64)
        if p.shape != (n, C):
            raise errors.InvalidPartitionError(f"probs: expected shape ({n}, {C}), got {p.shape}")
        if not np.isfinite(p).all() or (p < 0).any():
            raise errors.InvalidCostError("probs must be finite and >= 0")
        nll = -np.log(np.clip(p / np.maximum(p.sum(axis=1, keepdims=True), 1e-300), 1e-12, 1.0))
        out = np.zeros((nq, C))
        np.add.at(out, problem.node_map, nll)
        return out
    raise ValueError(f"objective must be 'moves' or 'likelihood', got {objective!r}")


def _proposal(problem: MCMProblem, proposal) -> np.ndarray:
    arr = np.asarray(proposal)
    if arr.shape != (problem.graph.n,):
        raise errors.InvalidPartitionError(
            f"proposal: expected one chip per node (shape ({problem.graph.n},)), got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.int32)
    if arr.size and (arr.min() < 0 or arr.max() >= problem.C):
        raise errors.InvalidPartitionError(f"proposal: chips must lie in 0..{problem.C - 1}")
    return arr


def chip_paths_for(problem: MCMProblem, proposals: np.ndarray) -> np.ndarray:
    """(B, C) chip order per proposal: the identity for a chain package; for a free order,
    chips by the mean topological rank of the nodes proposed for them (unused chips
    last, in the first candidate path's order). O(B (n + C log C))."""
    props = np.atleast_2d(proposals)
    B, C = props.shape[0], problem.C
    if not problem.free_order:
        return np.tile(np.arange(C, dtype=np.int32), (B, 1))
    rank = np.empty(problem.graph.n)
    rank[problem.graph.topological_order()] = np.arange(problem.graph.n)
    tie = np.empty(C)
    tie[problem.paths[0]] = np.arange(C) / C
    out = np.empty((B, C), dtype=np.int32)
    for b in range(B):
        cnt = np.bincount(props[b], minlength=C)
        mean = np.bincount(props[b], weights=rank, minlength=C) / np.maximum(cnt, 1)
        mean = np.where(cnt > 0, mean, np.inf)
        out[b] = np.lexsort((tie, mean)).astype(np.int32)
    return out


def _greedy_on_costs(problem: MCMProblem, cost: np.ndarray, use_all: bool, perms=None):
    """Native greedy repair of a (B, units, C) cost tensor -> (chips_q (B, units), status (B,)).

    ``perms`` (B, C): chip order per row (stage position -> chip); identity if None."""
    q = problem.quotient
    B = cost.shape[0]
    out = np.empty((B, q.n), dtype=np.int32)
    status = np.empty(B, dtype=np.int8)
    if perms is None:
        perms = np.tile(np.arange(problem.C, dtype=np.int32), (B, 1))
    same = bool((perms == np.arange(problem.C)).all())
    for lo in range(0, B, 1 if not same else max(B, 1)):
        hi = B if same else lo + 1
        perm = perms[lo]
        _mcm.greedy_repair_batch(q.succ_ptr, q.succ_idx, q.pred_ptr, q.pred_idx, problem.qtopo,
                                 np.ascontiguousarray(cost[lo:hi][:, :, perm], dtype=np.float64),
                                 np.ascontiguousarray(q.mem),
                                 np.ascontiguousarray(problem.sram[perm]),
                                 bool(use_all), out[lo:hi], status[lo:hi])
        out[lo:hi] = perm[out[lo:hi]]
    return out, status


def greedy_repair_batch(problem: MCMProblem, proposals, use_all_chips: bool = False):
    """Repair a batch of proposals (B, n) with the native greedy (fewest-moves objective).

    Returns ``(chips (B, n) int32, ok (B,) bool, moved (B,) int)``; rows with
    ``ok=False`` hold an assignment that is forward-valid but may violate SRAM or
    leave a chip empty. O(B (passes (n + m) C + moves (n + m))).
    """
    props = np.ascontiguousarray(np.atleast_2d(proposals), dtype=np.int32)
    if props.shape[1] != problem.graph.n:
        raise errors.InvalidPartitionError(
            f"proposals: expected shape (B, {problem.graph.n}), got {props.shape}")
    if props.size and (props.min() < 0 or props.max() >= problem.C):
        raise errors.InvalidPartitionError(f"proposals: chips must lie in 0..{problem.C - 1}")
    B = props.shape[0]
    cost = np.empty((B, problem.quotient.n, problem.C))
    _mcm.moves_cost(problem.node_map, problem.qsize, props, cost)
    chips_q, status = _greedy_on_costs(problem, cost, use_all_chips, chip_paths_for(problem, props))
    chips = problem.expand(chips_q)
    moved = (chips != props).sum(axis=1)
    return chips, status == 0, moved


def greedy_repair(problem: MCMProblem, proposal=None, *, probs=None, objective: str = "moves",
                  use_all_chips: bool = False) -> RepairResult:
    """Native greedy repair of one proposal (see module docstring)."""
    t0 = time.perf_counter()
    cost = cost_matrix(problem, proposal, probs, objective)
    prop = _reference_proposal(problem, proposal, probs)
    chips_q, status = _greedy_on_costs(problem, cost[None], use_all_chips,
                                       chip_paths_for(problem, prop))
    code = int(status[0])
    chip = problem.expand(chips_q[0])
    if code != 0:
        return RepairResult(None, Quality.NO_SOLUTION, Termination.COMPLETED, "greedy", -1,
                            math.inf,
                            wall_time=time.perf_counter() - t0, message=_GREEDY_FAIL[code])
    return RepairResult(chip, Quality.FEASIBLE, Termination.COMPLETED, "greedy",
                        int((chip != prop).sum()),
                        float(cost[np.arange(cost.shape[0]), chips_q[0]].sum()),
                        wall_time=time.perf_counter() - t0)


def _reference_proposal(problem, proposal, probs) -> np.ndarray:
    if proposal is not None:
        return _proposal(problem, proposal)
    return np.asarray(probs).argmax(axis=1).astype(np.int32)


def build_repair_mip(problem: MCMProblem, cost: np.ndarray, use_all_chips: bool, sram=None):
    """The exact repair program on the quotient (see module docstring).

    Variables ``y[q, c]`` for ``c < C-1`` (``y[q, C-1] = 1``), chip(q) = c where y
    first becomes 1, ``x[q, c] = y[q, c] - y[q, c-1]``. Rows: ``y[q, c] <= y[q, c+1]``;
    ``y[v, c] <= y[u, c]`` per quotient edge (forward flow); ``sum_q mem[q] x[q, c]
    <= sram[c]`` per finite SRAM; ``sum_q x[q, c] >= 1`` for use-every-chip. Objective
    ``sum_q cost[q, chip(q)] = const + sum (cost[q, c] - cost[q, c+1]) y[q, c]``.
    Size: q(C-1) binaries, q(C-2) + e(C-1) + 2C rows, all 2-term except the chip rows.
    Returns (c, A (csr), row_lower, row_upper, constant).
    """
    from scipy.sparse import coo_matrix

    q = problem.quotient
    nq, C = q.n, problem.C
    K = C - 1
    idx = np.arange(nq * K).reshape(nq, K)
    obj = (cost[:, :K] - cost[:, 1:]).ravel()
    const = float(cost[:, K].sum())
    rows, cols, vals, lo, hi = [], [], [], [], []
    r0 = 0

    def add(rr, cc, vv):
        rows.append(np.asarray(rr).ravel()), cols.append(np.asarray(cc).ravel())
        vals.append(np.asarray(vv, dtype=np.float64).ravel())

    def at_most(a, b):
        """Rows x[a] - x[b] <= 0, one per pair."""
        nonlocal r0
        r = r0 + np.arange(a.size)
        add(np.concatenate([r, r]), np.concatenate([a, b]),
            np.concatenate([np.ones(a.size), -np.ones(a.size)]))
        lo.append(np.full(a.size, -np.inf))
        hi.append(np.zeros(a.size))
        r0 += a.size

    if K >= 2:  # monotone prefix: y[q, c] <= y[q, c + 1]
        at_most(idx[:, :-1].ravel(), idx[:, 1:].ravel())
    if q.m:  # forward edges: y[dst, c] - y[src, c] <= 0
        at_most(idx[q.dst].ravel(), idx[q.src].ravel())

    def chip_rows(weights, lower, upper):
        """sum_q weights[q] x[q, c] in [lower[c], upper[c]] for every chip c."""
        nonlocal r0
        total = float(weights.sum())
        for c in range(C):
            parts_c, parts_v = [], []
            if c < K:
                parts_c.append(idx[:, c]), parts_v.append(weights)
            if c > 0:
                parts_c.append(idx[:, c - 1]), parts_v.append(-weights)
            cc, vv = np.concatenate(parts_c), np.concatenate(parts_v)
            shift = total if c == K else 0.0  # x[q, C-1] = 1 - y[q, C-2]
            add(np.full(cc.size, r0), cc, vv)
            lo.append([lower[c] - shift]), hi.append([upper[c] - shift])
            r0 += 1

    cap = problem.sram if sram is None else np.asarray(sram, dtype=np.float64)
    if np.isfinite(cap).any():
        upper = np.where(np.isfinite(cap), cap * (1 + 1e-12), np.inf)
        chip_rows(np.asarray(q.mem, dtype=np.float64), np.full(C, -np.inf), upper)
    if use_all_chips:
        chip_rows(np.ones(nq), np.ones(C), np.full(C, np.inf))
    if rows:
        A = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                       shape=(r0, nq * K)).tocsr()
        rl, ru = np.concatenate([np.asarray(x, float) for x in lo]), np.concatenate(
            [np.asarray(x, float) for x in hi])
    else:
        A = coo_matrix((0, nq * K)).tocsr()
        rl = ru = np.zeros(0)
    return obj, A, rl, ru, const


def _solve_binary(obj, A, rl, ru, time_limit, warm_start, backend):
    """Solve a 0/1 minimisation through pipecore's MIP layer.

    Returns the :class:`~pipecore.bounds.mip.MipResult` (quality, termination, x,
    objective, dual bound, backend)."""
    from ..bounds.mip import MipModel, solve_model

    n = obj.size
    model = MipModel(c=obj, A=A, row_lower=rl, row_upper=ru, col_lower=np.zeros(n),
                     col_upper=np.ones(n), integrality=np.ones(n, dtype=bool), sense="min")
    return solve_model(model, backend=backend, time_limit=time_limit, threads=1,
                       warm_start=warm_start)


def _single_chip(problem: MCMProblem, cost: np.ndarray, prop: np.ndarray,
                 t0: float) -> RepairResult:
    """The only assignment of a one-chip package, or proven infeasibility."""
    chip = np.zeros(problem.graph.n, dtype=np.int32)
    bad = problem.violations(chip)
    if bad:
        return RepairResult(None, Quality.INFEASIBLE, Termination.COMPLETED, "mip", -1, math.inf,
                            wall_time=time.perf_counter() - t0, message="; ".join(bad))
    val = float(cost[:, 0].sum())
    return RepairResult(chip, Quality.OPTIMAL, Termination.COMPLETED, "mip",
                        int((chip != prop).sum()), val, val, time.perf_counter() - t0)


def repair(problem: MCMProblem, proposal=None, *, probs=None, objective: str = "moves",
           use_all_chips: bool = False, method: str = "mip", time_limit: float | None = 10.0,
           backend: str = "auto") -> RepairResult:
    """The valid partition closest to a proposal (see module docstring).

    Parameters
    ----------
    problem : MCMProblem
    proposal : array (n,) of int, optional
        Proposed chip per node (needed for ``objective="moves"``).
    probs : array (n, C), optional
        Policy distribution per node (needed for ``objective="likelihood"``).
    use_all_chips : bool
        Require every chip to hold at least one node.
    method : {"mip", "greedy"}
        Exact MIP with greedy fallback, or the native greedy only.
    time_limit : float, optional
        MIP time limit in seconds.
    backend : str
        MIP backend for :func:`pipecore.bounds.mip.solve_model` (``auto``, ``highs``, ``gurobi``).
    """
    if method not in ("mip", "greedy"):
        raise ValueError(f"method must be 'mip' or 'greedy', got {method!r}")
    problem.check_feasible(use_all_chips)
    greedy = greedy_repair(problem, proposal, probs=probs, objective=objective,
                           use_all_chips=use_all_chips)
    if method == "greedy":
        return greedy
    t0 = time.perf_counter()
    cost = cost_matrix(problem, proposal, probs, objective)
    prop = _reference_proposal(problem, proposal, probs)
    C, nq = problem.C, problem.quotient.n
    if C == 1:  # nothing to choose: everything on chip 0
        return _single_chip(problem, cost, prop, t0)
    perm = chip_paths_for(problem, prop)[0]
    ipos = np.argsort(perm)
    obj, A, rl, ru, const = build_repair_mip(problem, cost[:, perm], use_all_chips,
                                             sram=problem.sram[perm])
    warm = None
    if greedy.chip is not None:
        qchip = ipos[greedy.chip[problem.rep]]
        warm = (qchip[:, None] <= np.arange(C - 1)[None, :]).astype(np.float64).ravel()
    try:
        res = _solve_binary(obj, A, rl, ru, time_limit, warm, backend)
    except Exception as exc:  # backend failure: fall back to the greedy answer
        greedy.method, greedy.message = "mip->greedy", f"MIP failed ({exc}); greedy answer"
        greedy.wall_time += time.perf_counter() - t0
        return greedy
    elapsed = time.perf_counter() - t0 + greedy.wall_time
    used = f"mip[{res.backend}]"
    bound = res.dual_bound + const if math.isfinite(res.dual_bound) else math.nan
    if res.quality is Quality.INFEASIBLE:
        return RepairResult(None, Quality.INFEASIBLE, res.termination, used, -1, math.inf,
                            wall_time=elapsed,
                            message="no valid partition exists (proven by the MIP)")
    if res.x is not None:
        y = np.asarray(res.x).reshape(nq, C - 1)
        chip_q = perm[(C - 1 - np.rint(y).sum(axis=1)).astype(np.int32)]
        chip = problem.expand(chip_q)
        if not problem.violations(chip):
            val = float(cost[np.arange(nq), chip_q].sum())
            if greedy.chip is not None and greedy.objective < val - 1e-9:  # the better of two
                chip, val = greedy.chip, greedy.objective
            proven = res.quality is Quality.OPTIMAL
            return RepairResult(chip, Quality.OPTIMAL if proven else Quality.FEASIBLE,
                                res.termination, used, int((chip != prop).sum()), val,
                                val if proven else bound, elapsed, res.message or "")
    greedy.method = f"{used}->greedy"
    greedy.termination = res.termination
    greedy.message = (f"MIP stopped ({res.termination.value}, {res.quality.value}) with no "
                      f"usable incumbent; greedy answer")
    greedy.bound = bound
    greedy.wall_time = elapsed
    return greedy
