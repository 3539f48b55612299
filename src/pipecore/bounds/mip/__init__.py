"""Solver-neutral MIP layer: models, backends (HiGHS, Gurobi) and pipeline formulations."""
from .backends import (BACKENDS, Backend, SolverOptions, SolverSession, available_backends,
                       solve_model)
from .model import MipModel, MipResult

__all__ = ["MipModel", "MipResult", "SolverOptions", "SolverSession", "Backend", "solve_model",
           "available_backends", "BACKENDS"]
