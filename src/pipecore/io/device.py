"""The device model that turns operator counts into pipecore costs.

The importers (:mod:`pipecore.io.onnx`, :mod:`pipecore.io.torch`) measure every
operator in hardware-neutral units -- floating-point operations, bytes it
reads and writes, bytes of its output tensor(s), bytes of parameters it holds --
and a :class:`DeviceModel` converts them into the three per-node costs of
DESIGN.md section 1:

``work[v]`` (roofline)
    ``max(flops / peak_flops, bytes_accessed / mem_bandwidth) + op_overhead``:
    an operator is either compute-bound or memory-bound, whichever is slower.
``comm[v]``
    ``link_latency + out_bytes / link_bandwidth`` (0 when nothing is sent):
    the time to ship v's output tensor(s) to the next device.
``mem[v]``
    ``param_bytes``: resident weights (initializers, parameters, buffers), in bytes.

Times are expressed in ``time_unit`` seconds (default ``1e-6``: microseconds),
so a bottleneck of 12.5 means 12.5 us per pipeline step. Presets for a few
common accelerators are in :data:`DEVICES` (published peak numbers, dense
16-bit tensor-core FLOP/s, HBM bandwidth, one direction of the device link);
pass your own numbers for anything else.

FLOP conventions shared by both importers (multiply-add = 2 FLOPs):

====================  ==============================================================
matmul / gemm / linear ``2 * batch * M * K * N`` (+ ``M * N`` for a bias)
conv                   ``2 * N * C_out * prod(out_spatial) * (C_in / groups) * prod(kernel)``
                       (+ ``N * C_out * prod(out_spatial)`` for a bias)
attention (SDPA)       ``2 B H S_q S_kv (D_qk + D_v) + 3 B H S_q S_kv`` (two matmuls + softmax)
elementwise            ``(inputs - 1) * numel(out)`` for n-ary arithmetic, ``numel(out)`` otherwise
normalisation          ``5 * numel`` (mean, variance, normalise, scale, shift); batchnorm
                       (inference) ``2 * numel``; LRN ``(size + 3) * numel``
softmax                ``3 * numel`` (exp, sum, divide)
pooling                ``numel(out) * prod(kernel)``; global pooling / reductions ``numel(in)``
data movement          0 FLOPs (reshape, transpose, concat, gather, slice, cast, ...)
====================  ==============================================================
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InvalidGraphError
from ..graph import Graph

__all__ = ["DeviceModel", "DEVICES", "get_device", "OpTable", "graph_from_ops",
           "matmul_flops", "conv_flops", "attention_flops", "NORM_FLOPS_PER_ELEM",
           "SOFTMAX_FLOPS_PER_ELEM"]

NORM_FLOPS_PER_ELEM = 5
BATCHNORM_FLOPS_PER_ELEM = 2
SOFTMAX_FLOPS_PER_ELEM = 3


@dataclass(frozen=True)
class DeviceModel:
    """A roofline accelerator with a point-to-point link to the next pipeline stage.

    Parameters
    ----------
    name : str
        Label recorded in graph metadata.
    peak_flops : float
        Peak arithmetic throughput in FLOP/s.
    mem_bandwidth : float
        Device-memory bandwidth in bytes/s (roofline's memory roof).
    link_bandwidth : float
        Bandwidth of the inter-device link in bytes/s (one direction).
    link_latency : float
        Fixed seconds per transfer (added to every non-empty ``comm``).
    op_overhead : float
        Fixed seconds per operator (kernel launch), added to every ``work``.
    time_unit : float
        Seconds per cost unit (default 1e-6: costs in microseconds).
    """

    name: str = "a100"
    peak_flops: float = 312e12
    mem_bandwidth: float = 1.555e12
    link_bandwidth: float = 300e9
    link_latency: float = 0.0
    op_overhead: float = 0.0
    time_unit: float = 1e-6

    def __post_init__(self):
        for key in ("peak_flops", "mem_bandwidth", "link_bandwidth", "time_unit"):
            v = getattr(self, key)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"DeviceModel.{key} must be a finite number > 0, got {v!r}")
        for key in ("link_latency", "op_overhead"):
            v = getattr(self, key)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"DeviceModel.{key} must be a finite number >= 0, got {v!r}")

    def work(self, flops, bytes_accessed) -> np.ndarray:
        """Roofline time ``max(flops/peak, bytes/bw) + op_overhead`` in ``time_unit``s."""
        f = np.asarray(flops, dtype=np.float64)
        b = np.asarray(bytes_accessed, dtype=np.float64)
        t = np.maximum(f / self.peak_flops, b / self.mem_bandwidth) + self.op_overhead
        return t / self.time_unit

    def comm(self, out_bytes) -> np.ndarray:
        """Transfer time ``link_latency + bytes/link_bw`` (0 for empty outputs) in ``time_unit``s."""
        b = np.asarray(out_bytes, dtype=np.float64)
        t = np.where(b > 0, self.link_latency + b / self.link_bandwidth, 0.0)
        return t / self.time_unit

    def to_dict(self) -> dict:
        return asdict(self)

    def with_(self, **changes) -> "DeviceModel":
        """A copy with some fields changed, e.g. ``DEVICES['a100'].with_(link_bandwidth=25e9)``."""
        return replace(self, **changes)


#: Presets (dense 16-bit tensor FLOP/s, HBM bandwidth, one direction of the device link).
DEVICES: dict[str, DeviceModel] = {
    "a100": DeviceModel("a100", 312e12, 1.555e12, 300e9),
    "h100": DeviceModel("h100", 989e12, 3.35e12, 450e9),
    "v100": DeviceModel("v100", 125e12, 0.9e12, 150e9),
    "a100-pcie": DeviceModel("a100-pcie", 312e12, 1.555e12, 32e9),
    "cpu": DeviceModel("cpu", 2e12, 100e9, 12.5e9),
}


def get_device(spec: "DeviceModel | str | Mapping[str, Any] | None" = None) -> DeviceModel:
    """A :class:`DeviceModel` from a preset name, a dict of fields, or ``None`` (``a100``)."""
    if spec is None:
        return DEVICES["a100"]
    if isinstance(spec, DeviceModel):
        return spec
    if isinstance(spec, str):
        try:
            return DEVICES[spec]
        except KeyError:
            raise ValueError(f"unknown device {spec!r}; presets: {', '.join(DEVICES)}") from None
    if isinstance(spec, Mapping):
        base = get_device(spec.get("preset")) if "preset" in spec else DeviceModel()
        fields = {k: v for k, v in spec.items() if k != "preset"}
        try:
            return replace(base, **fields)
        except TypeError as exc:
            raise ValueError(f"bad device description: {exc}") from None
    raise TypeError(f"device must be a DeviceModel, preset name or dict, got {type(spec).__name__}")


# ---------------------------------------------------------------------- FLOP formulas
def matmul_flops(a_shape: Sequence[int], b_shape: Sequence[int]) -> float:
    """FLOPs of ``a @ b`` with numpy broadcasting: ``2 * batch * M * K * N``."""
    a, b = list(a_shape), list(b_shape)
    if not a or not b:
        return 0.0
    if len(a) == 1:
        a = [1] + a
    if len(b) == 1:
        b = b + [1]
    m, k, n = a[-2], a[-1], b[-1]
    batch = np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2])) if (len(a) > 2 or len(b) > 2) else ()
    return 2.0 * float(np.prod(batch, dtype=np.float64)) * m * k * n


def conv_flops(out_shape: Sequence[int], in_channels: int, kernel: Sequence[int], groups: int = 1,
               bias: bool = False) -> float:
    """FLOPs of an N-d convolution given its output shape ``(N, C_out, *spatial)``."""
    out = np.prod(out_shape, dtype=np.float64)
    per_out = 2.0 * (in_channels / max(groups, 1)) * float(np.prod(kernel, dtype=np.float64))
    return float(out * per_out + (out if bias else 0.0))


def attention_flops(batch_heads: float, s_q: int, s_kv: int, d_qk: int, d_v: int | None = None) -> float:
    """FLOPs of softmax(Q K^T) V: two matmuls plus a softmax over ``S_q x S_kv`` scores."""
    d_v = d_qk if d_v is None else d_v
    scores = float(batch_heads) * s_q * s_kv
    return 2.0 * scores * d_qk + 2.0 * scores * d_v + SOFTMAX_FLOPS_PER_ELEM * scores


# ---------------------------------------------------------------------- op table -> Graph
@dataclass
class OpTable:
    """Hardware-neutral measurements of the operators of an imported model.

    One row per kept operator (constant-only subgraphs are folded into their
    consumers' ``param_bytes``); ``edges`` are (producer, consumer) row indices.
    """

    names: list[str] = field(default_factory=list)
    op_types: list[str] = field(default_factory=list)
    flops: list[float] = field(default_factory=list)
    bytes_accessed: list[float] = field(default_factory=list)
    out_bytes: list[float] = field(default_factory=list)
    param_bytes: list[float] = field(default_factory=list)
    edges: list[tuple[int, int]] = field(default_factory=list)

    def add(self, name: str, op_type: str, flops: float, bytes_accessed: float,
            out_bytes: float, param_bytes: float) -> int:
        self.names.append(name)
        self.op_types.append(op_type)
        self.flops.append(float(flops))
        self.bytes_accessed.append(float(bytes_accessed))
        self.out_bytes.append(float(out_bytes))
        self.param_bytes.append(float(param_bytes))
        return len(self.names) - 1

    def __len__(self) -> int:
        return len(self.names)

    @property
    def total_flops(self) -> float:
        return float(np.sum(self.flops))

    def op_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.op_types:
            out[t] = out.get(t, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def _unique_names(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for s in names:
        if s in seen:
            seen[s] += 1
            t = f"{s}#{seen[s]}"
            while t in seen:
                seen[s] += 1
                t = f"{s}#{seen[s]}"
            seen[t] = 0
            out.append(t)
        else:
            seen[s] = 0
            out.append(s)
    return out


def graph_from_ops(table: OpTable, device: DeviceModel | str | Mapping | None = None, *,
                   metadata: Mapping[str, Any] | None = None) -> Graph:
    """Apply a device model to an :class:`OpTable` and build the pipecore :class:`Graph`.

    Records provenance in ``graph.metadata``: the device, total FLOPs, total
    parameter bytes and operator counts. O(n + m).
    """
    if len(table) == 0:
        raise InvalidGraphError("the model has no operators left after folding constants")
    dev = get_device(device)
    work = dev.work(table.flops, table.bytes_accessed)
    comm = dev.comm(table.out_bytes)
    mem = np.asarray(table.param_bytes, dtype=np.float64)
    edges = np.asarray(table.edges, dtype=np.int64).reshape(-1, 2)
    meta = dict(metadata or {})
    meta.update({
        "device": dev.to_dict(),
        "time_unit": dev.time_unit,
        "total_flops": table.total_flops,
        "total_param_bytes": float(mem.sum()),
        "op_counts": table.op_counts(),
    })
    return Graph(len(table), edges[:, 0], edges[:, 1], work, comm, mem,
                 names=_unique_names(table.names), metadata=meta)
