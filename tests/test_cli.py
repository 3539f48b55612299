"""The pipecore command line."""
import json
import subprocess
import sys

import pytest

from pipecore.cli import main

from oracle import msr_path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_info_json(capsys):
    code, out, _ = run(capsys, "info", str(msr_path("layer_gnmt_inference")), "--json")
    info = json.loads(out)
    assert code == 0 and info["nodes"] == 96 and info["metadata"]["k"] == 6


def test_solve_then_evaluate(tmp_path, capsys):
    graph = str(msr_path("layer_bert24_inference"))
    part = str(tmp_path / "p.json")
    code, out, _ = run(capsys, "solve", graph, "-k", "3", "--json", "-o", part, "--time-limit", "20")
    res = json.loads(out)
    assert code == 0 and res["k"] == 3 and res["upper_bound"] > 0
    code, out, _ = run(capsys, "evaluate", graph, part, "--json")
    ev = json.loads(out)
    assert code == 0 and ev["valid"]
    assert ev["bottleneck"] == pytest.approx(res["upper_bound"])


def test_solve_default_model_table(capsys):
    code, out, _ = run(capsys, "solve", "-k", "2", "-q", "--time-limit", "20")
    assert code == 0
    assert "bottleneck" in out and "stage" in out


def test_errors_are_clean(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "pipecore.graph", "version": 1, "nodes": {"work": [1, -1]}, "edges": []}')
    code, _, err = run(capsys, "info", str(bad))
    assert code == 2 and "nodes.work[1]" in err and "Traceback" not in err
    code, _, err = run(capsys, "solve", str(msr_path("layer_bert24_inference")), "-k", "0")
    assert code == 2 and "k must be >= 1" in err
    code, _, err = run(capsys, "info", str(tmp_path / "missing.json"))
    assert code == 2


def test_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "pipecore.cli", "models"], capture_output=True,
                         text=True, check=True).stdout
    assert "(default)" in out


def test_method_options_reach_the_method(capsys):
    graph = str(msr_path("layer_gnmt_inference"))
    code, out, _ = run(capsys, "solve", graph, "--method", "ideals", "-O", "max_ideals=10",
                       "--json", "--time-limit", "30")
    res = json.loads(out)
    assert code == 0 and "max_ideals=10" in res["message"]
    code, _, err = run(capsys, "solve", graph, "-O", "no-equals-sign")
    assert code == 2 and "key=value" in err
