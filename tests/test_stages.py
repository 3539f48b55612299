"""Runnable stages: per-stage fx modules equal the unsplit model, in one process and
as a 2-process gloo pipeline (torch.distributed.pipelining) on CPU."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs PyTorch")
pytest.importorskip("transformers")

from pipecore import InvalidPartitionError, solve  # noqa: E402
from pipecore.io.launch import export_factory, launch_local  # noqa: E402
from pipecore.io.stages import split_exported  # noqa: E402
from pipecore.io.torch import from_exported  # noqa: E402


def _first(out):
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out


@pytest.fixture(scope="module", params=["tiny_bert", "skip_cnn"])
def model(request):
    ep, mod, args, kwargs = export_factory(f"pipecore.examples:{request.param}")
    return request.param, ep, mod, args, from_exported(ep)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_stages_in_one_process_match_unsplit(model, k):
    _, ep, mod, args, g = model
    res = solve(g, k, time_limit=5, seed=0)
    plan = split_exported(ep, res)
    assert plan.k == k and sum(len(n) for n in plan.nodes) >= g.n
    with torch.no_grad():
        out, ref = plan(*args), _first(mod(*args))
    torch.testing.assert_close(out[0], ref, rtol=0, atol=1e-5)
    for s in range(1, k):  # stage s receives exactly what stage s-1 sends
        assert plan.inputs[s] == plan.outputs[s - 1]


def test_skip_connection_passes_through_middle_stage():
    ep, mod, args, _ = export_factory("pipecore.examples:skip_cnn")
    g = from_exported(ep)
    order = g.topological_order()
    stage = np.zeros(g.n, dtype=int)
    stage[order[g.n // 3:]] = 1
    stage[order[2 * g.n // 3:]] = 2
    plan = split_exported(ep, stage.tolist())
    assert plan.passthrough[1], "the stem output skips stage 1 and must be forwarded"
    torch.testing.assert_close(plan(*args)[0], mod(*args), rtol=0, atol=1e-5)


def test_backward_edge_rejected():
    ep, _, _, _ = export_factory("pipecore.examples:mlp")
    g = from_exported(ep)
    stage = np.zeros(g.n, dtype=int)
    stage[g.topological_order()[0]] = 1
    with pytest.raises(InvalidPartitionError, match="forward"):
        split_exported(ep, stage)
    with pytest.raises(InvalidPartitionError, match="entries"):
        split_exported(ep, [0, 1])


def test_two_process_gloo_pipeline_matches_unsplit(model):
    name, ep, mod, args, g = model
    plan = split_exported(ep, solve(g, 2, time_limit=5, seed=0))
    batch = tuple(torch.cat([a, a.flip(0)]) for a in args)  # 2 micro-batches
    with torch.no_grad():
        ref = _first(mod(*batch))
    out = launch_local(plan, batch, n_microbatches=2, timeout=240)
    torch.testing.assert_close(out[0], ref, rtol=0, atol=1e-5)
