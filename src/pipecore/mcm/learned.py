"""Learned partitioning that decodes priorities: policy keys -> slicing DP -> local search.

The policy (:class:`~pipecore.mcm.policy.KeyPolicy`, needs PyTorch) emits a Gaussian
priority key per node and a categorical chip-path choice. A sample's keys give a
topological order (Kahn, smallest key first); the MCM slicing DP places it optimally
on the path's chips (:meth:`~pipecore.mcm.MCMProblem.decode`), so every sample is a
valid partition without repair. Training is policy gradient on the reward
``r = LB / bottleneck`` (``LB`` = total work / total compute rate), advantages
normalised per batch; ``epochs`` PPO epochs with clipped per-node ratios (1 = REINFORCE
with a batch-mean baseline); an entropy bonus keeps the path choice open.

:func:`learned_search` is the search method: fine-tune a pre-trained policy (or train
one from scratch) on the target graph for a share ``rl_share`` of the budget, then
refine the best partition found by low-temperature annealing (the native annealer of
:func:`pipecore.mcm.baselines.anneal`) with the rest. Every decode and every
annealing move is charged to the same evaluation budget as the baselines (see
:mod:`pipecore.mcm.baselines`); each batch also decodes the policy's mean keys and
most likely path (charged, not used in the gradient).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .baselines import SearchResult, Tracker, anneal
from .costmodel import MCMProblem
from .policy import GraphTensors, KeyPolicy, load_checkpoint, save_checkpoint, torch

__all__ = ["KeyConfig", "KeyTrainer", "pretrain", "learned_search"]


@dataclass
class KeyConfig:
    """Hyper-parameters of :class:`KeyTrainer` and :func:`learned_search`."""

    batch: int = 16
    lr: float = 3e-3
    epochs: int = 2
    clip: float = 0.2
    entropy: float = 0.01
    prune: float = 0.1
    rl_share: float = 0.5
    refine_t_start: float = 0.05
    path_sweep: bool = False
    seed: int = 0
    use_all_chips: bool = False

    def __post_init__(self):
        checks = {"batch": self.batch >= 2, "lr": self.lr > 0, "epochs": self.epochs >= 1,
                  "clip": self.clip > 0, "entropy": self.entropy >= 0, "prune": self.prune >= 0,
                  "rl_share": 0 < self.rl_share <= 1, "refine_t_start": self.refine_t_start >= 0}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"KeyConfig: invalid {name} = {getattr(self, name)!r}")
        if not isinstance(self.batch, int) or not isinstance(self.epochs, int):
            raise TypeError("KeyConfig: batch and epochs must be integers")


@dataclass
class _Log:
    tracker: Tracker = field(default_factory=Tracker)
    mean_reward: list = field(default_factory=list)


class KeyTrainer:
    """Policy-gradient loop of a :class:`KeyPolicy` over one or more problems (round robin)."""

    def __init__(self, policy: KeyPolicy, problems: Sequence[MCMProblem],
                 config: KeyConfig | None = None):
        self.policy, self.problems = policy, list(problems)
        if not self.problems:
            raise ValueError("KeyTrainer needs at least one problem")
        for p in self.problems:
            if len(p.paths) != policy.n_paths:
                raise ValueError(f"policy has {policy.n_paths} chip paths, a problem has "
                                 f"{len(p.paths)} (train one policy per package)")
        self.config = config or KeyConfig()
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=self.config.lr)
        self.gen = torch.Generator().manual_seed(int(self.config.seed))
        self.tensors = [GraphTensors(p) for p in self.problems]
        self.reps = [torch.from_numpy(p.rep.astype(np.int64)) for p in self.problems]
        self.scale = [max(float(p.graph.work.sum() / p.config.rate.sum()), 1e-12)
                      for p in self.problems]
        self.logs = [_Log() for _ in self.problems]
        self.steps = 0

    def _sample(self, i: int):
        """Keys (B+1, q) (row 0 = mean keys), paths (B+1,), noise and path draws."""
        B = self.config.batch
        with torch.no_grad():
            mu, log_sigma, logits = self.policy(self.tensors[i])
            mu_q = mu[self.reps[i]]
            eps = torch.randn((B, mu_q.shape[0]), generator=self.gen)
            keys = torch.cat([mu_q[None], mu_q[None] + log_sigma.exp() * eps])
            probs = torch.softmax(logits, dim=0)
            paths = torch.multinomial(probs, B, replacement=True, generator=self.gen)
            paths = torch.cat([probs.argmax()[None], paths])
        return keys.double().numpy(), paths.numpy(), keys[1:], paths[1:]

    def step(self, i: int, budget_left: float = math.inf) -> float:
        """One batch on problem i (decodes charged to its log); returns the mean reward."""
        cfg, prob, log = self.config, self.problems[i], self.logs[i]
        keys, paths, k_t, p_t = self._sample(i)
        ub = log.tracker.best * (1 + cfg.prune)
        chips, val, cost = prob.decode(keys, paths, ub=ub, use_all_chips=cfg.use_all_chips)
        keep = np.cumsum(cost) - cost < budget_left
        log.tracker.add(chips[keep], val[keep], cost[keep])
        reward = np.where(np.isfinite(val[1:]), self.scale[i] / np.maximum(val[1:], 1e-300), 0.0)
        log.mean_reward.append(float(reward.mean()))
        self.steps += 1
        if reward.std() > 1e-12:
            adv = torch.from_numpy(((reward - reward.mean()) / reward.std()).astype(np.float32))
            self._update(i, k_t, p_t, adv)
        return float(reward.mean())

    def _logp(self, i: int, keys, paths):
        mu, log_sigma, logits = self.policy(self.tensors[i])
        mu_q = mu[self.reps[i]]
        z = (keys - mu_q[None]) / log_sigma.exp()
        lp_keys = -0.5 * z ** 2 - log_sigma  # per node, constants dropped
        lp_path = torch.log_softmax(logits, dim=0)[paths]
        ent = -(torch.softmax(logits, 0) * torch.log_softmax(logits, 0)).sum()
        return lp_keys, lp_path, ent

    def _update(self, i: int, keys, paths, adv) -> None:
        cfg = self.config
        with torch.no_grad():
            old_k, old_p, _ = self._logp(i, keys, paths)
        for _ in range(cfg.epochs):
            lp_k, lp_p, ent = self._logp(i, keys, paths)
            a = adv[:, None]
            rk = torch.exp(lp_k - old_k)
            sk = torch.minimum(rk * a, torch.clamp(rk, 1 - cfg.clip, 1 + cfg.clip) * a).mean()
            rp = torch.exp(lp_p - old_p)
            sp = torch.minimum(rp * adv, torch.clamp(rp, 1 - cfg.clip, 1 + cfg.clip) * adv).mean()
            loss = -(sk + sp) - cfg.entropy * ent
            self.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), 1.0)
            self.optimizer.step()

    def run_steps(self, steps: int) -> "KeyTrainer":
        """``steps`` batches, round robin over the problems (pre-training)."""
        for s in range(int(steps)):
            self.step(s % len(self.problems))
        return self

    def sweep_paths(self, i: int = 0) -> None:
        """Decode the policy's mean keys on every candidate chip path (charged)."""
        prob = self.problems[i]
        keys, _, _, _ = self._sample(i)
        K = len(prob.paths)
        chips, val, cost = prob.decode(np.repeat(keys[:1], K, axis=0), np.arange(K),
                                       use_all_chips=self.config.use_all_chips)
        self.logs[i].tracker.add(chips, val, cost)

    def run_budget(self, budget: float, i: int = 0) -> "KeyTrainer":
        """Batches on problem i until its charged evaluations reach ``budget`` (after a
        sweep of the mean keys over all chip paths if ``config.path_sweep``)."""
        tr = self.logs[i].tracker
        if self.config.path_sweep:
            self.sweep_paths(i)
        while tr.spent < budget:
            self.step(i, budget - tr.spent)
        return self

    def save(self, path: str) -> None:
        save_checkpoint(path, self.policy, extra={"steps": self.steps,
                                                  "config": self.config.__dict__})


def pretrain(problems: Sequence[MCMProblem], steps: int, *, config: KeyConfig | None = None,
             hidden: int = 64, rounds: int = 3, heads: int = 4,
             checkpoint: str | None = None) -> KeyTrainer:
    """Train a new :class:`KeyPolicy` for ``steps`` batches round robin over ``problems``
    (all on one package: the chip paths must agree)."""
    config = config or KeyConfig()
    torch.manual_seed(int(config.seed))
    policy = KeyPolicy(len(problems[0].paths), hidden=hidden, rounds=rounds, heads=heads)
    trainer = KeyTrainer(policy, problems, config).run_steps(steps)
    if checkpoint:
        trainer.save(checkpoint)
    return trainer


def learned_search(problem: MCMProblem, budget: float, *, policy=None,
                   config: KeyConfig | None = None, hidden: int = 64, rounds: int = 3,
                   heads: int = 4) -> SearchResult:
    """Fine-tune ``policy`` (a :class:`KeyPolicy` or checkpoint path; None = from scratch)
    on ``problem`` for ``rl_share * budget`` evaluations, then refine the best partition
    by annealing with the rest. ``stats["rl_evals"]``/``stats["rl_best"]`` hold the trace
    of the policy phase alone (used to measure transfer)."""
    t0 = time.perf_counter()
    config = config or KeyConfig()
    if not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
        raise ValueError(f"budget must be a positive number of evaluations, got {budget!r}")
    scratch = policy is None
    if isinstance(policy, str):
        policy, _ = load_checkpoint(policy)
    elif policy is not None:
        policy = copy.deepcopy(policy)
    else:
        torch.manual_seed(int(config.seed))
        policy = KeyPolicy(len(problem.paths), hidden=hidden, rounds=rounds, heads=heads)
    trainer = KeyTrainer(policy, [problem], config).run_budget(config.rl_share * budget)
    tr = trainer.logs[0].tracker
    rl_evals, rl_best = np.asarray(tr.evals, float), np.asarray(tr.trace, float)
    method = "learned-scratch" if scratch else "learned"
    left = budget - tr.spent
    if tr.best_chip is not None and left > 0 and config.rl_share < 1:
        ref = anneal(problem, left, seed=config.seed, init=tr.best_chip,
                     use_all_chips=config.use_all_chips, t_start=config.refine_t_start)
        tr.evals.extend((tr.spent + ref.trace_evals).tolist())
        tr.trace.extend(np.minimum(ref.trace_best, tr.best).tolist())
        tr.spent += ref.evaluations
        if ref.bottleneck < tr.best:
            tr.best, tr.best_chip = ref.bottleneck, ref.chip
    return tr.result(method, t0, rl_evals=rl_evals, rl_best=rl_best,
                     mean_reward=trainer.logs[0].mean_reward)
