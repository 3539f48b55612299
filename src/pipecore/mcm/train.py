"""Policy-gradient training of :class:`~pipecore.mcm.policy.ChipPolicy` (needs PyTorch).

Each step takes one graph, samples a batch of proposals (a chip per node, drawn
independently from the policy's per-node distributions), repairs them with the
native greedy repair (:func:`pipecore.mcm.repair.greedy_repair_batch`) and scores
them with the MCM cost model; every sample is one cost-model evaluation, the unit
of the search budget. The reward is the throughput relative to a per-graph scale,
``r = LB / bottleneck`` with ``LB = total work / total compute rate`` (0 when the
repair fails), so graphs of any size give rewards in [0, 1]; advantages are then
normalised per batch (mean and standard deviation of that graph's batch: the
baseline). The update is PPO with per-node probability ratios (all nodes of a
sample share its advantage), clipping and an entropy bonus; ``epochs=1`` is
exactly REINFORCE with a batch-mean baseline. A batch whose samples all score the
same carries no signal; it triggers one entropy-raising step instead, so a
collapsed policy (typical right after transfer to a new graph) cannot get stuck. By default the gradient is taken on
the sampled proposal (unbiased for the composite "propose, repair, score"
environment); ``action="repaired"`` trains on the repaired assignment instead.

Seeded end to end (torch generator for sampling, ``torch.manual_seed`` for init).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .baselines import SearchResult
from .costmodel import MCMProblem
from .policy import ChipPolicy, GraphTensors, load_checkpoint, save_checkpoint, torch
from .repair import greedy_repair_batch

__all__ = ["TrainConfig", "Trainer", "train", "rl_search"]


@dataclass
class TrainConfig:
    """Hyper-parameters of :class:`Trainer` (defaults work for graphs of 50-1000 nodes)."""

    batch: int = 32
    lr: float = 2e-3
    epochs: int = 4
    clip: float = 0.2
    entropy: float = 0.003
    action: str = "proposal"
    use_all_chips: bool = False
    grad_clip: float = 1.0
    seed: int = 0


@dataclass
class GraphLog:
    """Per-graph record: best valid assignment and best-so-far trace against samples."""

    best: float = math.inf
    best_chip: np.ndarray | None = None
    samples: int = 0
    trace_evals: list = field(default_factory=list)
    trace_best: list = field(default_factory=list)
    mean_reward: list = field(default_factory=list)


class Trainer:
    """Runs the policy-gradient loop over one or more :class:`MCMProblem` (round robin)."""

    def __init__(self, policy: ChipPolicy, problems: Sequence[MCMProblem],
                 config: TrainConfig | None = None, optimizer=None):
        self.policy = policy
        self.problems = list(problems)
        if not self.problems:
            raise ValueError("Trainer needs at least one problem")
        for p in self.problems:
            if p.C != policy.n_chips:
                raise ValueError(f"policy has {policy.n_chips} chips, problem has {p.C}")
        self.config = config or TrainConfig()
        if self.config.action not in ("proposal", "repaired"):
            raise ValueError("action must be 'proposal' or 'repaired'")
        self.optimizer = optimizer or torch.optim.Adam(policy.parameters(), lr=self.config.lr)
        self.gen = torch.Generator().manual_seed(int(self.config.seed))
        self.tensors = [GraphTensors(p) for p in self.problems]
        self.scale = [max(float(p.graph.work.sum() / p.config.rate.sum()), 1e-12)
                      for p in self.problems]
        self.logs = [GraphLog() for _ in self.problems]
        self.steps = 0

    def step(self, i: int) -> float:
        """One batch on problem i; returns the batch's mean reward."""
        cfg, prob, t, log = self.config, self.problems[i], self.tensors[i], self.logs[i]
        self.policy.train()
        with torch.no_grad():
            logits = self.policy(t)
            probs = torch.softmax(logits, dim=1)
            sample = torch.multinomial(probs, cfg.batch, replacement=True, generator=self.gen).T
        props = sample.numpy().astype(np.int32)
        chips, ok, _ = greedy_repair_batch(prob, props, cfg.use_all_chips)
        bott, valid = prob.evaluate(chips)
        good = ok & valid
        reward = np.where(good, self.scale[i] / np.maximum(bott, 1e-300), 0.0)
        # bookkeeping: best valid assignment and the best-so-far trace
        for b in range(cfg.batch):
            log.samples += 1
            if good[b] and bott[b] < log.best:
                log.best, log.best_chip = float(bott[b]), chips[b].copy()
            log.trace_evals.append(log.samples)
            log.trace_best.append(log.best)
        log.mean_reward.append(float(reward.mean()))
        std = reward.std()
        if std < 1e-12:
            # every sample scored the same (a collapsed policy, common right after
            # transfer to a new graph): no policy-gradient signal, so take one step
            # that raises the entropy instead of getting stuck forever
            self._entropy_step(t)
            self.steps += 1
            return float(reward.mean())
        adv = torch.from_numpy(((reward - reward.mean()) / std).astype(np.float32))
        actions = torch.from_numpy(chips.astype(np.int64)) if cfg.action == "repaired" else sample
        with torch.no_grad():
            old = torch.log_softmax(logits, dim=1)
            old_lp = old.gather(1, actions.T).T  # (B, n)
        for epoch in range(cfg.epochs):
            logp_all = torch.log_softmax(self.policy(t), dim=1)
            lp = logp_all.gather(1, actions.T).T
            ratio = torch.exp(lp - old_lp)
            a = adv[:, None]
            surr = torch.minimum(ratio * a, torch.clamp(ratio, 1 - cfg.clip, 1 + cfg.clip) * a)
            entropy = -(logp_all.exp() * logp_all).sum(dim=1).mean()
            loss = -surr.mean() - cfg.entropy * entropy
            self.optimizer.zero_grad()
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.grad_clip)
            self.optimizer.step()
        self.steps += 1
        return float(reward.mean())

    def _entropy_step(self, t: GraphTensors) -> None:
        logp_all = torch.log_softmax(self.policy(t), dim=1)
        loss = (logp_all.exp() * logp_all).sum(dim=1).mean()  # = -entropy
        self.optimizer.zero_grad()
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.config.grad_clip)
        self.optimizer.step()

    def run(self, samples: int, *, checkpoint: str | None = None, checkpoint_every: int = 0,
            progress: Callable[[float, float], None] | None = None,
            time_limit: float | None = None) -> "Trainer":
        """Train until every problem has seen about ``samples / len(problems)`` samples in total
        (``samples`` is the total evaluation budget), round robin over the problems."""
        t0 = time.perf_counter()
        total = 0
        i = 0
        try:
            while total + self.config.batch <= samples:
                self.step(i % len(self.problems))
                total += self.config.batch
                i += 1
                if checkpoint and checkpoint_every and i % checkpoint_every == 0:
                    self.save(checkpoint)
                if progress is not None:
                    progress(total / samples, self.logs[0].best)
                if time_limit is not None and time.perf_counter() - t0 > time_limit:
                    break
        except KeyboardInterrupt:
            pass
        if checkpoint:
            self.save(checkpoint)
        return self

    def save(self, path: str) -> None:
        save_checkpoint(path, self.policy, optimizer=self.optimizer,
                        extra={"steps": self.steps, "config": self.config.__dict__})

    def result(self, i: int = 0, method: str = "rl") -> SearchResult:
        log = self.logs[i]
        return SearchResult(log.best_chip, log.best, log.samples, method,
                            trace_evals=np.asarray(log.trace_evals, dtype=np.int64),
                            trace_best=np.asarray(log.trace_best),
                            stats={"mean_reward": list(log.mean_reward)})


def train(problems: Sequence[MCMProblem], samples: int, *, policy: ChipPolicy | None = None,
          config: TrainConfig | None = None, hidden: int = 64, rounds: int = 3, heads: int = 4,
          head: str = "ordinal", checkpoint: str | None = None) -> Trainer:
    """Train a (new or given) policy on ``problems`` for ``samples`` evaluations in total."""
    config = config or TrainConfig()
    torch.manual_seed(int(config.seed))
    if policy is None:
        policy = ChipPolicy(problems[0].C, hidden=hidden, rounds=rounds, heads=heads, head=head)
    trainer = Trainer(policy, problems, config)
    return trainer.run(samples, checkpoint=checkpoint)


def rl_search(problem: MCMProblem, samples: int, *, policy: ChipPolicy | str | None = None,
              config: TrainConfig | None = None, **kw) -> SearchResult:
    """RL as a search on one graph: train (from scratch, or fine-tune a copy of ``policy``,
    a policy or a checkpoint path) for ``samples`` evaluations; the best valid sample wins."""
    t0 = time.perf_counter()
    start: ChipPolicy | None
    if isinstance(policy, str):
        start, _ = load_checkpoint(policy)
    else:
        start = copy.deepcopy(policy) if policy is not None else None
    config = config or TrainConfig()
    trainer = train([problem], samples, policy=start, config=config, **kw)
    res = trainer.result(0, "rl-finetune" if start is not None else "rl-scratch")
    res.wall_time = time.perf_counter() - t0
    return res
