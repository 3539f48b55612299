"""Learned partitioning that decodes priorities: policy keys -> slicing DP -> refinement.

The policy (:class:`~pipecore.mcm.policy.KeyPolicy`, needs PyTorch) emits a Gaussian
priority key per node and per chip. A sample's node keys give a topological order
(Kahn, smallest key first), its chip keys the chip path (chips by increasing key); the
MCM slicing DP places the order optimally on the path's chips
(:meth:`~pipecore.mcm.MCMProblem.decode`), so every sample is a valid partition
without repair. Training is policy gradient on the reward
``r = LB / bottleneck`` (``LB`` = total work / total compute rate), advantages
normalised per batch; ``epochs`` PPO epochs with clipped per-key ratios (1 = REINFORCE
with a batch-mean baseline); an entropy bonus (the log spreads) keeps exploration open.

:func:`learned_search` is the search method: fine-tune a pre-trained policy (or train
one from scratch) on the target graph for a share ``rl_share`` of the budget, then
refine with the rest: SliceGraph-MCM's genetic algorithm
(:func:`pipecore.mcm.baselines.evolve`) whose first population is the policy's best
samples (their keys are chromosomes) plus SliceGraph's seed orders, or low-temperature
annealing from the best partition (``refine``; ``"auto"`` picks the GA when the rest of
the budget buys ``GA_MIN_GENERATIONS`` generations). Every decode and every annealing
move is charged to the same evaluation budget as the baselines (see
:mod:`pipecore.mcm.baselines`); each batch also decodes the policy's mean keys and chip
keys (charged, not used in the gradient).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .baselines import (SearchResult, Tracker, anneal, children_per_generation, evolve,
                        seed_chromosomes)
from .costmodel import MCMProblem
from .policy import GraphTensors, KeyPolicy, load_checkpoint, save_checkpoint, torch

__all__ = ["KeyConfig", "KeyTrainer", "expert_keys", "imitate", "pretrain", "learned_search"]


REFINE = ("auto", "brkga", "anneal")
#: ``refine="auto"`` uses the genetic algorithm when the rest of the budget buys this many
#: generations (at the policy phase's mean decode cost), else annealing: a GA that cannot
#: finish a couple of generations only re-samples, annealing improves from the first move.
GA_MIN_GENERATIONS = 2


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
    refine: str = "auto"
    archive: int = 64

    def __post_init__(self):
        checks = {"batch": self.batch >= 2, "lr": self.lr > 0, "epochs": self.epochs >= 1,
                  "clip": self.clip > 0, "entropy": self.entropy >= 0, "prune": self.prune >= 0,
                  "rl_share": 0 < self.rl_share <= 1, "refine_t_start": self.refine_t_start >= 0,
                  "archive": self.archive >= 2}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"KeyConfig: invalid {name} = {getattr(self, name)!r}")
        if not isinstance(self.batch, int) or not isinstance(self.epochs, int):
            raise TypeError("KeyConfig: batch and epochs must be integers")
        if self.refine not in REFINE:
            raise ValueError(f"KeyConfig: refine must be one of {REFINE}, got {self.refine!r}")


@dataclass
class _Log:
    tracker: Tracker = field(default_factory=Tracker)
    mean_reward: list = field(default_factory=list)
    archive: list = field(default_factory=list)  # (bottleneck, node keys ++ chip keys)

    def remember(self, keys: np.ndarray, ckeys: np.ndarray, val: np.ndarray, size: int) -> None:
        """Keep the ``size`` best decoded samples' keys."""
        self.archive.extend((float(v), np.concatenate([k, c]))
                            for k, c, v in zip(keys, ckeys, val) if np.isfinite(v))
        self.archive.sort(key=lambda e: e[0])
        del self.archive[size:]


class KeyTrainer:
    """Policy-gradient loop of a :class:`KeyPolicy` over one or more problems (round robin)."""

    def __init__(self, policy: KeyPolicy, problems: Sequence[MCMProblem],
                 config: KeyConfig | None = None):
        self.policy, self.problems = policy, list(problems)
        if not self.problems:
            raise ValueError("KeyTrainer needs at least one problem")
        if not isinstance(policy, KeyPolicy):
            raise TypeError(f"KeyTrainer needs a KeyPolicy, got {type(policy).__name__}")
        self.config = config or KeyConfig()
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=self.config.lr)
        self.gen = torch.Generator().manual_seed(int(self.config.seed))
        self.tensors = [GraphTensors(p) for p in self.problems]
        self.reps = [torch.from_numpy(p.rep.astype(np.int64)) for p in self.problems]
        self.scale = [max(float(p.graph.work.sum() / p.config.rate.sum()), 1e-12)
                      for p in self.problems]
        self.logs = [_Log() for _ in self.problems]
        self.steps = 0
        self.stats: dict[str, Any] = {}

    def _sample(self, i: int):
        """Node keys (B+1, q) and chip keys (B+1, C), row 0 the means; the B samples as tensors."""
        B = self.config.batch
        with torch.no_grad():
            mu, ls, nu, lcs = self.policy(self.tensors[i])
            mu_q = mu[self.reps[i]]
            keys = mu_q[None] + ls.exp() * torch.randn((B, mu_q.shape[0]), generator=self.gen)
            ckeys = nu[None] + lcs.exp() * torch.randn((B, nu.shape[0]), generator=self.gen)
        all_k = torch.cat([mu_q[None], keys]).double().numpy()
        all_c = torch.cat([nu[None], ckeys]).double().numpy()
        return all_k, all_c, keys, ckeys

    def step(self, i: int, budget_left: float = math.inf) -> float:
        """One batch on problem i (decodes charged to its log); returns the mean reward."""
        cfg, prob, log = self.config, self.problems[i], self.logs[i]
        keys, ckeys, k_t, c_t = self._sample(i)
        ub = log.tracker.best * (1 + cfg.prune)
        chips, val, cost = prob.decode(keys, prob.perms_from_keys(ckeys), ub=ub,
                                       use_all_chips=cfg.use_all_chips)
        keep = np.cumsum(cost) - cost < budget_left
        log.tracker.add(chips[keep], val[keep], cost[keep])
        log.remember(keys[keep], ckeys[keep], val[keep], cfg.archive)
        reward = np.where(np.isfinite(val[1:]), self.scale[i] / np.maximum(val[1:], 1e-300), 0.0)
        log.mean_reward.append(float(reward.mean()))
        self.steps += 1
        if reward.std() > 1e-12:
            adv = torch.from_numpy(((reward - reward.mean()) / reward.std()).astype(np.float32))
            self._update(i, k_t, c_t, adv)
        return float(reward.mean())

    def _logp(self, i: int, keys, ckeys):
        """Per-key Gaussian log-likelihoods (constants dropped): nodes (B, q), chips (B, C)."""
        mu, ls, nu, lcs = self.policy(self.tensors[i])
        mu_q = mu[self.reps[i]]
        lp_k = -0.5 * ((keys - mu_q[None]) / ls.exp()) ** 2 - ls
        lp_c = -0.5 * ((ckeys - nu[None]) / lcs.exp()) ** 2 - lcs
        return lp_k, lp_c, ls + lcs

    def _update(self, i: int, keys, ckeys, adv) -> None:
        cfg = self.config
        with torch.no_grad():
            old_k, old_c, _ = self._logp(i, keys, ckeys)
        a = adv[:, None]
        for _ in range(cfg.epochs):
            lp_k, lp_c, ent = self._logp(i, keys, ckeys)
            surr = 0.0
            for lp, old in ((lp_k, old_k), (lp_c, old_c)):
                r = torch.exp(lp - old)
                clipped = torch.clamp(r, 1 - cfg.clip, 1 + cfg.clip) * a
                surr = surr + torch.minimum(r * a, clipped).mean()
            loss = -surr - cfg.entropy * ent
            self.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), 1.0)
            self.optimizer.step()

    def sweep_paths(self, i: int = 0) -> None:
        """Decode the policy's mean node keys on every candidate chip path (charged)."""
        prob = self.problems[i]
        keys, _, _, _ = self._sample(i)
        K = len(prob.paths)
        chips, val, cost = prob.decode(np.repeat(keys[:1], K, axis=0), prob.paths,
                                       use_all_chips=self.config.use_all_chips)
        self.logs[i].tracker.add(chips, val, cost)

    def run_steps(self, steps: int) -> "KeyTrainer":
        """``steps`` batches, round robin over the problems (pre-training)."""
        for s in range(int(steps)):
            self.step(s % len(self.problems))
        return self

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


def expert_keys(problem: MCMProblem, samples: int = 256, top: int = 16, seed: int = 0):
    """Pre-training targets: decode the BFS order on the candidate paths and ``samples``
    uniformly random chip paths with the slicing DP; each chip's target key is its mean
    position (scaled to [0, 1]) over the ``top`` best paths, a smoothed expert (single
    best paths are noisy: many near-ties). Returns ``(keys (C,), best bottleneck)``."""
    rng = np.random.default_rng(seed)
    C, q = problem.C, problem.quotient.n
    perms = np.concatenate([problem.paths, [rng.permutation(C) for _ in range(samples)]])
    keys = np.empty(q)
    keys[problem.qtopo] = np.arange(q)
    _, val, _ = problem.decode(np.repeat(keys[None], len(perms), axis=0), perms)
    best = perms[np.argsort(val, kind="stable")[:max(1, int(top))]]
    pos = np.empty_like(best, dtype=np.float64)
    np.put_along_axis(pos, best, np.arange(C)[None, :] / max(C - 1, 1), axis=1)
    return pos.mean(axis=0).astype(np.float32), float(val.min())


def imitate(policy: KeyPolicy, problems: Sequence[MCMProblem], targets: Sequence[np.ndarray],
            epochs: int, *, lr: float = 3e-3, seed: int = 0) -> list:
    """Supervised pre-training of the chip head: maximise the Gaussian likelihood of the
    expert chip keys (:func:`expert_keys`) under the policy's chip-key distribution, one
    Adam step per graph, ``epochs`` shuffled passes. The learned spread becomes the
    exploration scale for fine-tuning. Returns the mean loss per epoch."""
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    tensors = [GraphTensors(p) for p in problems]
    targets = [torch.from_numpy(np.asarray(t, dtype=np.float32)) for t in targets]
    history = []
    for _ in range(int(epochs)):
        losses = []
        for i in rng.permutation(len(problems)):
            _, _, nu, lcs = policy(tensors[i])
            loss = (0.5 * ((targets[i] - nu) / lcs.exp()) ** 2 + lcs).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
        history.append(float(np.mean(losses)))
    return history


def pretrain(problems: Sequence[MCMProblem], steps: int = 0, *, config: KeyConfig | None = None,
             imitation_epochs: int = 0, expert: Sequence[np.ndarray] | None = None,
             hidden: int = 64, rounds: int = 3, heads: int = 4,
             checkpoint: str | None = None) -> KeyTrainer:
    """Pre-train a new :class:`KeyPolicy` on ``problems`` (any graphs and packages):
    ``imitation_epochs`` of :func:`imitate` on ``expert`` chip keys (computed by
    :func:`expert_keys` when not given), then ``steps`` policy-gradient batches round
    robin. Returns the trainer (its ``stats`` hold the imitation losses)."""
    config = config or KeyConfig()
    torch.manual_seed(int(config.seed))
    policy = KeyPolicy(hidden=hidden, rounds=rounds, heads=heads)
    losses = []
    if imitation_epochs:
        if expert is None:
            expert = [expert_keys(p, seed=config.seed)[0] for p in problems]
        losses = imitate(policy, problems, expert, imitation_epochs, lr=config.lr,
                         seed=config.seed)
    trainer = KeyTrainer(policy, problems, config).run_steps(steps)
    trainer.stats = {"imitation_loss": losses}
    if checkpoint:
        trainer.save(checkpoint)
    return trainer


def learned_search(problem: MCMProblem, budget: float, *, policy=None,
                   config: KeyConfig | None = None, hidden: int = 64, rounds: int = 3,
                   heads: int = 4) -> SearchResult:
    """Fine-tune ``policy`` (a :class:`KeyPolicy` or checkpoint path; None = from scratch)
    on ``problem`` for ``rl_share * budget`` evaluations, then refine with the rest
    (``config.refine``: the genetic algorithm from the policy's best samples and
    SliceGraph's seed orders, or annealing from the best of the policy's partitions and
    the most promising seed order, see :func:`_decode_seed`).
    ``stats["rl_evals"]``/``stats["rl_best"]`` hold the trace of the policy phase alone (used to measure transfer), ``stats["refined"]`` the
    refinement that ran (``"brkga"``, ``"anneal"`` or ``"none"``)."""
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
        policy = KeyPolicy(hidden=hidden, rounds=rounds, heads=heads)
    trainer = KeyTrainer(policy, [problem], config).run_budget(config.rl_share * budget)
    tr = trainer.logs[0].tracker
    rl_evals, rl_best = np.asarray(tr.evals, float), np.asarray(tr.trace, float)
    method = "learned-scratch" if scratch else "learned"
    left = budget - tr.spent
    refined = "none"
    if tr.best_chip is not None and left > 0 and config.rl_share < 1:
        decode_cost = tr.spent / max(len(tr.evals), 1)
        generation = children_per_generation(config.archive) * decode_cost
        ga = config.refine == "brkga" or (
            config.refine == "auto" and left >= GA_MIN_GENERATIONS * generation)
        refined = "brkga" if ga else "anneal"
        if ga:
            _evolve_archive(problem, budget, trainer.logs[0], config)
        else:
            _decode_seed(problem, budget, trainer.logs[0], config)
            if tr.spent < budget:
                ref = anneal(problem, budget - tr.spent, seed=config.seed, init=tr.best_chip,
                             use_all_chips=config.use_all_chips,
                             t_start=config.refine_t_start)
                tr.evals.extend((tr.spent + ref.trace_evals).tolist())
                tr.trace.extend(np.minimum(ref.trace_best, tr.best).tolist())
                tr.spent += ref.evaluations
                if ref.bottleneck < tr.best:
                    tr.best, tr.best_chip = ref.bottleneck, ref.chip
    return tr.result(method, t0, rl_evals=rl_evals, rl_best=rl_best, refined=refined,
                     mean_reward=trainer.logs[0].mean_reward)


def _best_chip_keys(problem: MCMProblem, log: _Log, config: KeyConfig) -> np.ndarray:
    """The chip keys of the policy's best sample (random if nothing was decoded)."""
    if log.archive:
        return log.archive[0][1][problem.quotient.n:]
    return np.random.default_rng(config.seed).random(problem.C)


def _decode_seed(problem: MCMProblem, budget: float, log: _Log, config: KeyConfig) -> None:
    """Before annealing: SliceGraph's seed orders screened on every chip path by the cut
    (:func:`seed_chromosomes`, a few evaluations) and the most promising (order, path)
    decoded by the DP, charged to the same tracker, so annealing starts from the better of
    it and the policy's best (the policy's node keys follow one order; on t5-small the
    critical-path order on its best path is 13 % better than anything the policy phase
    finds)."""
    q, tr = problem.quotient.n, log.tracker
    seeds = seed_chromosomes(problem, _best_chip_keys(problem, log, config), tr, budget)
    if tr.spent < budget:
        chips, val, cost = problem.decode(seeds[:1, :q], problem.perms_from_keys(seeds[:1, q:]),
                                          ub=tr.best, use_all_chips=config.use_all_chips)
        tr.add(chips, val, cost)


def _evolve_archive(problem: MCMProblem, budget: float, log: _Log, config: KeyConfig) -> None:
    """Refinement by SliceGraph-MCM's genetic algorithm, charged to the same tracker: the
    population is the policy's best samples (their keys are chromosomes, their decodes
    already paid for) and SliceGraph's seed orders on the best sample's chip path and on
    their best-cut paths (:func:`seed_chromosomes`; for diversity: the samples lie close
    together), filled up with random keys to
    ``config.archive`` rows."""
    q, C = problem.quotient.n, problem.C
    P = max(int(config.archive), 2)
    rng = np.random.default_rng(config.seed)
    pop, fit = rng.random((P, q + C)), np.full(P, np.nan)
    seeds = seed_chromosomes(problem, _best_chip_keys(problem, log, config), log.tracker,
                             budget)[:P // 2]
    kept = log.archive[:P - len(seeds)]
    for i, (val, keys) in enumerate(kept):
        pop[i], fit[i] = keys, val
    pop[len(kept):len(kept) + len(seeds)] = seeds
    evolve(problem, budget, log.tracker, rng, pop, fit, use_all_chips=config.use_all_chips)
