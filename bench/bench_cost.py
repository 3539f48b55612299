"""Stage-cost kernel on layered random DAGs of 1k to 1M nodes (~2 edges per node).

Run: python -m pytest bench/bench_cost.py --benchmark-only
"""
import numpy as np
import pytest

from pipecore.algorithms.baselines import balanced_split
from pipecore.generators import layered_dag
from pipecore.partition import evaluate_bottleneck

SIZES = [1_000, 10_000, 100_000, 1_000_000]
K = 16


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"n={n}")
def case(request):
    g = layered_dag(request.param, fan_in=2.0, seed=0)
    return g, balanced_split(g, K).stage


def test_bottleneck(benchmark, case):
    g, stage = case
    value = benchmark(evaluate_bottleneck, g, stage, K)
    assert value > 0
    benchmark.extra_info.update(nodes=g.n, edges=g.m,
                                edges_per_second=g.m / benchmark.stats.stats.min)


def test_move_delta(benchmark, case):
    """The native O(deg) delta of moving the highest fan-in node to the next stage."""
    from pipecore._native import _cost

    g, stage = case
    stage = stage.copy()
    v = int(np.argmax(np.diff(g.pred_ptr)))
    delta = np.zeros(K)
    benchmark(_cost.move_delta, g.succ_ptr, g.succ_idx, g.pred_ptr, g.pred_idx, g.work, g.comm,
              stage, v, min(int(stage[v]) + 1, K - 1), delta)
