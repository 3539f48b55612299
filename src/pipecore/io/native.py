"""pipecore's own JSON format (version 2; version 1 is still read), columnar so large
graphs stay compact.

Graph::

    {
      "format": "pipecore.graph", "version": 2,
      "nodes": {"name": [str, ...], "work": [float, ...], "comm": [...], "mem": [...],
                "act_mem": [...],                   # activation bytes per micro-batch
                "group": [int or -1, ...],          # colocation group / colour class
                "backward": [bool, ...]},           # training graphs only
                                                    # (all but work optional)
      "edges": [[src_index, dst_index], ...],       # indices into the node columns
      "metadata": {"k": int, "mem_cap": float, ...} # optional defaults and provenance
    }

Partition::

    {"format": "pipecore.partition", "version": 1, "k": int,
     "stage": [int, ...]}                            # one stage per node, in node order
    or {"format": "pipecore.partition", "version": 1, "stages": [[name, ...], ...]}
"""
from __future__ import annotations

import numpy as np

from .. import errors
from ..errors import FileFormatError
from ..graph import Graph
from ..partition import Partition
from .._validate import as_float, as_float_array, as_int
from ._fields import array_of, need

GRAPH_FORMAT = "pipecore.graph"
PARTITION_FORMAT = "pipecore.partition"
VERSION = 2
PARTITION_VERSION = 1
#: versions this reader understands (version 1 has no ``backward`` / ``act_mem`` columns).
READ_VERSIONS = (1, 2)


def graph_to_dict(graph: Graph) -> dict:
    nodes = {"name": graph.names, "work": graph.work.tolist(), "comm": graph.comm.tolist(),
             "mem": graph.mem.tolist()}
    if graph.act_mem.any():
        nodes["act_mem"] = graph.act_mem.tolist()
    if graph.group is not None:
        nodes["group"] = graph.group.tolist()
    if graph.backward is not None:
        nodes["backward"] = graph.backward.tolist()
    return {"format": GRAPH_FORMAT, "version": VERSION, "nodes": nodes,
            "edges": np.stack([graph.src, graph.dst], axis=1).tolist(),
            "metadata": graph.metadata}


def _check_header(data, fmt: str, source: str, versions=READ_VERSIONS) -> None:
    if need(data, "format", "top level", source) != fmt:
        raise FileFormatError(f"{source}: top level: field 'format' must be {fmt!r}")
    version = need(data, "version", "top level", source)
    if isinstance(version, bool) or version not in versions:
        raise FileFormatError(f"{source}: top level: unsupported version {version!r} "
                              f"(this pipecore reads versions "
                              f"{', '.join(map(str, versions))})")


def _column(nodes: dict, key: str, n: int, source: str, required: bool = False):
    if key not in nodes:
        if required:
            raise FileFormatError(f"{source}: nodes: missing field {key!r}")
        return None
    values = array_of(nodes[key], f"nodes.{key}", source, n)
    try:
        arr = as_float_array(values, f"nodes.{key}", n, error=FileFormatError)
    except FileFormatError as exc:
        raise FileFormatError(f"{source}: {exc}") from None
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FileFormatError(f"{source}: nodes.{key}[{i}] = {values[i]!r}: "
                              f"expected a finite number >= 0")
    return arr


def graph_from_dict(data: dict, source: str = "<graph>") -> Graph:
    _check_header(data, GRAPH_FORMAT, source)
    nodes = need(data, "nodes", "top level", source)
    if not isinstance(nodes, dict):
        raise FileFormatError(f"{source}: nodes: expected an object of columns")
    work_list = array_of(need(nodes, "work", "nodes", source), "nodes.work", source)
    n = len(work_list)
    work = _column(nodes, "work", n, source, required=True)
    comm = _column(nodes, "comm", n, source)
    mem = _column(nodes, "mem", n, source)
    act_mem = _column(nodes, "act_mem", n, source)
    backward = None
    if "backward" in nodes:
        blist = array_of(nodes["backward"], "nodes.backward", source, n)
        for i, x in enumerate(blist):
            if not isinstance(x, bool):
                raise FileFormatError(f"{source}: nodes.backward[{i}]: expected true or false, "
                                      f"got {x!r}")
        backward = np.asarray(blist, dtype=bool)
    names = None
    if "name" in nodes:
        names = array_of(nodes["name"], "nodes.name", source, n)
        seen: dict = {}
        for i, s in enumerate(names):
            if not isinstance(s, str):
                raise FileFormatError(f"{source}: nodes.name[{i}]: expected a string, got {s!r}")
            if s in seen:
                raise FileFormatError(f"{source}: nodes.name[{i}]: duplicate node name {s!r} "
                                      f"(also nodes.name[{seen[s]}])")
            seen[s] = i
    group = None
    if "group" in nodes:
        glist = array_of(nodes["group"], "nodes.group", source, n)
        for i, x in enumerate(glist):
            if isinstance(x, bool) or not isinstance(x, int) or x < -1:
                raise FileFormatError(f"{source}: nodes.group[{i}]: expected an int >= -1, "
                                      f"got {x!r}")
        group = np.asarray(glist, dtype=np.int64)
    edges = array_of(need(data, "edges", "top level", source), "edges", source)
    src = np.empty(len(edges), dtype=np.int64)
    dst = np.empty(len(edges), dtype=np.int64)
    for i, e in enumerate(edges):
        if (not isinstance(e, list) or len(e) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in e)):
            raise FileFormatError(f"{source}: edges[{i}]: expected [src_index, dst_index], got {e!r}")
        if not (0 <= e[0] < n and 0 <= e[1] < n):
            raise FileFormatError(f"{source}: edges[{i}] = {e!r}: node index outside 0..{n - 1}")
        src[i], dst[i] = e
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise FileFormatError(f"{source}: metadata: expected an object")
    check_metadata(metadata, source)
    metadata.setdefault("source", source)
    return Graph(n, src, dst, work, comm, mem, group=group, backward=backward, act_mem=act_mem,
                 names=names, metadata=metadata)


def check_metadata(metadata: dict, source: str) -> None:
    """Validate the defaults a file may carry (``k``, ``mem_cap``), naming the field."""
    def fail(exc: Exception) -> FileFormatError:
        return FileFormatError(f"{source}: {exc}")

    if metadata.get("k") is not None:
        try:
            metadata["k"] = as_int(metadata["k"], "metadata.k", minimum=1, maximum=2**31 - 1,
                                   error=FileFormatError)
        except FileFormatError as exc:
            raise fail(exc) from None
    if metadata.get("mem_cap") is not None:
        try:
            metadata["mem_cap"] = as_float(metadata["mem_cap"], "metadata.mem_cap", minimum=0.0,
                                           error=FileFormatError)
        except FileFormatError as exc:
            raise fail(exc) from None


def partition_to_dict(partition: Partition) -> dict:
    return {"format": PARTITION_FORMAT, "version": PARTITION_VERSION, "k": partition.k,
            "stage": partition.stage.tolist(), "bottleneck": partition.bottleneck}


def partition_from_dict(graph: Graph, data: dict, source: str = "<partition>") -> Partition:
    _check_header(data, PARTITION_FORMAT, source, (1,))
    k = data.get("k")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < 2**31):
        raise FileFormatError(f"{source}: k: expected an int in 1..2**31-1, got {k!r}")
    try:
        if "stage" in data:
            stage = array_of(data["stage"], "stage", source, graph.n)
            for i, s in enumerate(stage):
                if isinstance(s, bool) or not isinstance(s, int):
                    raise FileFormatError(f"{source}: stage[{i}]: expected an int, got {s!r}")
            return Partition(graph, stage, k)
        stages = array_of(need(data, "stages", "top level", source), "stages", source)
        return Partition.from_stages(graph, stages, k)
    except errors.InvalidPartitionError as exc:
        raise FileFormatError(f"{source}: {exc}") from None
