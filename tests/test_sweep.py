"""Sweeps: local and Dask executors agree, results append, killed sweeps resume."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pipecore.cli import main
from pipecore.sweep import (Instance, _single_thread_env, expand_grid, load_results,
                            read_results, resolve_graph, run_instance, run_sweep)

GRAPHS = ["gen:regal_like:n=80,seed=1", "gen:regal_like:n=120,seed=2"]
# 2 graphs x 5 k x 2 deterministic methods = 20 instances
GRID = dict(graphs=GRAPHS, ks=[2, 3, 4, 5, 6], methods=["balanced", "uniform"])


def _grid(**kw):
    return expand_grid(GRID["graphs"], GRID["ks"], GRID["methods"], time_limit=60, **kw)


def _by_key(rows):
    out = {}
    for r in rows:
        assert r["key"] not in out, f"duplicate row {r['key']}"
        out[r["key"]] = r
    return out


def _same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        ra, rb = a[key], b[key]
        assert ra["quality"] == rb["quality"] and ra["error"] is None, key
        assert ra["stage"] == rb["stage"], key
        assert ra["upper_bound"] == rb["upper_bound"], key
        assert ra["lower_bound"] == pytest.approx(rb["lower_bound"], rel=1e-9), key


def test_instances_keys_and_graph_references(tmp_path):
    inst = _grid()
    assert len(inst) == 20 and len({i.key for i in inst}) == 20
    assert inst[0].key == f"{GRAPHS[0]}|k=2|balanced|seed=0|tl=60|cap=graph"
    assert resolve_graph("bert-base").n == resolve_graph("model:bert-base").n
    g = resolve_graph("gen:regal_like:n=50,seed=3,long_skip=0.2")
    assert g.n == 50 and g.metadata["long_skip"] == 0.2
    for bad in ("nope", "gen:nope", "gen:regal_like:n", "gen:regal_like:x=1"):
        with pytest.raises(ValueError):
            resolve_graph(bad)
    with pytest.raises(ValueError, match="k must be"):
        expand_grid(GRAPHS, [0], ["balanced"])
    row = run_instance(Instance(GRAPHS[0], 3, "no-such-method"))
    assert "no-such-method" in row["error"]
    row = run_instance(Instance(GRAPHS[0], 3, "balanced"))
    assert not row["error"] and len(row["stage"]) == 80 and len(row["stage_work"]) == 3
    assert row["upper_bound"] == pytest.approx(max(
        w + r + s for w, r, s in zip(row["stage_work"], row["stage_recv"], row["stage_send"])))


def test_local_and_dask_sweeps_of_20_instances_agree(tmp_path):
    distributed = pytest.importorskip("distributed", reason="needs the 'dask' extra")
    serial = run_sweep(_grid(), tmp_path / "serial.jsonl", executor="serial")
    local = run_sweep(_grid(), tmp_path / "local.jsonl", executor="local", jobs=2)
    assert serial.ran == local.ran == 20 and serial.errors == local.errors == 0
    a = _by_key(load_results(tmp_path / "serial.jsonl"))
    b = _by_key(load_results(tmp_path / "local.jsonl"))
    _same(a, b)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        argv = ["sweep", *GRAPHS, "-k", "2", "3", "4", "5", "6", "--methods", "balanced",
                "uniform", "--time-limit", "60", "-o", str(tmp_path / "dask.jsonl"),
                "--executor", "dask", "--scheduler", cluster.scheduler_address, "-q"]
        assert main(argv) == 0
        c = _by_key(load_results(tmp_path / "dask.jsonl"))
        _same(a, c)
        with distributed.Client(cluster) as client:   # rerun: everything is skipped
            again = run_sweep(_grid(), tmp_path / "dask.jsonl", executor="dask", client=client)
        assert again.skipped == 20 and again.ran == 0


def test_rerun_skips_done_work_and_repairs_a_torn_line(tmp_path):
    out = tmp_path / "r.jsonl"
    inst = _grid()
    first = run_sweep(inst[:7], out, executor="serial")
    assert first.ran == 7
    with open(out, "a") as fh:
        fh.write('{"key": "torn')                      # a kill in the middle of a write
    assert len(load_results(out)) == 7
    rest = run_sweep(inst, out, executor="serial")
    assert rest.skipped == 7 and rest.ran == 13
    rows = [json.loads(line) for line in open(out)]    # every line parses again
    assert len(_by_key(rows)) == 20


def test_errors_are_recorded_and_can_be_retried(tmp_path):
    out = tmp_path / "e.jsonl"
    inst = [Instance(GRAPHS[0], 2, "balanced"), Instance(GRAPHS[0], 2, "no-such-method")]
    s = run_sweep(inst, out, executor="serial")
    assert s.ran == 2 and s.errors == 1 and "no-such-method" in s.error_messages[0]
    assert run_sweep(inst, out, executor="serial").ran == 0
    assert run_sweep(inst, out, executor="serial", retry_errors=True).ran == 1


def test_parquet_output_resumes(tmp_path):
    pytest.importorskip("pyarrow", reason="Parquet output needs pyarrow")
    out = tmp_path / "r.parquet"
    inst = _grid()[:6]
    assert run_sweep(inst[:4], out, executor="serial").ran == 4
    s = run_sweep(inst, out, executor="serial")
    assert s.skipped == 4 and s.ran == 2
    rows = read_results(out)
    assert len(_by_key(rows)) == 6 and isinstance(rows[0]["stage"], list)
    _same(_by_key(rows), _by_key(load_results(_sweep_jsonl(tmp_path, inst))))


def _sweep_jsonl(tmp_path, inst):
    path = tmp_path / "ref.jsonl"
    run_sweep(inst, path, executor="serial")
    return path


def test_killed_sweep_restarts_without_redoing_work(tmp_path):
    out = tmp_path / "kill.jsonl"
    graphs = ["gen:regal_like:n=300,seed=11", "gen:regal_like:n=300,seed=12"]
    # slicegraph searches until its time limit, so every instance takes >= 0.3 s
    argv = [sys.executable, "-m", "pipecore.cli", "sweep", *graphs, "-k", "2", "3", "4", "5",
            "6", "--methods", "slicegraph", "balanced", "--time-limit", "0.3",
            "--executor", "serial", "-o", str(out), "-q"]
    log = tmp_path / "first.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if out.exists() and len(load_results(out)) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"sweep ended before it was killed: {log.read_text()[-2000:]}"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    before = load_results(out)
    assert 3 <= len(before) < 20
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert f"{len(before)} already done, {20 - len(before)} run" in done.stdout
    after = load_results(out)
    assert len(_by_key(after)) == 20                   # nothing redone, nothing missing
    assert after[:len(before)] == before               # finished rows untouched


def test_workers_get_one_solver_thread(monkeypatch):
    monkeypatch.delenv("PIPECORE_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    with _single_thread_env():
        assert os.environ["PIPECORE_THREADS"] == "1" and os.environ["OMP_NUM_THREADS"] == "1"
    assert "PIPECORE_THREADS" not in os.environ and os.environ["OMP_NUM_THREADS"] == "7"
