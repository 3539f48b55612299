"""Training graphs (forward + backward) from PyTorch via the AOTAutograd joint graph.

:func:`from_torch_training` exports ``loss_fn(module(*args, **kwargs))`` with
``torch.export`` and traces the joint forward + backward ATen graph with
``torch._functorch.aot_autograd.aot_export_joint_with_descriptors`` (works on the
``meta`` device: no weights are allocated). Every ATen call becomes one node,
costed as in :mod:`pipecore.io.torch`, and marked as DESIGN.md section 1b needs:

``backward``
    the node's ``partitioner_tag`` is ``"is_backward"`` (autograd emitted it).
``group`` (colour class)
    the autograd sequence number (``seq_nr``) of the forward op the node belongs
    to: a backward op carries the ``seq_nr`` of the forward op whose gradient it
    computes, so the two share a class. Backward nodes whose forward op was
    folded away (e.g. the transpose of a weight) join the class of their first
    backward predecessor (else successor) that has a forward node.
``mem`` (static bytes)
    forward nodes: the weights they read plus ``optimizer_states`` copies of the
    trainable parameters among them (Adam: 2, SGD with momentum: 1, SGD: 0);
    backward nodes: the weight gradients they produce.
``act_mem``
    forward nodes whose output a backward node reads (saved for backward):
    their output bytes, per micro-batch in flight.

O(nodes + edges) after tracing.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..graph import Graph
from .device import DeviceModel, graph_from_ops

__all__ = ["from_torch_training", "joint_graph", "OPTIMIZER_STATES"]

#: optimizer state tensors per trainable parameter element.
OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd-momentum": 1, "sgd": 0, "none": 0}


def _default_loss(out):
    """Sum of the first floating-point tensor in the module's (nested) output."""
    import torch
    from torch.utils._pytree import tree_leaves

    for leaf in tree_leaves(out):
        if isinstance(leaf, torch.Tensor) and leaf.is_floating_point():
            return leaf.sum()
    raise ValueError("the module returns no floating-point tensor to build a loss from; "
                     "pass loss_fn")


def _loss_module(module, loss_fn):
    import torch

    class _WithLoss(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args, **kwargs):
            return (loss_fn or _default_loss)(self.inner(*args, **kwargs))

    return _WithLoss(module)


def joint_graph(module, args: Sequence = (), kwargs: Mapping | None = None, *,
                loss_fn: Callable | None = None, train_mode: bool = True):
    """The joint forward + backward fx graph of ``loss_fn(module(...))`` and its
    input / output descriptors: ``(graph_module, in_descs, out_descs)``."""
    import torch
    from torch._functorch.aot_autograd import aot_export_joint_with_descriptors

    wrapped = _loss_module(module, loss_fn)
    wrapped.train(train_mode)
    ep = torch.export.export(wrapped, tuple(args), dict(kwargs or {}), strict=False)
    with contextlib.ExitStack() as stack:
        joint = aot_export_joint_with_descriptors(stack, ep.module(), tuple(args),
                                                  dict(kwargs or {}))
        gm = joint.graph_module
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    in_descs = {n.name: n.meta.get("desc") for n in placeholders}
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    out_descs = list(zip(out_node.args[0], out_node.meta.get("desc") or []))
    return gm, in_descs, out_descs


def _row_fields(gm, index: dict, n: int):
    """Per row: backward flag and seq_nr (-1 if none); fx node of each row."""
    backward = np.zeros(n, dtype=bool)
    seq = np.full(n, -1, dtype=np.int64)
    for node in gm.graph.nodes:
        v = index.get(node.name)
        if v is None or node.op != "call_function":
            continue
        if node.meta.get("partitioner_tag") == "is_backward":
            backward[v] = True
        if "seq_nr" in node.meta and seq[v] < 0:
            seq[v] = int(node.meta["seq_nr"])
    return backward, seq


def _colour_classes(backward: np.ndarray, seq: np.ndarray, src, dst) -> np.ndarray:
    """seq_nr classes; backward nodes without a forward op of their seq_nr join a
    backward neighbour's class (predecessors first, then successors)."""
    n = backward.size
    fwd_seqs = set(seq[~backward & (seq >= 0)].tolist())
    group = np.where(~backward & (seq >= 0), seq, -1)
    anchored = backward & np.isin(seq, list(fwd_seqs))
    group[anchored] = seq[anchored]
    bw_edge = backward[src] & backward[dst]
    s, d = np.asarray(src)[bw_edge], np.asarray(dst)[bw_edge]
    for a, b in ((s, d), (d, s)):      # propagate along backward edges, both directions
        for _ in range(n):
            todo = (group[b] < 0) & (group[a] >= 0)
            if not todo.any():
                break
            group[b[todo]] = group[a[todo]]
    return group


def _memory(gm, index, in_descs, out_descs, table, backward, optimizer_states: int):
    """Static bytes (weights + optimizer state on forward rows, gradients on backward
    rows) and activation bytes saved for backward."""
    from torch._functorch._aot_autograd.descriptors import GradAOTOutput, ParamAOTInput

    from .torch import _nbytes

    n = len(table)
    param = {name for name, d in in_descs.items() if isinstance(d, ParamAOTInput)}
    mem = np.where(backward, 0.0, np.asarray(table.param_bytes))
    act = np.zeros(n)
    for node in gm.graph.nodes:
        ins = node.all_input_nodes
        if node.op == "call_function" and node.name not in index and ins \
                and any(u.name in param for u in ins):
            param.add(node.name)   # folded from a parameter (e.g. its transpose)
        v = index.get(node.name)
        if v is None or backward[v]:
            continue
        mem[v] += optimizer_states * sum(_nbytes(u.meta.get("val")) for u in ins
                                         if u.name in param)
        if any(index.get(u.name) is not None and backward[index[u.name]] for u in node.users):
            act[v] = table.out_bytes[v]
    for arg, desc in out_descs:
        if isinstance(desc, GradAOTOutput) and getattr(arg, "name", None) in index:
            mem[index[arg.name]] += _nbytes(arg.meta.get("val"))
    return mem, act


def from_torch_training(module, args: Sequence = (), kwargs: Mapping | None = None, *,
                        device: DeviceModel | str | Mapping | None = None,
                        k: int | None = None, optimizer: str = "adam",
                        loss_fn: Callable | None = None,
                        metadata: Mapping[str, Any] | None = None) -> Graph:
    """The training graph of ``module`` (see the module docstring).

    ``loss_fn(output) -> scalar`` defaults to the sum of the first floating
    output; ``optimizer`` picks the state bytes per parameter
    (:data:`OPTIMIZER_STATES`).
    """
    from .torch import walk_graph

    if optimizer not in OPTIMIZER_STATES:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose from "
                         f"{', '.join(OPTIMIZER_STATES)}")
    gm, in_descs, out_descs = joint_graph(module, args, kwargs, loss_fn=loss_fn)
    from torch._functorch._aot_autograd.descriptors import BufferAOTInput, ParamAOTInput

    static = {name for name, d in in_descs.items()
              if isinstance(d, (ParamAOTInput, BufferAOTInput))}
    table, info, index = walk_graph(gm.graph, static)
    meta = dict(info, importer="aot_autograd joint graph", training=True, optimizer=optimizer,
                source=f"torch:{type(module).__name__}")
    if k is not None:
        meta["k"] = int(k)
    meta.update(metadata or {})
    base = graph_from_ops(table, device, metadata=meta)
    backward, seq = _row_fields(gm, index, len(table))
    group = _colour_classes(backward, seq, base.src, base.dst)
    mem, act = _memory(gm, index, in_descs, out_descs, table, backward,
                       OPTIMIZER_STATES[optimizer])
    base.metadata["total_param_bytes"] = float(np.sum(np.asarray(table.param_bytes)[~backward]))
    return Graph(base.n, base.src, base.dst, base.work, base.comm, mem, group=group,
                 backward=backward, act_mem=act, names=base.names, metadata=base.metadata)
