"""Reading and writing graphs and partitions.

:func:`load_graph` recognises a file by its content: pipecore's own JSON
(:mod:`pipecore.io.native`) or the NeurIPS 2020 device-placement JSON
(:mod:`pipecore.io.msr`); ``.gz`` files are decompressed transparently; ``.onnx``
models are imported with :mod:`pipecore.io.onnx` (optional extra ``onnx``).
"""
from __future__ import annotations

import gzip
import json
import os
from typing import Any

from ..errors import FileFormatError
from ..graph import Graph
from ..partition import Partition
from . import msr, native

# (also, loaded on first use: from_onnx, from_torch, from_transformers, DeviceModel, DEVICES)
__all__ = ["load_graph", "save_graph", "load_partition", "save_partition", "read_json"]

_LAZY = {"from_onnx": ".onnx", "from_torch": ".torch", "from_transformers": ".torch",
         "DeviceModel": ".device", "DEVICES": ".device"}


def __getattr__(name: str):
    """Importers load lazily, so ``import pipecore`` never imports torch or onnx."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def read_json(path: str | os.PathLike) -> Any:
    """Parse a (possibly gzipped) JSON file, turning decode errors into FileFormatError."""
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}, "
                              f"column {exc.colno}") from None
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise FileFormatError(f"{path}: cannot read: {exc}") from None


def load_graph(path: str | os.PathLike, **onnx_options) -> Graph:
    """Load a graph from any supported file format.

    ``.onnx`` files go through :func:`pipecore.io.onnx.from_onnx` (needs the
    ``onnx`` extra; ``onnx_options`` such as ``device`` or ``dims`` are passed on).

    Examples
    --------
    >>> import os, tempfile
    >>> from pipecore import Graph
    >>> g = Graph(2, [0], [1], work=[1.0, 2.0], comm=[0.5, 0.0], names=["a", "b"])
    >>> path = os.path.join(tempfile.mkdtemp(), "g.json.gz")
    >>> save_graph(g, path)
    >>> h = load_graph(path)
    >>> h.n, h.names, h.work.tolist()
    (2, ['a', 'b'], [1.0, 2.0])
    """
    if os.fspath(path).lower().endswith(".onnx"):
        from .onnx import from_onnx

        if not os.path.exists(path):
            raise FileNotFoundError(f"{os.fspath(path)}: no such file")
        return from_onnx(path, **onnx_options)
    if onnx_options:
        raise TypeError(f"options {sorted(onnx_options)} only apply to .onnx files")
    data = read_json(path)
    if isinstance(data, dict) and data.get("format") == native.GRAPH_FORMAT:
        return native.graph_from_dict(data, source=os.fspath(path))
    if isinstance(data, dict) and "nodes" in data and "edges" in data and "maxFPGAs" in data:
        return msr.graph_from_dict(data, source=os.fspath(path))
    raise FileFormatError(f"{os.fspath(path)}: unrecognised graph file (expected a pipecore graph "
                          f"with \"format\": \"{native.GRAPH_FORMAT}\" or a device-placement JSON "
                          f"with nodes, edges and maxFPGAs)")


def save_graph(graph: Graph, path: str | os.PathLike) -> None:
    """Write a graph in pipecore's JSON format (gzipped if the name ends in .gz)."""
    _write_json(native.graph_to_dict(graph), path)


def load_partition(graph: Graph, path: str | os.PathLike) -> Partition:
    """Load a partition of ``graph`` from pipecore's partition JSON."""
    return native.partition_from_dict(graph, read_json(path), source=os.fspath(path))


def save_partition(partition: Partition, path: str | os.PathLike) -> None:
    _write_json(native.partition_to_dict(partition), path)


def _write_json(obj, path) -> None:
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as fh:
        json.dump(obj, fh, separators=(",", ":"))
