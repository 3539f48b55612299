"""Station (boundary) lower bound: destructive bounding on T with head/tail stations and
the communication every stage boundary must pay.

Let ``I_j = S_1 | ... | S_j`` (j = 1..k-1) be the ideals of a k-partition whose stage
costs are all at most T, and ``cut(I)`` the comm of the producers in I with a consumer
outside I (on colocation classes, the quotient DAG and its hyperedges).

**Claim.** For every j: ``work(I_j) + cut(I_j) <= j T`` and
``work(V - I_j) + cut(I_j) <= (k - j) T``.

*Proof.* Each producer u counted in cut(I_j) lies in some stage S_i, i <= j, and has a
consumer outside I_j, so u is in Out(S_i) and S_i pays comm[u]; distinct producers are
distinct summands and the works of S_1..S_j are further distinct summands, so
``sum_{i<=j} f(S_i) >= work(I_j) + cut(I_j)`` while the left side is <= j T. Likewise u
has a consumer in some stage S_i, i > j, which receives u (u is in In(S_i)) and pays
comm[u]; with the works of S_{j+1}..S_k, ``sum_{i>j} f(S_i) >= work(V-I_j) + cut(I_j)``.

**Forced classes** (SALBP head/tail stations). With ``desc(v)``/``anc(v)`` the work of v's
descendants/ancestors (v included): if ``desc(v) > (k-j) T`` then v is in I_j (else all
its descendants lie in V - I_j, whose work is <= (k-j) T); if ``anc(v) > j T`` then v is
not in I_j. A class forced both ways proves T infeasible.

**Test.** For lam in {1, 0, 1/2} the convex combination of the two inequalities gives
``min_I cut(I) + lam work(I) + (1-lam) work(V-I) <= lam j T + (1-lam)(k-j) T`` over the
ideals I respecting the forced classes: one s-t min cut (``_native._bounds.boundary_cut``).

**Window test.** f is subadditive on disjoint sets (a hyperedge split by S | S' is split
by S or by S'; work adds), so r consecutive stages ``U = I_{j+r} - I_j`` have
``f(U) <= sum f(S_i) <= r T``. U contains every class forced into I_{j+r} and out of I_j
and none forced into I_j or out of I_{j+r}; ``min f(U)`` over such sets (convexity
dropped, which only lowers it) is one s-t min cut (``_native._bounds.window_cut``);
windows of ``WINDOWS`` stages are tried.

**Spread test.** Every split hyperedge e (producer class x) costs at least 2 w_e in
total (x's stage sends it, another stage receives it), so
``k T >= W + sum_{e split} 2 w_e``. e can be split at boundary j only if its members are
neither all forced into I_j nor all forced out; let J(e) be those j. Since e split at j
implies e split, ``2 w_e [e split] >= sum_{j in J(e)} (2 w_e / |J(e)|) [e split at j]``,
hence ``k T >= W + sum_j min_I cut'(I)`` with the reweighted hyperedges, each minimum over
the ideals respecting the forced classes of j (k - 1 flows).

**Forced-split test** (flow-free). For every j the forced sets pin each class to an
interval [first, last] of stages; a hyperedge whose members' intervals share no stage is
split in every partition of bottleneck <= T, and each split hyperedge costs >= 2 w_e in
total as above, so ``W + 2 sum_{e forced split} w_e > k T`` refutes T; so does a class
with an empty interval. It runs first (O(q + sum |e|) per T).

If any test fails, no partition has bottleneck <= T, so ``T* > T``. Forced sets grow
and the right sides shrink as T decreases, so infeasibility is monotone in T and a
bisection finds the largest T the test refutes (each refuted T is a bound on its own,
so the result is valid even where floating point breaks the monotonicity). Memory caps and the schedule only
remove partitions, so the bound holds for them; training graphs (extended stages) are
skipped. Empty stages are allowed throughout (k_eff stages suffice).

Cost: the closure works (``_native._bounds.reach_works``: exact ancestor and descendant
works by blocked bitset reachability, O((q + m) q / 64) time, O(q) words of memory per
block; skipped above ``CLOSURE_MAX_CLASSES`` classes or when its estimated time exceeds
the budget), then per bisection step the flow-free tests and, up to
``STATION_MAX_CLASSES`` classes, up to 3 (k-1) max flows on a network of
q + (#hyperedges) vertices plus one flow per window; the flows stop at the deadline and
the best refuted T so far is returned. Measured on a 100,000-node layered DAG at
k = 64: 2.6 s, W/k raised by 1.5%.
"""
from __future__ import annotations

import math

import numpy as np

from .._runtime import clock
from ..problem import Problem
from .cuts import FLOW_RTOL, class_hypergraph

__all__ = ["station_bound", "refutes", "STATION_MAX_CLASSES", "CLOSURE_MAX_CLASSES"]

#: classes above which the min-cut tests are skipped (only the flow-free tests run).
STATION_MAX_CLASSES = 12_000
#: classes above which the closure works (O((q + m) q / 64) time) are not computed.
CLOSURE_MAX_CLASSES = 250_000
#: relative comparison slack of the flow test (floating-point max flow).
_TEST_RTOL = 1e-9
#: window lengths (consecutive stages) of the window test.
WINDOWS = (1, 2)


class _Data:
    """The class DAG, hypergraph and closure works of a problem (built once).

    ``complete`` is False when the closure did not finish by ``deadline`` (then
    ``anc``/``desc`` are zeros and must not be used); ``flows`` says whether the min-cut
    tests run (at most ``STATION_MAX_CLASSES`` classes)."""

    def __init__(self, problem: Problem, deadline: float = math.inf):
        from .._native._bounds import reach_works

        con = problem.graph.contract()
        qg = con.graph
        self.k = int(problem.k_eff)
        hptr, hnodes, hw, _, _, work, hsrc = class_hypergraph(problem)
        self.hptr, self.hnodes, self.hw, self.hsrc = hptr, hnodes, hw, hsrc
        self.work = np.ascontiguousarray(work, dtype=np.float64)
        self.total = float(self.work.sum())
        self.flows = self.work.size <= STATION_MAX_CLASSES
        self.pred_ptr = np.ascontiguousarray(qg.pred_ptr, dtype=np.int64)
        self.pred_idx = np.ascontiguousarray(qg.pred_idx, dtype=np.int32)
        topo = np.ascontiguousarray(qg.topological_order(), dtype=np.int32)
        desc = reach_works(np.ascontiguousarray(qg.succ_ptr, dtype=np.int64),
                           np.ascontiguousarray(qg.succ_idx, dtype=np.int32),
                           topo, self.work, deadline)
        anc = None if desc is None else reach_works(
            self.pred_ptr, self.pred_idx, np.ascontiguousarray(topo[::-1]), self.work,
            deadline)
        self.complete = anc is not None
        zero = np.zeros_like(self.work)
        self.desc: np.ndarray = zero if desc is None else desc
        self.anc: np.ndarray = zero if anc is None else anc


def _forced(data: _Data, j: int, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Classes provably in I_j and provably outside I_j (module docstring), j = 0..k."""
    k, slack = data.k, 1 + _TEST_RTOL
    if j <= 0:
        return np.zeros(data.work.size, bool), np.ones(data.work.size, bool)
    if j >= k:
        return np.ones(data.work.size, bool), np.zeros(data.work.size, bool)
    return data.desc > (k - j) * t * slack, data.anc > j * t * slack


def _exceeds(val: float, rhs: float) -> bool:
    return val * (1 - FLOW_RTOL) > rhs * (1 + _TEST_RTOL) + 1e-12


def _boundary_refutes(data: _Data, j: int, t: float, deadline: float) -> bool | None:
    """The boundary test at I_j (three values of lam); None at the deadline."""
    from .._native._bounds import boundary_cut

    k = data.k
    tin, tout = _forced(data, j, t)
    if np.any(tin & tout):
        return True
    force = np.zeros(data.work.size, dtype=np.int8)
    force[tin], force[tout] = 1, 2
    for lam in (1.0, 0.0, 0.5):
        if (lam == 1.0 and not tin.any()) or (lam == 0.0 and not tout.any()):
            continue     # I = empty / I = V meets that inequality
        if clock() > deadline:
            return None
        val = boundary_cut(data.pred_ptr, data.pred_idx, data.hptr, data.hnodes,
                           data.hw, data.hsrc, data.work, force, lam)
        if _exceeds(val, (lam * j + (1 - lam) * (k - j)) * t):
            return True
    return False


def _window_refutes(data: _Data, j: int, r: int, t: float) -> bool:
    """The window test: U = I_{j+r} - I_j must contain the classes forced into I_{j+r} and
    out of I_j, avoid those forced into I_j or out of I_{j+r}, and f(U) <= r t."""
    from .._native._bounds import window_cut

    in_lo, out_lo = _forced(data, j, t)
    in_hi, out_hi = _forced(data, j + r, t)
    must = in_hi & out_lo
    if not must.any():
        return False
    banned = in_lo | out_hi
    if np.any(must & banned):
        return True
    force = np.zeros(data.work.size, dtype=np.int8)
    force[must], force[banned] = 1, 2
    return _exceeds(window_cut(data.hptr, data.hnodes, data.hw, data.work, force), r * t)


def _stations(data: _Data, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Per class the first and last stage (1-based) it can occupy at bottleneck t, from
    the forced sets of :func:`_forced` for every j at once: ``first - 1`` is the largest
    j < k with ``anc > j t`` (or 0), ``last`` the smallest j with ``desc > (k - j) t``
    (or k). Float rounding of the division is repaired by re-checking those very
    comparisons (a value that fails them falls back to the trivial 1 or k). O(q)."""
    k, s = data.k, t * (1 + _TEST_RTOL)
    with np.errstate(divide="ignore", invalid="ignore"):   # t = 0: NaN falls back below
        j = np.clip(np.ceil(data.anc / s) - 1.0, 0.0, k - 1.0)
        last = np.clip(np.floor(k - data.desc / s) + 1.0, 1.0, float(k))
    for _ in range(2):
        j -= (j > 0) & ~(data.anc > j * s)
    first = np.where((j == 0) | (data.anc > j * s), j + 1.0, 1.0)
    for _ in range(2):
        last += (last < k) & ~(data.desc > (k - last) * s)
    last = np.where((last == k) | (data.desc > (k - last) * s), last, float(k))
    return first, last


def _split_refutes(data: _Data, t: float) -> bool:
    """The forced-split test: a hyperedge whose members' station intervals have no stage
    in common is split in every partition of bottleneck <= t, and each split hyperedge
    costs >= 2 w_e in total, so ``W + 2 sum_{e forced split} w_e > k t`` refutes t. It
    also refutes t when some class has an empty interval. O(q + sum |e|), no flows."""
    first, last = _stations(data, t)
    if np.any(first > last):
        return True
    if data.hw.size == 0:
        return False
    lo = np.maximum.reduceat(first[data.hnodes], data.hptr[:-1])
    hi = np.minimum.reduceat(last[data.hnodes], data.hptr[:-1])
    split = (lo > hi) & (np.diff(data.hptr) >= 2)
    return _exceeds(data.total + 2.0 * float(data.hw[split].sum()), data.k * t)


def _spread_refutes(data: _Data, t: float, deadline: float) -> bool | None:
    """The spread test (module docstring): ``W + sum_j min cut'(I_j) > k t``."""
    from .._native._bounds import boundary_cut

    k, slack = data.k, 1 + _TEST_RTOL
    if data.hw.size == 0:
        return False
    sizes = np.diff(data.hptr)
    min_anc = np.minimum.reduceat(data.anc[data.hnodes], data.hptr[:-1])
    min_desc = np.minimum.reduceat(data.desc[data.hnodes], data.hptr[:-1])
    js = np.arange(1, k)
    can = ~(min_anc[:, None] > js[None, :] * t * slack) \
        & ~(min_desc[:, None] > (k - js)[None, :] * t * slack)
    count = can.sum(axis=1)
    weight = np.where(count > 0, 2.0 * data.hw / np.maximum(count, 1), 0.0)
    weight[sizes < 2] = 0.0
    zero = np.zeros_like(data.work)
    total = data.total
    for j in _boundary_order(k):
        if clock() > deadline:
            return None
        tin, tout = _forced(data, j, t)
        if np.any(tin & tout):
            return True
        force = np.zeros(data.work.size, dtype=np.int8)
        force[tin], force[tout] = 1, 2
        total += boundary_cut(data.pred_ptr, data.pred_idx, data.hptr, data.hnodes, weight,
                              data.hsrc, zero, force, 1.0) * (1 - FLOW_RTOL)
        if _exceeds(total, k * t):
            return True
    return False


def refutes(data: _Data, t: float, deadline: float = math.inf,
            windows: tuple[int, ...] | None = None) -> bool | None:
    """True when the tests of the module docstring prove that no partition has every stage
    cost <= t; False when they do not; None when the deadline passed first."""
    k = data.k
    if data.total > k * t * (1 + _TEST_RTOL):
        return True
    if k <= 1:
        return False
    if _split_refutes(data, t):
        return True
    if not data.flows:
        return False
    for j in _boundary_order(k):
        got = _boundary_refutes(data, j, t, deadline)
        if got is not False:
            return got
    for r in WINDOWS if windows is None else windows:
        for j in range(0, k - r + 1):
            if clock() > deadline:
                return None
            if _window_refutes(data, j, r, t):
                return True
    return _spread_refutes(data, t, deadline)


def _boundary_order(k: int) -> list[int]:
    """Boundaries 1..k-1, middle first (where head and tail stations meet)."""
    mid = k / 2.0
    return sorted(range(1, k), key=lambda j: abs(j - mid))


#: seconds per unit of q (q + m) of the two closure passes (measured: 2.3 s at 100k
#: classes and 200k arcs on this project's 2-core reference machine).
CLOSURE_SECONDS_PER_UNIT = 8e-11


def station_bound_applies(problem: Problem) -> bool:
    """Whether :func:`station_bound` runs on this problem at all (size and semantics)."""
    return not problem.is_training and problem.n_classes <= CLOSURE_MAX_CLASSES


def station_bound(problem: Problem, lower: float, upper: float, *,
                  deadline: float = math.inf, rtol: float = 1e-4) -> tuple[float, dict]:
    """The largest T in [lower, upper) the test refutes (galloping up from ``lower``, then
    bisection to ``rtol`` relative),
    or ``lower`` when none is refuted. ``lower`` must be a proven bound, ``upper`` an
    upper bound on the optimum (a partition's bottleneck). Returns ``(bound, details)``;
    every refuted T is a valid bound, so stopping at ``deadline`` keeps the best so far.
    """
    started = clock()
    if problem.is_training:
        return lower, {"skipped": "training graph"}
    if problem.n_classes > CLOSURE_MAX_CLASSES:
        return lower, {"skipped": f"{problem.n_classes} classes > CLOSURE_MAX_CLASSES"}
    if not (math.isfinite(upper) and upper > lower):
        return lower, {"skipped": "no gap"}
    q = problem.n_classes
    need = CLOSURE_SECONDS_PER_UNIT * q * (q + problem.graph.contract().graph.m)
    if need > 0.8 * (deadline - started):
        return lower, {"skipped": f"the closure needs ~{need:.1f} s"}
    data = _Data(problem, deadline)
    if not data.complete:
        return lower, {"skipped": "closure not finished by the deadline"}
    lo, hi, steps = lower, upper, 0
    step, galloping = (upper - lower) / 64.0, True
    while hi - lo > rtol * hi and clock() < deadline:
        # gallop up from the proven bound (refutations near it are found first and are
        # cheap: the first failing test stops), then bisect once a T survives
        mid = min(lo + step, 0.5 * (lo + hi)) if galloping else 0.5 * (lo + hi)
        got = refutes(data, mid, deadline)
        if got is None:
            break
        steps += 1
        if got:
            lo, step = mid, 2 * step
        else:
            hi, galloping = mid, False
    details = {"steps": steps, "time": clock() - started}
    return lo, details
