"""Graphs shipped inside the package, usable right after ``pip install pipecore``.

Each model is a gzipped pipecore graph JSON in ``pipecore/data/models/``;
``scripts/make_models.py`` regenerates them.
"""
from __future__ import annotations

from importlib import resources

from .graph import Graph

__all__ = ["list_models", "load_model", "DEFAULT_MODEL"]

DEFAULT_MODEL = "dnn-24"
_SUFFIX = ".json.gz"


def list_models() -> list[str]:
    """Names of the embedded models."""
    folder = resources.files("pipecore") / "data" / "models"
    return sorted(p.name[: -len(_SUFFIX)] for p in folder.iterdir() if p.name.endswith(_SUFFIX))


def load_model(name: str = DEFAULT_MODEL) -> Graph:
    """Load an embedded model by name (see :func:`list_models`)."""
    from .io import load_graph

    names = list_models()
    if name not in names:
        raise ValueError(f"unknown model {name!r}; embedded models: {', '.join(names)}")
    ref = resources.files("pipecore") / "data" / "models" / f"{name}{_SUFFIX}"
    with resources.as_file(ref) as path:
        return load_graph(path)
