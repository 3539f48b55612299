"""Exact DP over ideals: the nine MSR graphs (five inference, four training) and a wide graph.

Two ways to run it:

* ``python -m pytest bench/bench_ideals.py --benchmark-only`` (pytest-benchmark,
  in-process solve times; extra_info records ideals and pairs).
* ``python bench/bench_ideals.py [--repeat 5] [--reference path/to/dp]``: every
  case in a fresh process under ``/usr/bin/time -v`` (wall time and peak RSS of
  the whole process, Python start-up and numpy import included), plus the
  in-process solve time and the solver's own peak-RSS increase, printed as a
  markdown table (best / median of the repeats). With ``--reference`` the
  NeurIPS 2020 artifact's DP (msr-fiddle/dnn-partitioning, throughput-dp/dp.cpp,
  built with ``g++ -O3``; not shipped here) runs once per case on the same
  instance (killed at ``--reference-timeout``); otherwise the issue's figures are
  shown: 17 s / 540 MB on layer_gnmt_inference, 0.8 s on op_bert_l-3_inference,
  > 10 min / 7 GB on a ~40,000-ideal wide graph.

Cases: each MSR graph at its file's k and mem_cap; ``wide`` (bench/graphs.py,
311 nodes, 40,806 ideals, k = 6) with the warm start and ``wide-cold`` without it
(no heuristic upper bound to prune with: ~765 M pairs, the reference's full
workload); ``wider-capped`` (12 branches per block, ~70 M ideals) shows
the clean stop at the default ideal cap.

Measured (2026-12-03, 2 cores shared with other agents' jobs, so walls vary by up to
~2x between runs; pipecore 3 fresh processes per case, best / median; reference = the
artifact's DP built with ``g++ -O3 -std=c++17``, one run per case, on the same instance
with ``maxCPUs`` 0, runs under 0.05 s re-timed as the median of 5):
``flock /tmp/pipecore-bench.lock python bench/bench_ideals.py --repeat 3 --reference /tmp/refdp/dp``

| case | ideals | pairs | pipecore in-process solve | pipecore process wall / peak RSS | reference wall / peak RSS | reference optimum | reference wall / pipecore solve |
|---|---|---|---|---|---|---|---|
| layer_bert24_inference | 30 | 54 | 0.003 s, +0.6 MB | 0.23 s / 32 MB | 0.008 s / 4 MB | agrees | 3.1x |
| layer_gnmt_inference | 17,914 | 4.4 M | 0.19 s, +4.6 MB | 0.45 s / 36 MB | 25.7 s / 534 MB | agrees | 135x |
| layer_resnet50_inference | 242 | 783 | 0.005 s, +0.6 MB | 0.34 s / 32 MB | 0.19 s / 5 MB | agrees | 40x |
| op_bert_l-3_inference | 1,428 | 0.6 M | 0.043 s, +0.6 MB | 0.41 s / 32 MB | 1.63 s / 29 MB | agrees | 38x |
| op_resnet50_inference | 241 | 3,179 | 0.007 s, +0.6 MB | 0.34 s / 33 MB | 0.24 s / 6 MB | agrees | 32x |
| layer_bert24_training | 30 | 53 | 0.004 s, +0.8 MB | 0.37 s / 32 MB | 0.008 s / 4 MB | agrees | 1.8x |
| layer_gnmt_training | 17,914 | 10.3 M | 0.80 s, +4.6 MB | 1.15 s / 36 MB | 49.2 s / 540 MB | agrees | 62x |
| layer_resnet50_training | 242 | 1,370 | 0.005 s, +0.7 MB | 0.38 s / 33 MB | 0.37 s / 6 MB | agrees | 74x |
| op_bert_l-3_training | 2,774 | 1.8 M | 0.18 s, +0.7 MB | 0.54 s / 33 MB | 9.35 s / 73 MB | agrees | 51x |
| wide (warm start) | 40,806 | 3.9 M | 0.21 s, +9.7 MB | 0.56 s / 47 MB | killed at 150 s, > 1.0 GB | - | > 714x |
| wide (no warm start) | 40,806 | 765 M | 48.6 s, +9.7 MB | 46.9 s / 46 MB | (issue: > 10 min, > 7 GB) | - | - |
| wider-capped (12 branches) | > 5 M | - | stops at max_ideals in 0.23 s | 0.51 s / 38 MB | - | - | - |

"agrees": the artifact's printed ``maxLoad`` equals pipecore's optimum to 1e-9 relative
on every graph, inference and training (DESIGN.md 1b). The files' own ``maxCPUs: 1``
would let the artifact add a communication-free CPU stage, another problem (e.g.
ResNet-50 inference 33.77 instead of 34.22), hence ``maxCPUs`` 0. A Python process costs
~0.2-0.35 s and ~30 MB (interpreter + numpy) before pipecore runs, more than the whole
C++ run on the smallest graphs; the solver itself is faster than the reference on every
graph (1.8-3x on the 30-ideal BERT-24 graphs, where both take milliseconds; 32-135x
elsewhere) and needs at most a few MB.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
MSR = HERE.parent / "tests" / "data" / "msr"
MSR_GRAPHS = ["layer_bert24_inference", "layer_gnmt_inference", "layer_resnet50_inference",
              "op_bert_l-3_inference", "op_resnet50_inference",
              "layer_bert24_training", "layer_gnmt_training", "layer_resnet50_training",
              "op_bert_l-3_training"]   # training: DESIGN.md 1b
REFERENCE_CASES = MSR_GRAPHS + ["wide"]   # cases the artifact's binary can run (--reference)
REFERENCE = {  # published C++ DP, from the issue text (wall s, peak MB)
    "layer_gnmt_inference": (17.0, 540.0),
    "op_bert_l-3_inference": (0.8, None),
    "wide": (600.0, 7000.0),
    "wide-cold": (600.0, 7000.0),
}

_SOLVE_MSR = """
import resource, time
import pipecore
g = pipecore.load_graph({path!r})
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
r = pipecore.solve_exact(g, g.metadata['k'], mem_cap=g.metadata['mem_cap'])
t = time.perf_counter() - t
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print('RESULT', r.quality.value if r.termination.value == 'completed' else r.termination.value, repr(r.upper_bound), r.stats.get('ideals'), r.stats.get('pairs'))
print('INPROC', t, (rss1 - rss0) / 1024)
"""
_SOLVE_WIDE = """
import sys
sys.path.insert(0, {here!r})
import pipecore
from graphs import inception_graph, wide_graph
import resource, time
g = {graph}
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    r = pipecore.solve_exact(g, 6, warm_start={warm})
    print('RESULT', r.quality.value if r.termination.value == 'completed' else r.termination.value, repr(r.upper_bound), r.stats.get('ideals'), r.stats.get('pairs'))
except pipecore.BudgetExceededError as exc:
    print('RESULT capped', exc.reason, '-', '-')
    print('MESSAGE', exc)
t = time.perf_counter() - t
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print('INPROC', t, (rss1 - rss0) / 1024)
"""


def _cases():
    out = {name: _SOLVE_MSR.format(path=str(MSR / f"{name}.json")) for name in MSR_GRAPHS}
    out["wide"] = _SOLVE_WIDE.format(here=str(HERE), graph="wide_graph()", warm=True)
    out["wide-cold"] = _SOLVE_WIDE.format(here=str(HERE), graph="wide_graph()", warm=False)
    out["wider-capped"] = _SOLVE_WIDE.format(
        here=str(HERE), graph="inception_graph(17, (2, 3, 4, 4, 3, 1, 2, 3, 2, 2, 3, 3))", warm=True)
    return out


# ----------------------------------------------------------------------------- pytest-benchmark
@pytest.fixture(scope="module", params=MSR_GRAPHS)
def msr_graph(request):
    import pipecore

    return pipecore.load_graph(MSR / f"{request.param}.json")


def test_msr(benchmark, msr_graph):
    import pipecore

    g = msr_graph
    res = benchmark.pedantic(pipecore.solve_exact, args=(g, g.metadata["k"]),
                             kwargs={"mem_cap": g.metadata["mem_cap"]}, rounds=3, iterations=1)
    assert res.quality.value == "optimal"
    benchmark.extra_info.update(ideals=res.stats.get("ideals"), pairs=res.stats.get("pairs"),
                                optimum=res.upper_bound)


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
def test_wide(benchmark, warm):
    import pipecore
    from graphs import wide_graph

    g = wide_graph()
    res = benchmark.pedantic(pipecore.solve_exact, args=(g, 6), kwargs={"warm_start": warm},
                             rounds=1, iterations=1)
    assert res.quality.value == "optimal"
    benchmark.extra_info.update(ideals=res.stats["ideals"], pairs=res.stats["pairs"],
                                optimum=res.upper_bound)


# ----------------------------------------------------------------------------- /usr/bin/time -v
def _measure(code: str, env) -> tuple[float, float, str]:
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", code],
                          capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", proc.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    parts = [float(x) for x in wall.group(1).split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    return seconds, int(rss.group(1)) / 1024.0, proc.stdout


def _reference_input(name: str) -> Path:
    """The case's instance in the artifact's JSON, as pipecore solves it: the MSR file with
    ``maxCPUs`` set to 0 (pipecore has no CPU device; with the files' ``maxCPUs: 1`` the
    artifact adds a communication-free CPU stage and solves another problem), wide exported."""
    import json
    import tempfile

    path = Path(tempfile.gettempdir()) / f"pipecore_bench_{name}_msr.json"
    if name in MSR_GRAPHS:
        doc = json.loads((MSR / f"{name}.json").read_text())
        doc["maxCPUs"] = 0
    else:
        from graphs import to_msr_dict, wide_graph

        doc = to_msr_dict(wide_graph(), k=6)
    path.write_text(json.dumps(doc))
    return path


def _measure_reference(binary: str, name: str, timeout: float) -> tuple[str, str, float | None]:
    """(wall, peak MB, optimum) of the artifact's DP under /usr/bin/time -v (optimum = its
    printed ``maxLoad``); when it is still running at ``timeout`` it is killed and
    '> T s', '> peak so far', None are reported."""
    import json
    import signal
    import tempfile
    import time

    src = _reference_input(name)
    with (open(src) as fin, tempfile.TemporaryFile("w+") as err,
          tempfile.TemporaryFile("w+") as out):
        t0 = time.perf_counter()
        proc = subprocess.Popen(["/usr/bin/time", "-v", binary], stdin=fin,
                                stdout=out, stderr=err, start_new_session=True)
        peak = 0
        while proc.poll() is None:
            try:  # the binary is /usr/bin/time's child
                with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as fh:
                    kids = fh.read().split()
                for kid in kids:
                    with open(f"/proc/{kid}/status") as fh:
                        for line in fh:
                            if line.startswith("VmHWM:"):
                                peak = max(peak, int(line.split()[1]))
            except OSError:
                pass
            if time.perf_counter() - t0 > timeout:
                os.killpg(proc.pid, signal.SIGKILL)  # the group we started, nothing else
                proc.wait()
                return f"> {timeout:g} (killed)", f"> {peak / 1024:.0f}", None
            time.sleep(0.01)
        err.seek(0)
        text = err.read()
        out.seek(0)
        body = out.read()
        value = json.loads(body)["maxLoad"] if proc.returncode == 0 and body.strip() else None
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    parts = [float(x) for x in wall.group(1).split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    return f"{seconds:.2f}", f"{int(rss.group(1)) / 1024:.0f}", value


def _reference_cells(args, name: str, value: str, inproc: float) -> list[str]:
    """The reference columns of one row: wall, peak RSS, its optimum against pipecore's
    (relative 1e-9), and its wall over pipecore's in-process solve time (a run under
    0.05 s, below /usr/bin/time's hundredths, is re-timed with perf_counter)."""
    if not (args.reference and name in REFERENCE_CASES):
        known = REFERENCE.get(name)
        return [f"({known[0]:g}, issue)" if known else "-",
                f"({known[1]:g}, issue)" if known and known[1] else "-", "-", "-"]
    wall, rss, opt = _measure_reference(args.reference, name, args.reference_timeout)
    if opt is None:
        agree = "-"
    else:
        same = abs(opt - float(value)) <= 1e-9 * max(1.0, abs(opt))
        agree = f"{opt:.10g} ({'agrees' if same else 'DIFFERS'})"
    try:
        secs = float(wall)
    except ValueError:   # killed
        return [wall, rss, agree, f"> {args.reference_timeout / inproc:.0f}x"]
    if secs < 0.05:   # below /usr/bin/time's resolution: median of 5 timed runs
        secs = _time_reference(args.reference, _reference_input(name), 5)
        wall = f"{secs:.3f}"
    return [wall, rss, agree, f"{secs / inproc:.1f}x"]


def _time_reference(binary: str, src: Path, runs: int) -> float:
    """Median wall time (perf_counter) of ``runs`` runs of the artifact's DP on ``src``."""
    import time

    times = []
    for _ in range(runs):
        with open(src) as fin:
            t0 = time.perf_counter()
            subprocess.run([binary], stdin=fin, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=True, timeout=60)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="case names to run")
    ap.add_argument("--reference", metavar="BINARY",
                    help="the artifact's throughput-dp binary (g++ -O3), run once per case")
    ap.add_argument("--reference-timeout", type=float, default=150.0)
    args = ap.parse_args(argv)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE.parent / "src") + os.pathsep + env.get("PYTHONPATH", "")
    print("| case | ideals | pairs | result | process wall best / median (s) | process peak RSS "
          "(MB) | in-process solve (s) | solver RSS increase (MB) | reference wall (s) | "
          "reference peak RSS (MB) | reference optimum | reference wall / in-process solve |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, code in _cases().items():
        if args.only and name not in args.only:
            continue
        walls, rss, inproc, incr, out = [], [], [], [], ""
        for _ in range(args.repeat):
            w, r, out = _measure(code, env)
            walls.append(w)
            rss.append(r)
            ip = next(x for x in out.splitlines() if x.startswith("INPROC")).split()
            inproc.append(float(ip[1]))
            incr.append(float(ip[2]))
        line = next(x for x in out.splitlines() if x.startswith("RESULT")).split()
        status, value, n_ideals, pairs = line[1], line[2], line[3], line[4]
        ref = _reference_cells(args, name, value, statistics.median(inproc))
        result = f"{status} {float(value):.10g}" if status != "capped" else f"capped ({value})"
        print(f"| {name} | {n_ideals} | {pairs} | {result} | {min(walls):.2f} / "
              f"{statistics.median(walls):.2f} | {statistics.median(rss):.0f} | "
              f"{statistics.median(inproc):.4f} | {max(incr):.1f} | {' | '.join(ref)} |")
        msg = next((x for x in out.splitlines() if x.startswith("MESSAGE")), None)
        if msg:
            print(f"|  | {msg[8:]} |||||||||")
    return 0


if __name__ == "__main__":
    sys.exit(main())
