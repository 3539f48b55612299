"""Run the Examples sections of every pipecore module as doctests.

Modules that need an optional extra which is not installed are skipped, so the plain
``pip install ".[test]"`` run stays green; CI installs every extra and runs them all.
"""
import doctest
import importlib
import pkgutil

import numpy as np
import pytest

import pipecore

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(pipecore.__path__, prefix="pipecore.")
    if "._native." not in m.name and not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name):
    try:
        module = importlib.import_module(name)
    except ImportError as exc:  # an optional extra (torch, onnx, ...) is missing
        pytest.skip(f"{name}: {exc}")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, extraglobs={"np": np, "pipecore": pipecore}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {name}"


def test_public_entry_points_have_examples():
    """The main public functions show how they are called."""
    for fn in (pipecore.solve, pipecore.solve_exact, pipecore.Problem, pipecore.Partition,
               pipecore.Graph.from_edges, pipecore.options_help):
        assert ">>>" in (fn.__doc__ or ""), f"{fn.__qualname__} has no Examples section"
