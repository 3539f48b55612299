"""The solver-neutral MIP layer: models, HiGHS and Gurobi backends, Gurobi size-limit fallback."""
import logging
import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from pipecore import SolverError
from pipecore.bounds.mip import MipModel, MipResult, SolverSession, available_backends, solve_model
from pipecore.result import Quality, Termination
from pipecore.bounds.mip import backends as B

try:
    HAVE_GUROBI = B.BACKENDS["gurobi"].usable()
except Exception:  # pragma: no cover
    HAVE_GUROBI = False

BACKEND_NAMES = ["highs", pytest.param("gurobi", marks=pytest.mark.skipif(
    not HAVE_GUROBI, reason="gurobipy missing or unlicensed"))]


def knapsack(n=12, seed=0):
    """max v.x s.t. w.x <= cap, x binary; brute-forceable for small n."""
    rng = np.random.default_rng(seed)
    w = rng.integers(3, 30, n).astype(float)
    v = rng.integers(1, 40, n).astype(float)
    cap = w.sum() / 2
    m = MipModel(c=v, A=sp.csr_matrix(w[None, :]), row_lower=[-np.inf], row_upper=[cap],
                 col_lower=np.zeros(n), col_upper=np.ones(n), integrality=np.ones(n, bool),
                 sense="max")
    best = 0.0
    if n > 16:
        return m, None
    for mask in range(1 << n):
        x = np.array([(mask >> i) & 1 for i in range(n)], dtype=float)
        if w @ x <= cap:
            best = max(best, v @ x)
    return m, best


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_knapsack_matches_brute_force(backend, seed):
    model, best = knapsack(seed=seed)
    res = solve_model(model, backend=backend, time_limit=20)
    assert res.backend == backend
    assert res.quality is Quality.OPTIMAL
    assert res.objective == pytest.approx(best)
    assert res.dual_bound == pytest.approx(best, rel=1e-4)  # max: an upper bound
    assert res.dual_bound >= best - 1e-6
    assert model.max_violation(res.x) <= 1e-6
    assert res.wall_time >= 0


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_min_with_ranges_and_equalities(backend):
    # min x0 + 2 x1 + 3 x2  s.t. 2 <= x0 + x1 <= 3, x1 + x2 = 2, x integer in [0, 5]
    A = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]], dtype=float))
    m = MipModel(c=[1, 2, 3], A=A, row_lower=[2, 2], row_upper=[3, 2], col_lower=[0, 0, 0],
                 col_upper=[5, 5, 5], integrality=[True, True, True])
    res = solve_model(m, backend=backend)
    assert res.quality is Quality.OPTIMAL
    assert res.objective == pytest.approx(4.0)  # x = (0, 2, 0)
    assert res.dual_bound <= 4.0 + 1e-6


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_lp_bound_and_statuses(backend):
    lp = MipModel(c=[1.0, 1.0], A=sp.csr_matrix([[1.0, 2.0]]), row_lower=[3.0], row_upper=[np.inf])
    res = solve_model(lp, backend=backend)
    assert res.quality is Quality.OPTIMAL and res.objective == pytest.approx(1.5)
    assert res.dual_bound == pytest.approx(1.5)
    infeas = MipModel(c=[1.0], A=sp.csr_matrix([[1.0]]), row_lower=[2.0], row_upper=[np.inf],
                      col_upper=[1.0], integrality=[True])
    res = solve_model(infeas, backend=backend)
    assert res.quality is Quality.INFEASIBLE and res.x is None
    unb = MipModel(c=[-1.0], A=sp.csr_matrix((0, 1)), row_lower=[], row_upper=[],
                   col_lower=[0.0], col_upper=[np.inf], integrality=[True])
    assert solve_model(unb, backend=backend).termination is Termination.ERROR


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_warm_start_and_time_limit(backend):
    model, best = knapsack(n=40, seed=3)
    x0 = np.zeros(40)
    res = solve_model(model, backend=backend, warm_start=x0, time_limit=0.5, threads=1)
    assert res.quality is Quality.OPTIMAL or res.termination is Termination.TIME_LIMIT
    assert res.objective >= 0 and res.x is not None
    assert res.wall_time < 15
    with pytest.raises(ValueError, match="warm_start"):
        solve_model(model, backend=backend, warm_start=np.zeros(3))


def test_model_validation():
    with pytest.raises(ValueError, match="columns"):
        MipModel(c=[1, 2], A=sp.csr_matrix(np.ones((1, 3))), row_lower=[0], row_upper=[1])
    with pytest.raises(ValueError, match="row_upper"):
        MipModel(c=[1], A=sp.csr_matrix(np.ones((2, 1))), row_lower=[0, 0], row_upper=[1])
    with pytest.raises(ValueError, match="sense"):
        MipModel(c=[1], A=sp.csr_matrix((0, 1)), row_lower=[], row_upper=[], sense="minimise")
    with pytest.raises(ValueError, match="NaN"):
        MipModel(c=[np.nan], A=sp.csr_matrix((0, 1)), row_lower=[], row_upper=[])
    with pytest.raises(ValueError, match="unknown MIP backend"):
        solve_model(knapsack(3)[0], backend="cplex")


def test_available_backends_does_not_import_solvers():
    assert "highs" in available_backends()
    code = ("import sys, pipecore, pipecore.bounds, pipecore.bounds.mip as m; "
            "names = m.available_backends(); "
            "assert 'highs' in names, names; "
            "assert 'highspy' not in sys.modules and 'gurobipy' not in sys.modules, "
            "[k for k in sys.modules if 'highs' in k or 'gurobi' in k]")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_gurobi_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(B.GurobiBackend, "available", lambda self: False)
    with pytest.raises(SolverError, match="gurobipy is not installed"):
        solve_model(knapsack(3)[0], backend="gurobi")
    # auto silently uses HiGHS
    assert solve_model(knapsack(3)[0], backend="auto").backend == "highs"


class _SizeLimitedGurobi(B.Backend):
    """A fake Gurobi whose licence refuses models over the pip limit (error 10010)."""

    name, module = "gurobi", "pipecore"
    calls: list = []

    def solve(self, model, options):
        type(self).calls.append(model.n_vars)
        if model.n_vars > B.GUROBI_SIZE_LIMIT or model.n_rows > B.GUROBI_SIZE_LIMIT:
            raise B.GurobiSizeLimitError("Model too large for size-limited license (10010)")
        return MipResult(Termination.COMPLETED, Quality.OPTIMAL, x=np.zeros(model.n_vars),
                         objective=0.0, dual_bound=0.0, backend=self.name)


def test_size_limit_fallback_with_a_fake_backend(caplog):
    """Error 10010 falls back to HiGHS once; the session remembers it, so later big models go
    straight to HiGHS (one notice) and small ones still use 'Gurobi'."""
    backends = {"highs": B.BACKENDS["highs"], "gurobi": _SizeLimitedGurobi()}
    _SizeLimitedGurobi.calls = []
    big, _ = knapsack(n=2500, seed=1)
    session = SolverSession()
    with caplog.at_level(logging.WARNING, logger="pipecore.mip"):
        res = solve_model(big, backend="auto", session=session, backends=backends,
                          time_limit=5)
        assert res.backend == "highs" and res.stats["fallback_from"] == "gurobi"
        assert res.x is not None and session.gurobi_size_limited
        res2 = solve_model(big, backend="auto", session=session, backends=backends,
                           time_limit=5)
    assert res2.backend == "highs" and _SizeLimitedGurobi.calls == [2500]
    assert caplog.text.count("10010") == 1
    small = solve_model(knapsack(5)[0], backend="auto", session=session, backends=backends)
    assert small.backend == "gurobi"
    # a fresh session (another certificate) starts without the knowledge
    assert not SolverSession().gurobi_size_limited


@pytest.mark.skipif(not HAVE_GUROBI, reason="gurobipy missing or unlicensed")
def test_gurobi_size_limit_falls_back_to_highs(caplog):
    n = 2500  # over the pip licence's 2,000-variable limit
    rng = np.random.default_rng(0)
    w = rng.integers(1, 10, n).astype(float)
    model = MipModel(c=-w, A=sp.csr_matrix(w[None, :]), row_lower=[-np.inf], row_upper=[50.0],
                     col_lower=np.zeros(n), col_upper=np.ones(n), integrality=np.ones(n, bool))
    session = SolverSession()
    with caplog.at_level(logging.WARNING, logger="pipecore.mip"):
        res = solve_model(model, backend="gurobi", time_limit=20, session=session)
    if res.backend == "gurobi":  # an unrestricted licence: nothing to fall back from
        pytest.skip("Gurobi licence is not size-limited here")
    assert res.backend == "highs" and res.stats.get("fallback_from") == "gurobi"
    assert "10010" in caplog.text and "falling back to HiGHS" in caplog.text
    assert res.quality is Quality.OPTIMAL and res.objective == pytest.approx(-50.0)
    assert session.gurobi_size_limited


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_concurrent_solves_in_threads(backend):
    from concurrent.futures import ThreadPoolExecutor

    models = [knapsack(n=12, seed=s) for s in range(4)]
    with ThreadPoolExecutor(2) as pool:
        out = list(pool.map(lambda mb: solve_model(mb[0], backend=backend), models))
    for (model, best), res in zip(models, out):
        assert res.quality is Quality.OPTIMAL and res.objective == pytest.approx(best)


def test_highs_instances_run_single_threaded():
    """Parallel MIPs are run in pipecore's threads, one HiGHS instance each: HiGHS's own
    default (threads=0) shares one task scheduler between them, and two presolves at
    once then deadlocked (clip at k=64; the thread outlived the time limit by minutes)."""
    set_to: dict = {}

    class FakeHighs:
        def setOptionValue(self, name, value):
            set_to[name] = value

    B.BACKENDS["highs"]._configure(FakeHighs(), B.SolverOptions(deadline=math.inf))
    assert set_to["threads"] == 1
    B.BACKENDS["highs"]._configure(FakeHighs(), B.SolverOptions(threads=3))
    assert set_to["threads"] == 3
