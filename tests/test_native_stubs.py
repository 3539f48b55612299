"""The ``.pyi`` stubs of the compiled kernels list exactly what the kernels export, with
the same parameter names (mypy checks callers against them)."""
import ast
import importlib
import inspect
from pathlib import Path

import pytest

NATIVE = Path(importlib.import_module("pipecore._native").__file__).parent
MODULES = sorted(p.stem for p in NATIVE.glob("*.pyi") if p.stem != "__init__")


def _stub_defs(path: Path) -> dict[str, list[str]]:
    """qualified name -> parameter names, from a stub file."""
    out = {}
    for node in ast.parse(path.read_text()).body:
        items = [(node.name + ".", n) for n in node.body] if isinstance(node, ast.ClassDef) \
            else [("", node)]
        for prefix, fn in items:
            if isinstance(fn, ast.FunctionDef):
                out[prefix + fn.name] = [a.arg for a in fn.args.args + fn.args.kwonlyargs]
            elif isinstance(node, ast.ClassDef) and prefix and fn is node.body[0]:
                out.setdefault(node.name, [])
    return out


def test_every_kernel_module_has_stubs():
    pyx = {p.stem for p in NATIVE.glob("*.pyx")} or {p.name.split(".")[0] for p in NATIVE.glob("*.so")}
    assert pyx <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_stub_matches_module(name):
    module = importlib.import_module(f"pipecore._native.{name}")
    stub = _stub_defs(NATIVE / f"{name}.pyi")
    public = {n for n, obj in vars(module).items()
              if not n.startswith("_") and (inspect.isclass(obj) or callable(obj))
              and getattr(obj, "__module__", module.__name__) == module.__name__}
    assert public == {q.split(".")[0] for q in stub}, "stub and module export different names"
    for qual, params in stub.items():
        obj = module
        for part in qual.split("."):
            obj = getattr(obj, part)
        if callable(obj) and not inspect.isclass(obj) and not qual.endswith("__init__"):
            actual = list(inspect.signature(obj).parameters)
            assert actual == params, f"{name}.{qual}: stub {params} != compiled {actual}"
