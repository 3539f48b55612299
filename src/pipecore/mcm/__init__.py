"""Multi-chip modules: cost model, constraint repair, baselines and a learned policy.

The second founding system of pipecore (DESIGN.md section 4, after Xie et al.,
MLSys 2022): ops of a graph are placed on the chiplets of a multi-chip module; a
proposal (from a policy, a random sampler, ...) is repaired into the nearest valid
partition and scored by the MCM cost model; or priority keys (from a policy, a random
sampler, a genetic algorithm) are decoded by the MCM slicing DP into valid partitions.
``policy``, ``train`` and ``learned`` need PyTorch (extra ``rl``) and are imported
lazily.
"""
from .costmodel import PRESETS, MCMConfig, MCMProblem, preset
from .repair import RepairResult, greedy_repair, greedy_repair_batch, repair
from .baselines import SearchResult, anneal, brkga, random_search, slicegraph

__all__ = ["MCMConfig", "MCMProblem", "preset", "PRESETS", "repair", "greedy_repair",
           "greedy_repair_batch", "RepairResult", "SearchResult", "anneal", "brkga",
           "random_search", "slicegraph"]
