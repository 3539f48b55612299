"""pipecore: partition DNN graphs into pipeline stages and prove how good the answer is.

Quick start::

    import pipecore
    g = pipecore.load_model()                 # an embedded graph
    res = pipecore.solve(g, k=4, time_limit=10)
    print(res.upper_bound, res.lower_bound, res.gap)
"""
from .errors import (
    BudgetExceededError, CycleError, DuplicateNodeError, EmptyGraphError, FileFormatError,
    InfeasibleMemoryError, InvalidCostError, InvalidGraphError, InvalidPartitionError,
    InvalidStageCountError, PipecoreError, SelfLoopError, SolverError, UnknownNodeError,
)
from .graph import Contraction, Graph
from .io import load_graph, load_partition, save_graph, save_partition
from .models import list_models, load_model
from .partition import Partition
from .result import SolveResult, Status
from .solve import METHODS, available_methods, solve
from .algorithms.ideals import solve_exact

__version__ = "0.1.0"

__all__ = [
    "Graph", "Contraction", "Partition", "SolveResult", "Status", "solve", "solve_exact", "METHODS",
    "available_methods", "load_graph", "save_graph", "load_partition", "save_partition",
    "load_model", "list_models",
    "PipecoreError", "InvalidGraphError", "EmptyGraphError", "CycleError", "SelfLoopError",
    "InvalidCostError", "UnknownNodeError", "DuplicateNodeError", "InvalidStageCountError",
    "InfeasibleMemoryError", "InvalidPartitionError", "FileFormatError", "SolverError",
    "BudgetExceededError", "__version__",
]
