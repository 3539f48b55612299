"""One regression test per item of issue 12 (reliability): fresh clone, crashes and wrong
answers, limits, silent coercion and unclear messages, newcomer friction. CLI checks
run in a subprocess so a segfault or a hang is seen as such (exit code, wall time)."""
from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import pipecore
from pipecore import Graph, Partition, errors
from pipecore.generators import layered_dag

from oracle import MSR_DIR

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, timeout=120, cwd=None):
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pipecore", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)
    return proc, time.monotonic() - t0


def graph_doc(work, k=None, mem_cap=None, edges=None, names=None):
    n = len(work)
    meta = {key: v for key, v in (("k", k), ("mem_cap", mem_cap)) if v is not None}
    return {"format": "pipecore.graph", "version": 2,
            "nodes": {"name": names or [f"n{i}" for i in range(n)], "work": work,
                      "comm": [0.1] * n, "mem": [1.0] * n},
            "edges": [[i, i + 1] for i in range(n - 1)] if edges is None else edges,
            "metadata": meta}


def write(tmp_path, name, doc):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


# ---------------------------------------------------------------- fresh clone
def test_test_data_lives_in_the_repository():
    assert MSR_DIR.is_relative_to(ROOT) and (MSR_DIR / "REFERENCE.json").exists()
    assert (MSR_DIR / "LICENSE.txt").exists()


def test_license_is_an_spdx_expression():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert all((ROOT / f).exists() for f in project["license-files"])


# ---------------------------------------------------------------- crashes and wrong answers
@pytest.mark.parametrize("work", [[1e308, 1.0], [1.7e308, 1], [1e307] * 20])
def test_huge_costs_do_not_segfault_the_slicing_decoder(tmp_path, work):
    path = write(tmp_path, "big.json", graph_doc(work))
    proc, _ = cli("solve", path, "-k", 2, "--method", "slicegraph", "-q")
    assert proc.returncode == 2 and "overflows" in proc.stderr


@pytest.mark.parametrize("method", ["auto", "ideals", "mip", "balanced"])
def test_cost_sums_that_overflow_are_rejected(method):
    with pytest.raises(errors.InvalidCostError, match="overflow"):
        pipecore.solve(Graph.from_edges([], [1e308] * 3), 3, method=method)


def test_evaluate_bottleneck_rejects_out_of_range_stages():
    g = Graph(2, [0], [1], work=[1, 2])
    with pytest.raises(errors.InvalidPartitionError):
        pipecore.partition.evaluate_bottleneck(g, np.array([0, 5], dtype=np.int32), 2)


def test_stages_never_wrap_around_int32(tmp_path):
    g = Graph(2, [0], [1], work=[1, 2])
    with pytest.raises(errors.InvalidPartitionError):
        Partition(g, [0, 2**32 + 1], 2)
    gp = write(tmp_path, "g.json", graph_doc([1.0, 2.0]))
    pp = write(tmp_path, "p.json", {"format": "pipecore.partition", "version": 1, "k": 2,
                                    "stage": [0, 4294967296]})
    proc, _ = cli("evaluate", gp, pp)
    assert proc.returncode == 2 and "4294967296" in proc.stderr


def test_auto_keeps_the_exact_dp_infeasibility_proof(tmp_path):
    g = Graph.from_edges([(i, i + 1) for i in range(2000)], [1.0] * 2001, mem=[1.0] * 2001)
    t0 = time.monotonic()
    res = pipecore.solve(g, 2, mem_cap=1000.5, time_limit=30)
    assert res.quality is pipecore.Quality.INFEASIBLE and time.monotonic() - t0 < 5
    path = write(tmp_path, "chain.json", graph_doc([1.0] * 2001))
    proc, wall = cli("solve", path, "-k", 2, "--mem-cap", 1000.5, "-q", "--json")
    assert json.loads(proc.stdout)["quality"] == "infeasible" and wall < 15


# ---------------------------------------------------------------- limits
@pytest.mark.parametrize("method", ["auto", "anneal", "local", "mip", "balanced", "ideals",
                                    "slicegraph", "random", "uniform"])
def test_time_limit_kept_on_a_20k_node_graph(method):
    g = layered_dag(20_000, seed=0)
    t0 = time.monotonic()
    res = pipecore.solve(g, 8, method=method, time_limit=2)
    assert time.monotonic() - t0 <= 2 + 2 and res.partition is not None


def test_time_limit_kept_at_k64_on_a_600_node_graph():
    g = layered_dag(609, seed=1)
    t0 = time.monotonic()
    res = pipecore.solve(g, 64, time_limit=3)
    assert time.monotonic() - t0 <= 3 + 2 and res.partition is not None


def test_mip_model_too_large_is_not_built():
    g = layered_dag(3000, seed=0)
    t0 = time.monotonic()
    res = pipecore.solve(g, 10**9, method="mip", time_limit=5)
    assert time.monotonic() - t0 <= 7 and res.partition is not None


@pytest.mark.parametrize("n", [20_000, 200_000])
def test_k1_without_time_limit_stops_at_once(n):
    t0 = time.monotonic()
    res = pipecore.solve(layered_dag(n, seed=0), 1)
    assert res.quality is pipecore.Quality.OPTIMAL and time.monotonic() - t0 < 10


def test_progress_is_reported_at_once_without_a_time_limit():
    g = layered_dag(20_000, seed=0)
    t0 = time.monotonic()
    first = []

    def progress(frac, best):
        if not first:
            first.append(time.monotonic() - t0)
            raise KeyboardInterrupt  # stop the (unlimited) solve right there

    res = pipecore.solve(g, 8, progress=progress)
    assert first and first[0] < 2.0 and res.termination is pipecore.Termination.INTERRUPTED


@pytest.mark.parametrize("k", [100_000, 1_000_000, 1_000_000_000])
def test_huge_k_on_the_cli_is_fast_and_small(tmp_path, k):
    path = write(tmp_path, "g.json", graph_doc([1.0 + i % 7 for i in range(300)]))
    proc, wall = cli("solve", path, "-k", k, "-q", "--json", "--time-limit", 10)
    assert proc.returncode == 0 and wall < 10
    out = json.loads(proc.stdout)
    assert out["k"] == k and out["quality"] == "optimal"


def test_huge_k_in_the_api_and_in_partition_files(tmp_path):
    g = layered_dag(2000, seed=0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = pipecore.solve(g, 10**8, time_limit=10)
    assert res.partition.k == 10**8 and res.partition.breakdown().stages.size <= g.n
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000  # KiB
    gp = write(tmp_path, "g.json", graph_doc([1.0, 2.0, 3.0]))
    pp = write(tmp_path, "p.json", {"format": "pipecore.partition", "version": 1,
                                    "k": 10**9, "stage": [0, 1, 2]})
    proc, wall = cli("evaluate", gp, pp)
    assert proc.returncode == 0 and "valid" in proc.stdout and wall < 10


# ---------------------------------------------------------------- silent coercion, messages
@pytest.mark.parametrize("doc,field", [
    (graph_doc(["1.5", "2"]), "work[0]"), (graph_doc([True, 2]), "work[0]"),
    (graph_doc([1, 2], k=2.7), "metadata.k"), (graph_doc([1, 2], k="abc"), "metadata.k"),
    (graph_doc([1, 2], mem_cap="lots"), "metadata.mem_cap"),
    (graph_doc([1, 2], edges=[[0.7, 1.2]]), "edges[0]"),
    (graph_doc([1, 2], names=["a", "a"]), "duplicate"),
])
def test_json_reader_never_coerces(tmp_path, doc, field):
    with pytest.raises(errors.FileFormatError, match=field.replace("[", r"\[").replace(
            "]", r"\]")):
        pipecore.load_graph(write(tmp_path, "g.json", doc))


@pytest.mark.parametrize("make,exc", [
    (lambda: Graph(2.7, [0], [1], work=[1, 2]), errors.InvalidGraphError),
    (lambda: Graph.from_edges([(0.7, 1.2)], [1, 2]), errors.InvalidGraphError),
    (lambda: Graph.from_edges([(0, 1, 2)], [1, 2]), errors.InvalidGraphError),
    (lambda: Graph.from_edges([(0, 1)], ["x", 2]), errors.InvalidCostError),
    (lambda: Graph.from_edges([(0, 1)], [1, 2], ids=["a", "a"]), errors.DuplicateNodeError),
    (lambda: pipecore.solve(Graph(2, [0], [1], work=[1, 2]), 2, mem_cap="abc"),
     errors.InvalidGraphError),
    (lambda: pipecore.solve(Graph(2, [0], [1], work=[1, 2]), 2, time_limit="5"),
     errors.InvalidOptionError),
    (lambda: pipecore.solve(Graph(2, [0], [1], work=[1, 2]), 2, seed="x"),
     errors.InvalidOptionError),
    (lambda: Partition(Graph(2, [0], [1], work=[1, 2]), ["0", "1"], 2),
     errors.InvalidPartitionError),
    (lambda: Partition(Graph(2, [0], [1], work=[1, 2]), [0, 1], 2).violations(
        mem_cap=math.nan), errors.InvalidGraphError),
])
def test_api_errors_are_documented_exceptions(make, exc):
    with pytest.raises(exc):
        make()


@pytest.mark.parametrize("args,needle", [
    (["solve", "-k", 2, "-q", "-O", "max_ideals=abc"], "max_ideals"),
    (["solve", "-k", 2, "-q", "-O", "unknown_option=1"], "unknown option"),
    (["solve", "-k", 2, "-q", "--method", "slicegraph", "-O", "populaton=8"], "population"),
    (["solve", "-k", 2, "-q", "--method", "slicegraph", "-O", "population=0"], ">= 2"),
    (["mcm", "--model", "gpt2", "--budget", "-5"], "budget"),
    (["sweep", "gen:regal_like:n=abc", "-k", 2, "--methods", "balanced", "-o", "x.jsonl"],
     "n = 'abc'"),
])
def test_cli_option_errors_name_the_field(tmp_path, args, needle):
    proc, _ = cli(*args, cwd=tmp_path)
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr


def test_cli_rejects_ambiguous_or_missing_inputs(tmp_path):
    g = write(tmp_path, "g.json", graph_doc([1.0, 2.0]))
    proc, _ = cli("solve", "--model", "gpt2", g, "-k", 2, "-q")
    assert proc.returncode == 2 and "not both" in proc.stderr
    proc, _ = cli("report", tmp_path / "nosuch.jsonl", "-o", tmp_path / "r")
    assert proc.returncode == 2 and "no such" in proc.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{bad")
    proc, _ = cli("report", bad, "-o", tmp_path / "r")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_report_with_unknown_graph_or_k_says_so(tmp_path):
    out = tmp_path / "sw.jsonl"
    proc, _ = cli("sweep", "bert-base", "-k", 2, "--methods", "balanced", "-o", out,
                  "--time-limit", 2)
    assert proc.returncode == 0
    for extra, needle in ((["--graph", "nosuch"], "nosuch"), (["-k", 99], "k=99")):
        proc, _ = cli("report", out, "-o", tmp_path / "r", *extra)
        assert proc.returncode == 2 and needle in proc.stderr


def test_garbage_onnx_and_unwritable_output_fail_before_solving(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_text("garbage")
    proc, _ = cli("solve", bad, "-k", 2, "-q")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc, wall = cli("solve", "-k", 2, "-q", "-o", tmp_path, "--time-limit", 60)
    assert proc.returncode == 2 and "directory" in proc.stderr and wall < 15


def test_infeasible_output_does_not_contradict_its_lower_bound(tmp_path):
    path = write(tmp_path, "chain.json", graph_doc([1.0] * 11))
    proc, _ = cli("solve", path, "-k", 2, "--mem-cap", 5.5)
    assert "infeasible" in proc.stdout and "no positive lower bound" not in proc.stdout


# ---------------------------------------------------------------- newcomer friction
def test_solve_output_names_graph_k_units_and_shows_zero_gap():
    proc, _ = cli("solve", "-k", 2, "-q", "--time-limit", 20)
    out = proc.stdout
    assert "bert-base" in out and "k = 2" in out and "µs" in out
    assert "gap         : 0 " in out and "1e-10%" not in out
    assert "bound:combinatorial" not in out  # human phase names


def test_evaluate_and_export_take_embedded_models(tmp_path):
    part = tmp_path / "part.json"
    proc, _ = cli("solve", "-k", 2, "-q", "--time-limit", 20, "-o", part)
    assert proc.returncode == 0
    proc, _ = cli("evaluate", "bert-base", part)
    assert proc.returncode == 0 and "valid" in proc.stdout
    out = tmp_path / "bert.json"
    proc, _ = cli("export", "bert-base", "-o", out)
    assert proc.returncode == 0 and pipecore.load_graph(out).n > 100
