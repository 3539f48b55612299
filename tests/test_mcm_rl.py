"""RL policy: features, a short deterministic training run that improves, checkpoints, transfer API."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch (extra 'rl') is not installed")

from pipecore.generators import dnn_like, layered_dag  # noqa: E402
from pipecore.mcm import MCMConfig, MCMProblem, preset  # noqa: E402
from pipecore.mcm.policy import (  # noqa: E402
    N_FEATURES, ChipPolicy, GraphTensors, load_checkpoint, node_features)
from pipecore.mcm.train import TrainConfig, Trainer, rl_search, train  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _tiny():
    g = dnn_like(3, seed=0)  # 32 nodes
    return MCMProblem(g, preset("ring-4").sized_for(g, 1.5))


def test_features_are_normalised():
    p = _tiny()
    f = node_features(p)
    assert f.shape == (p.graph.n, N_FEATURES) and f.dtype == np.float32
    assert np.isfinite(f).all() and f.min() >= 0 and f.max() <= 1 + 1e-6
    order = p.graph.topological_order()
    assert np.all(np.diff(f[order, 7]) > 0)  # topological position
    assert np.all(np.diff(f[order, 8]) >= 0)  # cumulative work


@pytest.mark.parametrize("head", ["ordinal", "categorical"])
def test_short_training_improves_reward_and_is_deterministic(head):
    p = _tiny()

    def run():
        cfg = TrainConfig(batch=16, seed=0, lr=5e-3)
        return train([p], 960, config=cfg, head=head, hidden=32, rounds=2)

    tr = run()
    r = np.array(tr.logs[0].mean_reward)
    assert r.size == 60
    assert r[-5:].mean() > r[:5].mean() + 0.1, r
    assert np.array_equal(r, np.array(run().logs[0].mean_reward))  # same seed, same run
    res = tr.result(0)
    assert res.chip is not None and not p.violations(res.chip)
    assert res.bottleneck == pytest.approx(p.evaluate(res.chip)[0][0])
    assert np.all(np.diff(res.trace_best) <= 0)


def test_checkpoint_roundtrip(tmp_path):
    p = _tiny()
    tr = train([p], 64, config=TrainConfig(batch=16, seed=3), hidden=16, rounds=1, heads=2)
    path = tmp_path / "policy.pt"
    tr.save(str(path))
    policy, extra = load_checkpoint(str(path))
    assert extra["steps"] == 4
    t = GraphTensors(p)
    with torch.no_grad():
        assert torch.equal(policy(t), tr.policy(t))
    # resume training from the checkpoint, optimizer state included
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    policy2, _ = load_checkpoint(str(path), optimizer=opt)
    Trainer(policy2, [p], TrainConfig(batch=16), optimizer=opt).run(32)
    with pytest.raises(ValueError):
        torch.save({"format": "other"}, tmp_path / "bad.pt")
        load_checkpoint(str(tmp_path / "bad.pt"))


def test_transfer_api_pretrain_then_finetune(tmp_path):
    corpus = [MCMProblem(g, MCMConfig(4)) for g in (dnn_like(3, seed=1), layered_dag(40, seed=2))]
    tr = train(corpus, 128, config=TrainConfig(batch=16, seed=0), hidden=16, rounds=1, heads=2,
               checkpoint=str(tmp_path / "pre.pt"))
    assert all(log.samples == 64 for log in tr.logs)
    target = MCMProblem(dnn_like(4, seed=9), MCMConfig(4))
    ft = rl_search(target, 64, policy=str(tmp_path / "pre.pt"), config=TrainConfig(batch=16))
    assert ft.method == "rl-finetune" and ft.evaluations == 64 and ft.chip is not None
    with pytest.raises(ValueError):  # chip count must match the policy
        Trainer(tr.policy, [MCMProblem(dnn_like(3), MCMConfig(8))])


def test_policy_rejects_bad_head():
    with pytest.raises(ValueError):
        ChipPolicy(4, head="nope")


def test_learned_search_finetunes_within_budget(tmp_path):
    from pipecore.mcm.learned import KeyConfig, KeyTrainer, learned_search, pretrain
    from pipecore.mcm.policy import KeyPolicy

    pkg = preset("mesh-2x4-het")
    corpus = [MCMProblem(g, pkg.sized_for(g, 2.0, latency_per_comm=0.5))
              for g in (dnn_like(3, seed=1), layered_dag(40, seed=2))]
    tr = pretrain(corpus, 4, config=KeyConfig(batch=4, seed=0), hidden=16, rounds=1, heads=2,
                  checkpoint=str(tmp_path / "keys.pt"))
    assert tr.steps == 4 and all(log.tracker.spent > 0 for log in tr.logs)
    policy, extra = load_checkpoint(str(tmp_path / "keys.pt"))
    assert isinstance(policy, KeyPolicy) and extra["steps"] == 4
    g = dnn_like(4, seed=9)
    target = MCMProblem(g, pkg.sized_for(g, 2.0, latency_per_comm=0.5))
    cfg = KeyConfig(batch=4, seed=1, path_sweep=True)
    res = learned_search(target, 3000, policy=str(tmp_path / "keys.pt"), config=cfg)
    assert res.method == "learned" and res.chip is not None and not target.violations(res.chip)
    assert res.bottleneck == pytest.approx(target.evaluate(res.chip)[0][0])
    assert 3000 <= res.evaluations <= 3000 * 1.25 + 200
    assert np.all(np.diff(res.trace_best) <= 1e-12)
    assert res.stats["rl_evals"][-1] <= res.evaluations
    again = learned_search(target, 3000, policy=policy, config=cfg)
    assert again.bottleneck == res.bottleneck  # seeded
    scratch = learned_search(target, 2000, config=KeyConfig(batch=4, seed=1))
    assert scratch.method == "learned-scratch" and scratch.chip is not None
    with pytest.raises(TypeError):  # a chip-proposal policy cannot be trained on keys
        KeyTrainer(ChipPolicy(4), [MCMProblem(g, preset("ring-4"))])
    with pytest.raises(ValueError):
        KeyConfig(rl_share=0)
    with pytest.raises(ValueError):
        learned_search(target, -5)


@pytest.mark.parametrize("refine", ["brkga", "anneal", "auto"])
def test_learned_refinement_stays_in_budget_and_never_loses_the_policy_best(refine):
    from pipecore.mcm.learned import KeyConfig, learned_search
    from pipecore.mcm.policy import KeyPolicy

    g = layered_dag(60, seed=4)
    target = MCMProblem(g, preset("mesh-2x4-het").sized_for(g, 2.0, latency_per_comm=0.5))
    torch.manual_seed(0)
    policy = KeyPolicy(hidden=16, rounds=1, heads=2)
    budget = 40000  # enough for two generations of a 16-row population on this graph
    res = learned_search(target, budget, policy=policy,
                         config=KeyConfig(batch=4, seed=2, refine=refine, archive=16))
    assert res.chip is not None and not target.violations(res.chip)
    assert res.bottleneck == pytest.approx(target.evaluate(res.chip)[0][0])
    assert budget <= res.evaluations <= budget * 1.25 + 200
    assert res.bottleneck <= res.stats["rl_best"][-1] + 1e-12
    assert res.stats["refined"] == ("brkga" if refine == "auto" else refine)
    # both refinements try SliceGraph's most promising seed order and chip path
    from pipecore.mcm.baselines import Tracker, seed_chromosomes
    q = target.quotient.n
    seed = seed_chromosomes(target, np.arange(target.C) + 0.5, Tracker(), np.inf)[:1]
    _, seed_val, _ = target.decode(seed[:, :q], target.perms_from_keys(seed[:, q:]))
    assert res.bottleneck <= seed_val[0] + 1e-9
    if refine == "auto":  # a budget that buys less than two generations anneals
        small = learned_search(target, 3000, policy=policy,
                               config=KeyConfig(batch=4, seed=2, archive=16))
        assert small.stats["refined"] == "anneal"
    assert np.all(np.diff(res.trace_best) <= 1e-12) and np.all(np.diff(res.trace_evals) >= 0)
    assert res.trace_best[-1] == pytest.approx(res.bottleneck)
    with pytest.raises(ValueError, match="refine"):
        KeyConfig(refine="tabu")
    with pytest.raises(ValueError, match="archive"):
        KeyConfig(archive=1)


def test_imitation_pretraining_learns_expert_chip_keys():
    from pipecore.mcm.learned import expert_keys, imitate, pretrain
    from pipecore.mcm.policy import KeyPolicy, chip_features, graph_profile

    pkg = preset("mesh-2x4-het")
    probs = [MCMProblem(g, pkg.sized_for(g, 2.0, latency_per_comm=0.5))
             for g in (dnn_like(3, seed=1), layered_dag(30, seed=2))]
    keys, best = expert_keys(probs[0], samples=32, top=4)
    assert keys.shape == (8,) and np.all((keys >= 0) & (keys <= 1)) and np.isfinite(best)
    f, prof = chip_features(pkg), graph_profile(probs[0])
    assert f.shape == (8, 7) and np.isfinite(f).all()
    assert prof.shape == (16,)
    assert prof[:8].sum() == pytest.approx(1) and prof[8:].sum() == pytest.approx(1)
    torch.manual_seed(0)
    policy = KeyPolicy(hidden=16, rounds=1, heads=2)
    targets = [expert_keys(p, samples=32, top=4)[0] for p in probs]
    hist = imitate(policy, probs, targets, 40, lr=1e-2)
    assert hist[-1] < hist[0] - 0.5  # likelihood of the expert keys rises
    tr = pretrain(probs, 2, imitation_epochs=2, expert=targets, hidden=16, rounds=1, heads=2)
    assert len(tr.stats["imitation_loss"]) == 2 and tr.steps == 2
