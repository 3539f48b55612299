"""Speed of the MCM evaluation kernel: batch evaluation of random assignments.

Reports microseconds per evaluated assignment for the embedded models on the ``ring-8``
preset (hop latency 0.01) and with zero latency, best of ``--repeat`` runs. Optionally
compares against another build of the kernel module (``--against module.path``, e.g. an
older ``_mcm`` built out of tree with its ``evaluate_batch`` function). Run under
``flock /tmp/pipecore-bench.lock`` on a shared machine.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time

import numpy as np

import pipecore
from pipecore.mcm import MCMProblem, preset


def _time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--against", default=None, help="module with an old evaluate_batch")
    ap.add_argument("--models", default="bert-base,resnet50,gpt2,densenet121")
    args = ap.parse_args(argv)
    old = importlib.import_module(args.against) if args.against else None
    print("| model | latency | new (us / assignment) |" + (" old |" if old else ""))
    print("|---|---|---|" + ("---|" if old else ""))
    for name in args.models.split(","):
        g = pipecore.load_model(name)
        for lat in (0.01, 0.0):
            p = MCMProblem(g, preset("ring-8", hop_latency=lat))
            chips = np.ascontiguousarray(
                np.random.default_rng(0).integers(0, 8, (args.batch, g.n)), dtype=np.int32)
            bott, valid = np.empty(args.batch), np.empty(args.batch, dtype=np.int8)
            t_new = _time(lambda: p.kernel.evaluate_batch(chips, bott, valid), args.repeat)
            row = f"| {name} | {lat:g} | {t_new / args.batch * 1e6:.2f} |"
            if old:
                b2, v2 = np.empty(args.batch), np.empty(args.batch, dtype=np.int8)

                def run_old():
                    old.evaluate_batch(g.succ_ptr, g.succ_idx, g.src, g.dst, g.work, g.comm, g.mem,
                                       p.node_map, p.rep, chips, p.inv_rate, p.inv_bw, p.lathops,
                                       p.sram, b2, v2)

                t_old = _time(run_old, args.repeat)
                assert np.allclose(bott, b2) and np.array_equal(valid, v2)
                row += f" {t_old / args.batch * 1e6:.2f} |"
            print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
