"""pipecore: partition DNN graphs into pipeline stages and prove how good the answer is.

Quick start::

    import pipecore
    g = pipecore.load_model()                 # an embedded graph
    res = pipecore.solve(g, k=4, time_limit=10)
    print(res.upper_bound, res.lower_bound, res.gap)
"""
from .errors import (
    BudgetExceededError, CycleError, DuplicateNodeError, EmptyGraphError, FileFormatError,
    GraphTooLargeError, InfeasibleMemoryError, InvalidCostError, InvalidGraphError, InvalidOptionError,
    InvalidPartitionError, InvalidStageCountError, PipecoreError, SelfLoopError, SolverError,
    UnknownNodeError,
)
from .graph import Contraction, Graph
from .io import load_graph, load_partition, save_graph, save_partition
from .models import list_models, load_model
from .partition import Partition
from .problem import Problem, Schedule
from .result import Phase, Quality, SolveResult, Termination
from .solver import METHODS, available_methods, solve
from .algorithms.ideals import solve_exact

__version__ = "0.2.0"

__all__ = [
    "Graph", "Contraction", "Partition", "Problem", "Schedule", "SolveResult", "Quality",
    "Termination", "Phase", "solve", "solve_exact", "METHODS", "available_methods",
    "options_help", "load_graph", "save_graph", "load_partition", "save_partition",
    "load_model", "list_models",
    "PipecoreError", "InvalidGraphError", "EmptyGraphError", "CycleError", "SelfLoopError",
    "InvalidCostError", "UnknownNodeError", "DuplicateNodeError", "InvalidStageCountError",
    "InfeasibleMemoryError", "InvalidPartitionError", "InvalidOptionError", "FileFormatError",
    "SolverError", "BudgetExceededError", "GraphTooLargeError", "__version__",
]


def options_help(method: str = "auto") -> str:
    """The options ``solve(method=...)`` accepts, one per line (name, type, range, default).

    Examples
    --------
    >>> print(options_help("local"))   # doctest: +ELLIPSIS
    method 'local':
      max_sweeps (int (1 <= x), default 1000): descent sweeps over all classes
    ...
    """
    from .solver import method_options

    out = []
    for spec in method_options(method):
        out.append(f"{spec.owner}:")
        out.extend("  " + o.describe() for o in spec)
    return "\n".join(out)
