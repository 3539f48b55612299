"""Importer for the NeurIPS 2020 device-placement JSON (Tarnawski et al.; DESIGN.md section 6).

Mapping: ``fpgaLatency`` -> work, the producer's outgoing edge ``cost`` -> comm,
``size`` -> mem, ``colorClass`` -> colocation group, ``maxFPGAs`` -> metadata k,
``maxSizePerFPGA`` -> metadata mem_cap. Every node is placed on an accelerator
(``supportedOnFpga``/``isBackwardNode``/CPU fields are kept only as metadata).
"""
from __future__ import annotations

import warnings

import numpy as np

from ..errors import FileFormatError
from ..graph import Graph
from ._fields import array_of, need, number


def graph_from_dict(data: dict, source: str = "<msr>") -> Graph:
    nodes = array_of(need(data, "nodes", "top level", source), "nodes", source)
    edges = array_of(need(data, "edges", "top level", source), "edges", source)
    k = need(data, "maxFPGAs", "top level", source)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise FileFormatError(f"{source}: maxFPGAs: expected an int >= 1, got {k!r}")
    cap = data.get("maxSizePerFPGA")
    cap = None if cap is None else number(cap, "maxSizePerFPGA", source)
    n = len(nodes)
    ids, names = [], []
    work, mem = np.zeros(n), np.zeros(n)
    group = np.full(n, -1, dtype=np.int64)
    index: dict = {}
    colors: dict = {}
    for i, node in enumerate(nodes):
        where = f"nodes[{i}]"
        node_id = need(node, "id", where, source)
        if isinstance(node_id, bool) or not isinstance(node_id, (int, str)):
            raise FileFormatError(f"{source}: {where}.id: expected an int or string, got {node_id!r}")
        if node_id in index:
            raise FileFormatError(f"{source}: {where}.id: duplicate node id {node_id!r}")
        index[node_id] = i
        ids.append(node_id)
        names.append(str(node.get("name", node_id)))
        work[i] = _nonneg(need(node, "fpgaLatency", where, source), f"{where}.fpgaLatency", source)
        mem[i] = _nonneg(node.get("size", 0.0), f"{where}.size", source)
        color = node.get("colorClass")
        if color is not None and (isinstance(color, bool) or not isinstance(color, (int, str))):
            raise FileFormatError(f"{source}: {where}.colorClass: expected an int or string, "
                                  f"got {color!r}")
        if color is not None:
            group[i] = colors.setdefault(color, len(colors))
    if len(set(names)) != n:  # names must identify nodes; fall back to ids when they do not
        names = [str(x) for x in ids]
    src = np.empty(len(edges), dtype=np.int64)
    dst = np.empty(len(edges), dtype=np.int64)
    comm = np.zeros(n)
    inconsistent = 0
    for j, edge in enumerate(edges):
        where = f"edges[{j}]"
        a, b = need(edge, "sourceId", where, source), need(edge, "destId", where, source)
        for key, x in (("sourceId", a), ("destId", b)):
            if not isinstance(x, (int, str)) or isinstance(x, bool) or x not in index:
                raise FileFormatError(f"{source}: {where}.{key}: unknown node id {x!r}")
        cost = _nonneg(edge.get("cost", 0.0), f"{where}.cost", source)
        u = index[a]
        if j and comm[u] != 0.0 and comm[u] != cost:
            inconsistent += 1
        comm[u] = max(comm[u], cost)
        src[j], dst[j] = u, index[b]
    if inconsistent:
        warnings.warn(f"{source}: {inconsistent} edges give their producer a different cost "
                      f"than its other edges; using the largest per producer", stacklevel=2)
    metadata = {"k": k, "mem_cap": cap, "source": source, "format": "msr-device-placement"}
    return Graph(n, src, dst, work, comm, mem, group=group, names=names, metadata=metadata)


def _nonneg(value, where: str, source: str) -> float:
    x = number(value, where, source)
    if x < 0:
        raise FileFormatError(f"{source}: {where}: expected a number >= 0, got {value!r}")
    return x
