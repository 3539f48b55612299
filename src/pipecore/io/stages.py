"""Runnable pipeline stages from a pipecore partition of an exported PyTorch program.

:func:`split_exported` turns an ``ExportedProgram`` and a stage per pipecore node
(the rows :func:`pipecore.io.torch.from_exported` imported, in the same order)
into one ``torch.fx.GraphModule`` per stage. Stage ``s`` takes, as positional
arguments, exactly the tensors that cross the boundary between stages ``s - 1``
and ``s`` and returns those that cross the next boundary, each tensor once (the
cost model's ``In``/``Out`` sets); the first stage takes the program's user
inputs and the last returns its flat user outputs.

Tensors that skip a stage (a DAG partition where stage 0 feeds stage 2, a user
input read late, a residual branch) are **passed through**: every stage in
between receives them and forwards them unchanged. This keeps the chain that
``torch.distributed.pipelining`` needs; the extra transfers are not in the cost
model (which counts each producer once per receiving stage), and
:attr:`StagePlan.passthrough` lists them so their price can be judged.
Weights, buffers and subgraphs computed from weights only are copied into every
stage that reads them (a tied weight read by two stages is duplicated).

:func:`pipeline_schedule` wires one stage into ``torch.distributed.pipelining``
(``PipelineStage`` + ``ScheduleGPipe`` or ``Schedule1F1B``) for a process group;
:meth:`StagePlan.__call__` runs all stages in one process. The exported shapes
are static, so each micro-batch must have the batch size the program was
exported with. Building is O(nodes + edges) per stage.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import InvalidPartitionError

__all__ = ["StagePlan", "split_exported", "pipeline_schedule", "stage_of_rows"]


@dataclass
class StagePlan:
    """The per-stage modules of a split program and the tensors between them.

    ``inputs[s]`` / ``outputs[s]`` name the fx values stage ``s`` receives / sends;
    ``passthrough[s]`` those it only forwards; ``nodes[s]`` the ATen calls it runs.
    """

    modules: list
    inputs: list[list[str]]
    outputs: list[list[str]]
    passthrough: list[list[str]]
    nodes: list[list[str]] = field(default_factory=list)

    @property
    def k(self) -> int:
        return len(self.modules)

    def __call__(self, *args):
        """Run every stage in turn in this process; returns the last stage's outputs."""
        vals = tuple(args)
        for mod in self.modules:
            vals = mod(*vals)
        return vals


def _is_result(stage) -> bool:
    return not isinstance(stage, (list, tuple, np.ndarray)) and hasattr(_partition(stage), "stage")


def _partition(stage):
    """The Partition of a SolveResult, or the argument itself."""
    return getattr(stage, "partition", stage)


def _as_stage_vector(stage, n_rows: int) -> np.ndarray:
    """A stage per row from a Partition, SolveResult or sequence; validated length."""
    vec = np.asarray(_partition(stage).stage if _is_result(stage) else stage, dtype=np.int64)
    if vec.shape != (n_rows,):
        raise InvalidPartitionError(
            f"the partition has {vec.size} entries but the exported program imports as "
            f"{n_rows} nodes; split the same program the graph was imported from")
    if (vec < 0).any():
        raise InvalidPartitionError("stages must be >= 0")
    return vec


def stage_of_rows(ep, stage) -> tuple[dict[str, int], set[str], int]:
    """Stage of every non-weight fx value of ``ep`` (user inputs: 0), the weight-only
    values (copied where read), and k. Raises if an edge goes backward."""
    from .torch import static_placeholders, walk_graph

    static_ph = static_placeholders(ep)
    table, _, index = walk_graph(ep.graph, static_ph)
    vec = _as_stage_vector(stage, len(table))
    k = int(_partition(stage).k) if _is_result(stage) else int(vec.max()) + 1
    home: dict[str, int] = {}
    static: set[str] = set()
    for node in ep.graph.nodes:
        if node.op in ("output",):
            continue
        ins = node.all_input_nodes
        if node.op == "placeholder":
            if node.name in static_ph:
                static.add(node.name)
            else:
                home[node.name] = 0
        elif node.op == "get_attr" or (node.name not in index
                                       and all(u.name in static for u in ins)):
            # weights and what is computed from them (or from nothing, e.g. an arange
            # mask): folded by the importer, so recomputed in each stage that reads it
            static.add(node.name)
        elif node.name in index:
            home[node.name] = int(vec[index[node.name]])
        elif node.users or ins:  # non-tensor helpers (sym sizes, asserts): after inputs
            home[node.name] = max([home.get(u.name, 0) for u in ins], default=0)
    for node in ep.graph.nodes:
        for u in node.all_input_nodes:
            if node.name in home and u.name in home and home[u.name] > home[node.name]:
                raise InvalidPartitionError(
                    f"{u.name!r} (stage {home[u.name]}) feeds {node.name!r} (stage "
                    f"{home[node.name]}): the partition must keep every edge forward")
    return home, static, k


def _boundaries(ep, home: dict[str, int], k: int) -> tuple[list[list[str]], list[str]]:
    """``B[b]``: values crossing boundary b (stage b -> b+1), in graph order; user outputs."""
    out_node = next(n for n in ep.graph.nodes if n.op == "output")
    user_outputs = [a.name for a in _flat_nodes(out_node.args)]
    last = {name: -1 for name in home}
    for node in ep.graph.nodes:
        s = k - 1 if node.op == "output" else home.get(node.name)
        if s is None:
            continue
        for u in node.all_input_nodes:
            if u.name in last:
                last[u.name] = max(last[u.name], s)
    for name in user_outputs:
        if name in last:
            last[name] = k - 1
    order = [n.name for n in ep.graph.nodes if n.name in home]
    bounds = [[t for t in order if home[t] <= b < last[t]] for b in range(k - 1)]
    return bounds, user_outputs


def _flat_nodes(args) -> list:
    torch = __import__("torch")
    out = []
    for a in args if isinstance(args, (list, tuple)) else [args]:
        if isinstance(a, (list, tuple)):
            out.extend(_flat_nodes(a))
        elif isinstance(a, torch.fx.Node):
            out.append(a)
    return out


def _user_inputs(ep) -> list[str]:
    from torch.export.graph_signature import InputKind

    return [spec.arg.name for spec in ep.graph_signature.input_specs
            if spec.kind == InputKind.USER_INPUT and hasattr(spec.arg, "name")]


def _static_value(ep, node):
    """The tensor a weight placeholder or get_attr node stands for."""
    if node.op == "get_attr":
        obj = ep.graph_module
        for part in node.target.split("."):
            obj = getattr(obj, part)
        return obj
    sig = ep.graph_signature
    target = (sig.inputs_to_parameters.get(node.name) or sig.inputs_to_buffers.get(node.name)
              or sig.inputs_to_lifted_tensor_constants.get(node.name))
    if target in ep.state_dict:
        return ep.state_dict[target]
    return ep.constants[target]


def _build_stage(ep, s: int, names: dict, home, ins, outs):
    """One GraphModule: placeholders ``ins``, the nodes of stage s, weights as attributes."""
    import torch

    graph = torch.fx.Graph()
    root = torch.nn.Module()
    env: dict[str, Any] = {}
    for name in ins:
        env[name] = graph.placeholder(name)
        env[name].meta = dict(names[name].meta)

    def get(node):
        if node.name not in env:
            env[node.name] = _materialize(node)
        return env[node.name]

    def _materialize(node):
        if node.op in ("placeholder", "get_attr"):
            attr = "w_" + str(node.target if node.op == "get_attr" else node.name).replace(".", "_")
            val = _static_value(ep, node)
            if isinstance(val, torch.nn.Parameter):
                root.register_parameter(attr, torch.nn.Parameter(val.detach(), False))
            elif isinstance(val, torch.Tensor):
                root.register_buffer(attr, val)
            else:
                setattr(root, attr, val)
            return graph.get_attr(attr)
        return graph.node_copy(node, get)

    ran = []
    for node in ep.graph.nodes:
        if node.op == "call_function" and home.get(node.name) == s:
            env[node.name] = graph.node_copy(node, get)
            ran.append(node.name)
    sent = []
    for t in outs:  # p2p sends need contiguous tensors; a no-op when already contiguous
        val = names[t].meta.get("val")
        sent.append(graph.call_method("contiguous", (get(names[t]),))
                    if isinstance(val, torch.Tensor) else get(names[t]))
    graph.output(tuple(sent))
    gm = torch.fx.GraphModule(root, graph, class_name=f"Stage{s}")
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm, ran


def split_exported(ep, stage) -> StagePlan:
    """Split ``ep`` into runnable stages following ``stage`` (see the module docstring).

    ``stage``: a :class:`~pipecore.partition.Partition`, a ``SolveResult`` or a
    sequence with one stage per imported node. Returns a :class:`StagePlan`.
    """
    home, _, k = stage_of_rows(ep, stage)
    bounds, user_outputs = _boundaries(ep, home, k)
    user_inputs = _user_inputs(ep)
    names = {n.name: n for n in ep.graph.nodes}
    modules, inputs, outputs, through, nodes = [], [], [], [], []
    for s in range(k):
        ins = user_inputs if s == 0 else bounds[s - 1]
        outs = user_outputs if s == k - 1 else bounds[s]
        gm, ran = _build_stage(ep, s, names, home, ins, outs)
        modules.append(gm)
        inputs.append(list(ins))
        outputs.append(list(outs))
        through.append([t for t in ins if t in outs])
        nodes.append(ran)
    return StagePlan(modules, inputs, outputs, through, nodes)


def pipeline_schedule(plan: StagePlan, stage_index: int, n_microbatches: int, *,
                      group=None, device: str = "cpu", schedule: str = "gpipe",
                      loss_fn=None):
    """A ``torch.distributed.pipelining`` schedule running stage ``stage_index`` of ``plan``.

    Call it on every rank of ``group`` (rank i runs stage i; the group must have
    ``plan.k`` ranks), then ``schedule.step(*inputs)`` on rank 0 and
    ``schedule.step()`` elsewhere; the last rank gets the merged outputs.
    ``schedule``: ``"gpipe"`` or ``"1f1b"``.
    """
    import torch
    from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe

    kinds = {"gpipe": ScheduleGPipe, "1f1b": Schedule1F1B}
    if schedule not in kinds:
        raise ValueError(f"unknown schedule {schedule!r}; choose from {sorted(kinds)}")
    if not 0 <= stage_index < plan.k:
        raise ValueError(f"stage_index {stage_index} outside 0..{plan.k - 1}")
    st = PipelineStage(plan.modules[stage_index], stage_index, plan.k, torch.device(device),
                       group=group)
    return kinds[schedule](st, n_microbatches, loss_fn=loss_fn)


def run_pipeline(plan: StagePlan, rank: int, inputs: Sequence, n_microbatches: int, *,
                 group=None, schedule: str = "gpipe"):
    """Run one full-batch step on this rank; returns the merged outputs on the last rank."""
    sched = pipeline_schedule(plan, rank, n_microbatches, group=group, schedule=schedule)
    if rank == 0:
        return sched.step(*inputs)
    return sched.step()
