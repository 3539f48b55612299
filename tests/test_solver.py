"""The solve() pipeline: options validated once, one budget, fallback once, provenance."""
import json
import math
import time

import numpy as np
import pytest

import pipecore
from pipecore import InvalidOptionError, Problem, Quality, Termination
from pipecore._runtime import Budget
from pipecore.cli import main
from pipecore.generators import layered_dag
from pipecore.options import Option, OptionSet, parse_option
from pipecore.solver import METHODS, get_method, method_options


@pytest.fixture(scope="module")
def wide():
    return layered_dag(400, width=40, seed=1)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_unknown_option_is_rejected_by_every_method(method):
    g = layered_dag(30, seed=0)
    with pytest.raises(InvalidOptionError, match="unknown option 'no_such_option'"):
        pipecore.solve(g, 2, method=method, no_such_option=1)


def test_typo_gets_a_suggestion_and_bad_values_a_reason():
    g = layered_dag(30, seed=0)
    with pytest.raises(InvalidOptionError, match="did you mean 'population'"):
        pipecore.solve(g, 2, method="slicegraph", populaton=8)
    for bad in (0, 1.5, "8", True):
        with pytest.raises(InvalidOptionError, match="population"):
            pipecore.solve(g, 2, method="slicegraph", population=bad)
    with pytest.raises(InvalidOptionError, match="mip_backend"):
        pipecore.solve(g, 2, mip_backend="cplex")
    with pytest.raises(InvalidOptionError, match="fallback"):
        pipecore.solve(g, 2, method="ideals", fallback="magic")


def test_cli_option_parser_is_the_same_declaration(capsys):
    assert main(["solve", "--model", "bert-base", "-k", "2", "-O", "populaton=8"]) == 2
    assert "did you mean 'population'" in capsys.readouterr().err
    assert main(["solve", "--model", "bert-base", "-k", "2", "-O", "max_ideals=abc"]) == 2
    assert "max_ideals" in capsys.readouterr().err
    specs = method_options("slicegraph")
    assert parse_option("population=12", specs) == ("population", 12)
    with pytest.raises(InvalidOptionError):
        parse_option("population", specs)


def test_option_declarations():
    spec = OptionSet("method 'x'", [Option("rate", float, 0.5, minimum=0, maximum=1,
                                           strict=True, strict_max=True)])
    assert spec.validate({}) == {"rate": 0.5}
    assert spec.validate({"rate": 0.25}) == {"rate": 0.25}
    for bad in (0, 1, -1, math.nan, "0.3"):
        with pytest.raises(InvalidOptionError):
            spec.validate({"rate": bad})
    assert "0 < x < 1" in spec.help()
    assert "max_sweeps" in pipecore.options_help("local")


def test_fallback_runs_once_and_keeps_the_users_budget(wide):
    res = pipecore.solve(wide, 6, method="ideals", max_ideals=50, time_limit=6, seed=0)
    names = [p.name for p in res.phases]
    assert names.count("ideals") == 1 and names.count("slicegraph") == 1, names
    ideals = res.phases[names.index("ideals")]
    assert ideals.termination is Termination.CAPPED
    assert res.partition is not None
    assert res.upper_bound_source in ("slicegraph", "slicegraph+polish")
    assert any("fell back to slicegraph" in m for m in res.message.split("; "))
    res = pipecore.solve(wide, 6, method="ideals", max_ideals=50, fallback="none", time_limit=6)
    assert "slicegraph" not in [p.name for p in res.phases]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_no_method_outlives_its_budget(method, wide):
    """Handed a nearly spent budget, every method returns at once."""
    problem = Problem(wide, 6)
    fn = get_method(method)
    budget = Budget(0.05)
    t = time.monotonic()
    res = fn(problem, budget, seed=0)
    assert time.monotonic() - t < 1.0, f"{method} ran past its budget"
    if res.partition is not None:
        assert problem.is_valid(res.partition)


def test_no_phase_after_the_budget(wide):
    t = time.monotonic()
    res = pipecore.solve(wide, 8, time_limit=1.0, seed=0)
    wall = time.monotonic() - t
    assert wall < 1.0 + 1.0
    assert sum(p.seconds for p in res.phases) <= wall + 1e-6
    assert res.partition is not None and res.termination in (Termination.TIME_LIMIT,
                                                            Termination.COMPLETED)
    if res.termination is Termination.TIME_LIMIT:
        assert res.quality in (Quality.FEASIBLE, Quality.OPTIMAL)


def test_auto_refines_slicegraph_with_annealing_within_its_share(wide):
    res = pipecore.solve(wide, 16, time_limit=6, seed=0)    # 400 x 16 binaries: no exact MIP
    names = [p.name for p in res.phases]
    assert names.index("slicegraph") + 1 == names.index("refine") < names.index("polish")
    refine = res.phases[names.index("refine")]
    assert refine.seconds <= 0.1 * 6 + 0.3                       # SHARES["refine"]
    assert refine.termination is Termination.COMPLETED
    slicegraph = res.phases[names.index("slicegraph")]
    assert refine.upper_bound <= slicegraph.upper_bound
    assert res.upper_bound <= refine.upper_bound
    if refine.upper_bound < slicegraph.upper_bound:
        assert res.upper_bound_source.startswith("slicegraph+anneal")
    # the exact MIP searches partitions itself (400 x 8 binaries) and gets the time instead
    assert "refine" not in [p.name for p in pipecore.solve(wide, 8, time_limit=3).phases]
    assert "refine" in [p.name for p in pipecore.solve(wide, 8, time_limit=3, mip=False).phases]
    # closed before it would run (the DP proves the optimum): no refine phase
    assert "refine" not in [p.name for p in pipecore.solve(layered_dag(40, seed=0), 3).phases]


def test_provenance_and_json(wide):
    res = pipecore.solve(wide, 4, time_limit=5, seed=0)
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert d["quality"] == res.quality.value and d["termination"] == res.termination.value
    assert d["upper_bound_source"] and d["lower_bound_source"]
    assert [p["name"] for p in d["phases"]][0] == "bound:combinatorial"
    assert res.lower_bound <= res.upper_bound
    assert res.gap == (0.0 if res.upper_bound <= res.lower_bound
                       else res.upper_bound / res.lower_bound - 1)


def test_problem_is_validated_once_and_is_frozen():
    g = layered_dag(20, seed=0)
    p = Problem(g, 10**9)
    assert p.k_eff <= g.n
    with pytest.raises(pipecore.InvalidStageCountError):
        Problem(g, 0)
    with pytest.raises(pipecore.InvalidStageCountError):
        Problem(g, 2.5)
    with pytest.raises(Exception):
        p.k = 3  # frozen
    with pytest.raises(pipecore.InfeasibleMemoryError):
        Problem(g, 2, mem_cap=float(np.max(g.mem)) * 0.5)
