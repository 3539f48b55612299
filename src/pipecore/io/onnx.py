"""Import ONNX models as pipecore graphs (optional extra ``onnx``).

:func:`from_onnx` loads a model (path or ``ModelProto``), runs ONNX shape
inference, folds constant-only subgraphs (initializers, ``Constant``,
weight-generating ``ConstantOfShape`` ...) into the operators that consume them,
and measures each remaining operator (:func:`profile_onnx`):

* FLOPs from its shapes (conv, matmul/gemm/einsum, elementwise, norms, pooling,
  reductions, softmax, attention; conventions in :mod:`pipecore.io.device`);
* bytes accessed = every input (activations and weights) plus every output,
  0 for pure views (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout);
* output bytes (tensors that another node or the graph output consumes);
* parameter bytes = the folded constants it consumes (a constant shared by
  several operators counts at each of them: each stage holding one needs a copy).

A :class:`~pipecore.io.device.DeviceModel` then turns these into ``work``
(roofline), ``comm`` and ``mem``. Symbolic dimensions (``batch``, ``seq``) are
fixed from ``dims`` / ``input_shapes`` or set to ``default_dim``; the ones that
were guessed are listed in ``graph.metadata["defaulted_dims"]``. Control-flow
operators (If, Loop, Scan) keep their dependencies (including tensors their
bodies read from the outer graph) but their bodies' FLOPs are not counted.
Import is O(nodes + edges) after shape inference.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import FileFormatError
from ..graph import Graph
from .device import (BATCHNORM_FLOPS_PER_ELEM, NORM_FLOPS_PER_ELEM, SOFTMAX_FLOPS_PER_ELEM,
                     DeviceModel, OpTable, attention_flops, conv_flops, graph_from_ops,
                     matmul_flops)

__all__ = ["from_onnx", "profile_onnx", "onnx_zoo_models"]


def _import_onnx():
    try:
        import onnx  # noqa: F401
        from onnx import shape_inference  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("pipecore.io.onnx needs the 'onnx' package: "
                          "pip install 'pipecore[onnx]'") from exc
    return onnx


_VIEW_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"}
_NARY = {"Add", "Sub", "Mul", "Div", "Pow", "Sum", "Max", "Min", "Mean", "And", "Or", "Xor",
         "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Mod", "PRelu",
         "BitwiseAnd", "BitwiseOr", "BitwiseXor", "Where"}
_UNARY = {"Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Reciprocal", "Neg", "Abs", "Erf",
          "Gelu", "FastGelu", "BiasGelu", "LeakyRelu", "Elu", "Selu", "Celu", "HardSigmoid",
          "HardSwish", "Softplus", "Softsign", "Clip", "Floor", "Ceil", "Round", "Sign", "Not",
          "Cos", "Sin", "Tan", "Acos", "Asin", "Atan", "Cosh", "Sinh", "Asinh", "Acosh",
          "Atanh", "IsNaN", "IsInf", "Mish", "Swish", "ThresholdedRelu", "Shrink", "BitwiseNot",
          "QuickGelu"}
_NORMS = {"LayerNormalization", "InstanceNormalization", "GroupNormalization",
          "MeanVarianceNormalization", "LpNormalization", "RMSNormalization",
          "SimplifiedLayerNormalization", "SkipLayerNormalization",
          "SkipSimplifiedLayerNormalization"}
_SOFTMAX = {"Softmax", "LogSoftmax", "Hardmax"}
_POOL = {"MaxPool", "AveragePool", "LpPool"}
_GLOBAL = {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "ReduceMean", "ReduceSum",
           "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
           "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin", "CumSum", "TopK"}
_CONTROL = {"If", "Loop", "Scan"}
_GATHERS = {"Gather", "GatherElements", "GatherND"}


def onnx_zoo_models() -> dict[str, str]:
    """Model-zoo architectures shipped inside the ``onnx`` wheel (no network needed).

    Returns ``{name: path}`` for the ``light_*`` models of ONNX's backend test
    data (AlexNet, DenseNet-121, Inception v1/v2, ResNet-50, ShuffleNet,
    SqueezeNet, VGG-19, ZFNet-512): the real architectures and shapes, with
    weights regenerated from their shapes by ``ConstantOfShape``.
    """
    onnx = _import_onnx()
    folder = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    if not os.path.isdir(folder):
        return {}
    return {f[len("light_"):-len(".onnx")]: os.path.join(folder, f)
            for f in sorted(os.listdir(folder)) if f.startswith("light_") and f.endswith(".onnx")}


def _load(model, source: str | None):
    onnx = _import_onnx()
    if isinstance(model, onnx.ModelProto):
        return model, source or (model.graph.name or "<onnx model>")
    path = os.fspath(model)
    try:
        proto = onnx.load(path, load_external_data=False)
    except FileNotFoundError:
        raise
    except Exception as exc:  # onnx raises DecodeError / various on garbage
        raise FileFormatError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    if len(proto.graph.node) == 0:
        raise FileFormatError(f"{path}: ONNX model has no nodes")
    return proto, source or path


def _fix_inputs(proto, input_shapes: Mapping[str, Sequence[int]] | None,
                dims: Mapping[str, int] | None):
    """Copy of the model with given input shapes / symbolic dims written into its inputs."""
    onnx = _import_onnx()
    m = onnx.ModelProto()
    m.CopyFrom(proto)
    inits = {t.name for t in m.graph.initializer}
    known = {i.name for i in m.graph.input}
    for name in (input_shapes or {}):
        if name not in known:
            raise ValueError(f"input_shapes names {name!r}, which is not a model input "
                             f"(inputs: {sorted(known - inits)})")
    for inp in m.graph.input:
        if inp.name in inits or not inp.type.HasField("tensor_type"):
            continue
        shape = (input_shapes or {}).get(inp.name)
        tt = inp.type.tensor_type
        if shape is not None:
            tt.shape.Clear()
            for d in shape:
                tt.shape.dim.add().dim_value = int(d)
        elif dims:
            for d in tt.shape.dim:
                if d.HasField("dim_param") and d.dim_param in dims:
                    d.dim_value = int(dims[d.dim_param])
    return m


def _subgraph_inputs(node) -> set[str]:
    """Names a control-flow node's bodies read (possibly from the outer scope)."""
    out: set[str] = set()
    for attr in node.attribute:
        graphs = ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
        for g in graphs:
            local = {i.name for i in g.input} | {t.name for t in g.initializer}
            for n in g.node:
                local.update(n.output)
            for n in g.node:
                out.update(x for x in n.input if x and x not in local)
                out.update(x for x in _subgraph_inputs(n) if x not in local)
    return out


class _Shapes:
    """Tensor shapes and item sizes after inference, with symbolic dims resolved."""

    def __init__(self, graph, dims: Mapping[str, int], default_dim: int):
        from onnx import helper

        self.dims = dict(dims or {})
        self.default_dim = default_dim
        self.defaulted: set[str] = set()
        self.info: dict[str, tuple[tuple | None, int]] = {}

        def itemsize(elem_type: int) -> int:
            try:
                return int(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).itemsize)
            except Exception:
                return 0  # strings, undefined, exotic 4-bit types: no meaningful size

        for t in graph.initializer:
            self.info[t.name] = (tuple(int(d) for d in t.dims), itemsize(t.data_type))
        for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
            if vi.name in self.info or not vi.type.HasField("tensor_type"):
                continue
            tt = vi.type.tensor_type
            size = itemsize(tt.elem_type)
            if not tt.HasField("shape"):
                self.info[vi.name] = (None, size)
                continue
            shape = []
            for d in tt.shape.dim:
                if d.HasField("dim_value") and d.dim_value >= 0:
                    shape.append(int(d.dim_value))
                elif d.HasField("dim_param") and d.dim_param in self.dims:
                    shape.append(int(self.dims[d.dim_param]))
                else:
                    self.defaulted.add(d.dim_param or "?")
                    shape.append(default_dim)
            self.info[vi.name] = (tuple(shape), size)

    def shape(self, name: str):
        return self.info.get(name, (None, 0))[0]

    def numel(self, name: str) -> float:
        s = self.shape(name)
        return float(np.prod(s, dtype=np.float64)) if s is not None else 0.0

    def nbytes(self, name: str) -> float:
        s, size = self.info.get(name, (None, 0))
        return float(np.prod(s, dtype=np.float64)) * size if s is not None else 0.0


def _attr(node, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            from onnx import helper

            return helper.get_attribute_value(a)
    return default


def _einsum_flops(eq: str, shapes: list) -> float:
    lhs = eq.replace(" ", "").split("->")[0]
    terms = lhs.split(",")
    if len(terms) != len(shapes) or any(s is None for s in shapes):
        return 0.0
    size: dict[str, int] = {}
    for term, shape in zip(terms, shapes):
        letters = [c for c in term if c.isalpha()]
        if "..." in term:
            nell = len(shape) - len(letters)
            pre = term.split("...")[0]
            ell = shape[len([c for c in pre if c.isalpha()]):][:nell]
            for i, d in enumerate(ell):
                size[f"_{i}"] = max(size.get(f"_{i}", 1), int(d))
            shape = [d for i, d in enumerate(shape)
                     if not (len(pre) <= i < len(pre) + nell)]
        for c, d in zip(letters, shape):
            size[c] = max(size.get(c, 1), int(d))
    total = float(np.prod(list(size.values()), dtype=np.float64)) if size else 0.0
    return max(len(shapes) - 1, 1) * 2.0 * total


def _node_flops(node, sh: _Shapes) -> float | None:
    """FLOPs of one ONNX node from its shapes; ``None`` when the op type is not modelled."""
    op = node.op_type
    ins = list(node.input)
    outs = [o for o in node.output if o]
    out_numel = sh.numel(outs[0]) if outs else 0.0
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        wi, bi = (3, 8) if op == "QLinearConv" else (1, 2)
        w = sh.shape(ins[wi]) if len(ins) > wi else None
        y = sh.shape(outs[0]) if outs else None
        if w is None or y is None or len(w) < 2:
            return 0.0
        groups = int(_attr(node, "group", 1))
        has_bias = len(ins) > bi and bool(ins[bi])
        return conv_flops(y, w[1] * groups, w[2:], groups, bias=has_bias)
    if op == "ConvTranspose":
        x, w = sh.shape(ins[0]), sh.shape(ins[1])
        if x is None or w is None or len(w) < 2:
            return 0.0
        # every input pixel scatters into C_out/groups * prod(kernel) outputs
        f = 2.0 * float(np.prod(x, dtype=np.float64)) * w[1] \
            * float(np.prod(w[2:], dtype=np.float64))
        return f + (out_numel if len(ins) > 2 and ins[2] else 0.0)
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        ai, bi = (0, 3) if op == "QLinearMatMul" else (0, 1)
        a, b = sh.shape(ins[ai]), sh.shape(ins[bi])
        return matmul_flops(a, b) if a is not None and b is not None else 0.0
    if op == "Gemm":
        a, y = sh.shape(ins[0]), sh.shape(outs[0])
        if a is None or y is None or len(a) != 2 or len(y) != 2:
            return 0.0
        k = a[0] if int(_attr(node, "transA", 0)) else a[1]
        bias = len(ins) > 2 and bool(ins[2])
        return 2.0 * y[0] * k * y[1] + (y[0] * y[1] if bias else 0.0)
    if op == "Einsum":
        eq = _attr(node, "equation", "")
        eq = eq.decode() if isinstance(eq, bytes) else str(eq)
        return _einsum_flops(eq, [sh.shape(x) for x in ins])
    if op in ("Attention", "MultiHeadAttention", "GroupQueryAttention"):
        return _attention_node_flops(node, sh)
    if op in _NARY:
        return max(len([x for x in ins if x]) - 1, 1) * out_numel
    if op in _UNARY:
        return out_numel
    if op == "BatchNormalization":
        return BATCHNORM_FLOPS_PER_ELEM * out_numel
    if op in _NORMS:
        return NORM_FLOPS_PER_ELEM * out_numel
    if op == "LRN":
        return (int(_attr(node, "size", 1)) + 3) * out_numel
    if op in _SOFTMAX:
        return SOFTMAX_FLOPS_PER_ELEM * out_numel
    if op in _POOL:
        kernel = _attr(node, "kernel_shape", [1])
        return out_numel * float(np.prod(kernel, dtype=np.float64))
    if op in _GLOBAL:
        return sh.numel(ins[0]) if ins else 0.0
    if op in _VIEW_OPS or op in _CONTROL:
        return 0.0
    if op in ("Transpose", "Concat", "Split", "Slice", "Gather", "GatherElements", "GatherND",
              "Scatter", "ScatterElements", "ScatterND", "Cast", "CastLike", "Expand", "Tile",
              "Pad", "Shape", "Size", "Resize", "Upsample", "DepthToSpace", "SpaceToDepth",
              "ConstantOfShape", "Constant", "Range", "NonZero", "Trilu", "OneHot",
              "QuantizeLinear", "DequantizeLinear"):
        return 0.0
    return None


def _attention_node_flops(node, sh: _Shapes) -> float:
    ins = list(node.input)
    q = sh.shape(ins[0]) if ins else None
    if q is None:
        return 0.0
    if node.domain in ("", "ai.onnx") and node.op_type == "Attention":  # opset 23
        k = sh.shape(ins[1]) if len(ins) > 1 else None
        v = sh.shape(ins[2]) if len(ins) > 2 else None
        if k is None or v is None:
            return 0.0
        if len(q) == 4:
            b, h, s_q, d = q
            s_kv, d_v = k[2], v[3]
        else:
            h = int(_attr(node, "q_num_heads", 1))
            hkv = int(_attr(node, "kv_num_heads", h))
            b, s_q, d = q[0], q[1], q[2] // max(h, 1)
            s_kv, d_v = k[1], v[2] // max(hkv, 1)
        return attention_flops(b * h, s_q, s_kv, d, d_v)
    # com.microsoft Attention (packed QKV projection inside) / MultiHeadAttention
    heads = int(_attr(node, "num_heads", 1))
    b, s = q[0], q[1] if len(q) > 1 else 1
    f = 0.0
    if node.op_type == "Attention" and len(ins) > 1:
        w = sh.shape(ins[1])
        if w is not None and len(w) == 2:
            f += 2.0 * b * s * w[0] * w[1]
            hidden = w[1] // 3
        else:
            hidden = q[-1]
        s_kv = s
    else:
        hidden = q[-1]
        k = sh.shape(ins[1]) if len(ins) > 1 and ins[1] else None
        s_kv = k[1] if k is not None and len(k) >= 2 else s
    return f + attention_flops(b * heads, s, s_kv, hidden // max(heads, 1))


def profile_onnx(model, *, input_shapes: Mapping[str, Sequence[int]] | None = None,
                 dims: Mapping[str, int] | None = None, default_dim: int = 1,
                 source: str | None = None) -> tuple[OpTable, dict]:
    """Measure every operator of an ONNX model; returns ``(OpTable, info)``.

    ``info`` holds provenance (source, opset, producer), the symbolic dims that
    were defaulted and the op types whose FLOPs are not modelled (counted as 0).
    """
    _import_onnx()
    from onnx import shape_inference

    proto, source = _load(model, source)
    proto = _fix_inputs(proto, input_shapes, dims)
    try:
        inferred = shape_inference.infer_shapes(proto, check_type=False, strict_mode=False,
                                                data_prop=True)
    except Exception as exc:
        raise FileFormatError(f"{source}: ONNX shape inference failed: {exc}") from None
    graph = inferred.graph
    sh = _Shapes(graph, dims or {}, default_dim)

    static = {t.name for t in graph.initializer}
    producer: dict[str, int] = {}
    table = OpTable()
    consumed: set[str] = set(o.name for o in graph.output)
    for node in graph.node:
        consumed.update(x for x in node.input if x)
        if node.op_type in _CONTROL:
            consumed.update(_subgraph_inputs(node))
    uncounted: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        ins = [x for x in node.input if x]
        extra = sorted(_subgraph_inputs(node)) if node.op_type in _CONTROL else []
        if node.op_type not in _CONTROL and all(x in static for x in ins):
            # constant subgraph (Constant, weight generators, transposed weights, ...):
            # fold it into its consumers' parameter bytes
            static.update(o for o in node.output if o)
            continue
        flops = _node_flops(node, sh)
        if flops is None:
            uncounted[node.op_type] = uncounted.get(node.op_type, 0) + 1
            flops = 0.0
        outs = [o for o in node.output if o]
        out_bytes = sum(sh.nbytes(o) for o in outs if o in consumed)
        param = sum(sh.nbytes(x) for x in ins if x in static)
        if node.op_type in _VIEW_OPS:
            accessed = 0.0
        elif node.op_type in _GATHERS:  # reads only the gathered rows of its table
            accessed = 2.0 * out_bytes + sum(sh.nbytes(x) for x in ins[1:])
        else:
            accessed = sum(sh.nbytes(x) for x in ins) + sum(sh.nbytes(o) for o in outs)
        label = node.name or f"{node.op_type}_{i}"
        v = table.add(label, node.op_type, flops, accessed, out_bytes, param)
        for x in ins + extra:
            u = producer.get(x)
            if u is not None and u != v:
                table.edges.append((u, v))
        for o in outs:
            producer[o] = v
    opset = {imp.domain or "ai.onnx": int(imp.version) for imp in proto.opset_import}
    info = {
        "importer": "onnx",
        "source": str(source),
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "opset": opset,
        "defaulted_dims": sorted(sh.defaulted),
        "uncounted_ops": uncounted,
    }
    return table, info


def from_onnx(model, *, device: DeviceModel | str | Mapping | None = None,
              input_shapes: Mapping[str, Sequence[int]] | None = None,
              dims: Mapping[str, int] | None = None, default_dim: int = 1,
              k: int | None = None, source: str | None = None,
              metadata: Mapping[str, Any] | None = None) -> Graph:
    """Load an ONNX model (path or ``ModelProto``) as a pipecore :class:`Graph`.

    Parameters
    ----------
    model : str, path or onnx.ModelProto
    device : DeviceModel, preset name or dict, optional
        Turns FLOPs and bytes into times (default: the ``a100`` preset).
    input_shapes : dict, optional
        Concrete shape per graph input, e.g. ``{"input_ids": [1, 128]}``.
    dims : dict, optional
        Values for symbolic dimensions, e.g. ``{"batch": 1, "sequence": 128}``.
    default_dim : int
        Value for symbolic dimensions not given (recorded in metadata).
    k : int, optional
        Default stage count stored in ``metadata["k"]``.
    """
    table, info = profile_onnx(model, input_shapes=input_shapes, dims=dims,
                               default_dim=default_dim, source=source)
    meta = dict(info)
    if k is not None:
        meta["k"] = int(k)
    meta.update(metadata or {})
    return graph_from_ops(table, device, metadata=meta)

