"""Import PyTorch modules via ``torch.export`` (optional extra ``torch``).

:func:`from_torch` exports a module with example inputs (``torch.export.export``,
non-strict) and walks the exported ATen graph. Nothing is executed: every
shape comes from the fake tensors in ``node.meta["val"]``, so the module and its
inputs may live on the ``meta`` device and no weights are ever allocated
(build it under ``with torch.device("meta"):``). Each ATen call becomes one node
measured with the same conventions as the ONNX importer
(:mod:`pipecore.io.device`): FLOPs for linear/matmul/conv/attention/
elementwise/norm/softmax/pooling/reductions, bytes accessed (0 for views;
gathered rows only for embeddings), output bytes and the bytes of the
parameters, buffers and folded constants it reads. Constant subgraphs
(``arange``, masks built from buffers, ...) are folded into their consumers.

:func:`from_transformers` builds HuggingFace ``transformers`` models (BERT,
GPT-2, T5, ViT, Llama) from their default configs on the meta device, with
``use_cache=False`` for decoders, and imports them. O(nodes + edges) after export.
"""
from __future__ import annotations

import math
import operator
from typing import Any, Mapping, Sequence


from ..graph import Graph
from .device import (BATCHNORM_FLOPS_PER_ELEM, NORM_FLOPS_PER_ELEM, SOFTMAX_FLOPS_PER_ELEM,
                     DeviceModel, OpTable, attention_flops, conv_flops, graph_from_ops,
                     matmul_flops)

__all__ = ["from_torch", "from_exported", "profile_exported", "from_transformers",
           "transformers_model", "TRANSFORMERS_ARCHS"]


def _import_torch():
    try:
        import torch
        import torch.export  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("pipecore.io.torch needs PyTorch (>= 2.5): pip install 'pipecore[torch]'"
                          ) from exc
    return torch


_VIEWS = {"view", "reshape", "_unsafe_view", "expand", "expand_as", "permute", "transpose", "t",
          "unsqueeze", "squeeze", "slice", "select", "alias", "detach", "flatten", "unflatten",
          "split", "split_with_sizes", "chunk", "unbind", "narrow", "as_strided", "dropout",
          "feature_dropout", "alpha_dropout", "lift_fresh_copy", "view_as", "movedim",
          "swapaxes", "unfold", "diagonal", "_assert_tensor_metadata"}
_GATHERS = {"embedding", "gather", "index_select", "index", "take", "take_along_dim"}
_NARY = {"add", "sub", "rsub", "mul", "div", "pow", "maximum", "minimum", "fmod", "remainder",
         "where", "eq", "ne", "ge", "gt", "le", "lt", "logical_and", "logical_or", "logical_xor",
         "bitwise_and", "bitwise_or", "bitwise_xor", "masked_fill", "addcmul", "addcdiv", "lerp",
         "atan2", "floor_divide", "prelu", "copysign", "hypot"}
_UNARY = {"relu", "relu6", "gelu", "silu", "mish", "tanh", "sigmoid", "exp", "exp2", "expm1",
          "log", "log2", "log1p", "sqrt", "rsqrt", "neg", "abs", "erf", "erfc", "clamp",
          "clamp_min", "clamp_max", "clip", "hardtanh", "hardswish", "hardsigmoid", "leaky_relu",
          "elu", "selu", "celu", "softplus", "cos", "sin", "tan", "reciprocal", "logical_not",
          "bitwise_not", "square", "sign", "floor", "ceil", "round", "trunc", "isnan", "isinf",
          "tril", "triu", "glu", "logit", "gelu_", "relu_", "silu_", "threshold", "sgn", "frac"}
_NORMS = {"layer_norm", "native_layer_norm", "group_norm", "native_group_norm", "instance_norm",
          "rms_norm", "_fused_rms_norm", "local_response_norm", "normalize"}
_BATCHNORMS = {"batch_norm", "_native_batch_norm_legit_no_training", "native_batch_norm",
               "_native_batch_norm_legit", "cudnn_batch_norm"}
_SOFTMAX = {"softmax", "_softmax", "log_softmax", "_log_softmax", "_safe_softmax"}
_POOL = {"max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
         "max_pool2d_with_indices", "max_pool3d_with_indices", "lp_pool2d"}
_REDUCE = {"mean", "sum", "amax", "amin", "max", "min", "prod", "var", "std", "var_mean",
           "std_mean", "norm", "linalg_vector_norm", "cumsum", "cumprod", "argmax", "argmin",
           "logsumexp", "any", "all", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
           "adaptive_avg_pool3d", "_adaptive_avg_pool2d", "adaptive_max_pool2d", "topk", "sort"}
_MATMULS = {"mm", "bmm", "matmul", "addmm", "baddbmm", "addbmm", "dot", "mv", "einsum"}
_CONVS = {"conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose1d",
          "conv_transpose2d", "conv_transpose3d"}
_ATTENTION = {"scaled_dot_product_attention", "_scaled_dot_product_flash_attention_for_cpu",
              "_scaled_dot_product_efficient_attention", "_scaled_dot_product_flash_attention",
              "_scaled_dot_product_cudnn_attention"}


#: FLOPs per output element of the backward / training-only elementwise ops
#: (``native_dropout``: draw, compare, scale; activation gradients: the derivative
#: and the product with the incoming gradient; softmax gradient: y * (g - sum(g y))).
_BACKWARD_PER_ELEM = {"native_dropout": 3, "native_dropout_backward": 1, "gelu_backward": 8,
                      "tanh_backward": 3, "sigmoid_backward": 3, "threshold_backward": 1,
                      "silu_backward": 5, "hardtanh_backward": 1, "elu_backward": 3,
                      "leaky_relu_backward": 1, "_softmax_backward_data": 4,
                      "_log_softmax_backward_data": 4}


def _op_name(target) -> str:
    """ATen op name without namespace and overload; in-place ``add_`` counts as ``add``."""
    schema = getattr(target, "_schema", None)
    name = schema.name.split("::")[-1] if schema is not None else \
        getattr(target, "__name__", str(target))
    if name.endswith("_") and not name.endswith("__") and len(name) > 1:
        name = name[:-1]
    return name


def _is_tensor(x) -> bool:
    torch = _import_torch()
    return isinstance(x, torch.Tensor)


def _nbytes(val) -> float:
    """Bytes of a tensor, or of every tensor in a tuple/list value."""
    if val is None:
        return 0.0
    if isinstance(val, (tuple, list)):
        return sum(_nbytes(v) for v in val)
    if _is_tensor(val):
        return _numel(val) * val.dtype.itemsize
    return 0.0


def _dim(d) -> int:
    """A concrete dimension; symbolic ones (dynamic shapes) use their example value."""
    try:
        return int(d)
    except TypeError:
        return int(d.node.hint)


def _shape(x) -> tuple | None:
    return tuple(_dim(d) for d in x.shape) if _is_tensor(x) else None


def _numel(x) -> float:
    s = _shape(x)
    return float(math.prod(s)) if s is not None else 0.0


def _first_tensor(val):
    if isinstance(val, (tuple, list)):
        return next((v for v in val if _is_tensor(v)), None)
    return val if _is_tensor(val) else None


def _dims(x) -> tuple:
    """The shape of a tensor, ``()`` for anything else (callers index it: a wrong guess
    raises IndexError, which the importer reports as an unmodelled op)."""
    return _shape(x) or ()


def _flops(name: str, args: list, kwargs: dict, out) -> float | None:
    """FLOPs of one ATen call (args are resolved to fake tensors); ``None`` if not modelled."""
    out_t = _first_tensor(out)
    out_numel = _numel(out_t)
    tensors = [a for a in args if _is_tensor(a)]
    if name == "linear":
        x, w = args[0], args[1]
        bias = len(args) > 2 and _is_tensor(args[2]) or _is_tensor(kwargs.get("bias"))
        return 2.0 * _numel(x) * _dims(w)[0] + (out_numel if bias else 0.0)
    if name in _MATMULS:
        if name == "einsum":
            return None if not tensors else _einsum(args[0], args[1])
        if name in ("addmm", "baddbmm", "addbmm"):
            return matmul_flops(_dims(args[1]), _dims(args[2])) + out_numel
        if len(tensors) >= 2:
            return matmul_flops(_dims(tensors[0]), _dims(tensors[1]))
        return 0.0
    if name in _CONVS:
        x, w = args[0], args[1]
        bias = len(args) > 2 and _is_tensor(args[2])
        if name in ("convolution", "_convolution"):  # (.., dilation, transposed, out_pad, groups)
            transposed, groups = bool(args[6]), args[8]
        else:  # convNd(.., groups) / conv_transposeNd(.., output_padding, groups, dilation)
            transposed = name.startswith("conv_transpose")
            groups = args[6] if len(args) > 6 else kwargs.get("groups", 1)
        groups = int(groups)
        ws = _dims(w)
        if transposed:  # every input pixel scatters into C_out/groups * prod(kernel) outputs
            f = 2.0 * _numel(x) * ws[1] * float(math.prod(ws[2:]))
            return f + (out_numel if bias else 0.0)
        return conv_flops(_dims(out_t), ws[1] * groups, ws[2:], groups, bias=bias)
    if name in _ATTENTION:
        q, k, v = (_dims(t) for t in args[:3])
        return attention_flops(float(math.prod(q[:-2])), q[-2], k[-2], q[-1], v[-1])
    if name in _NARY:
        return max(len(tensors) - 1, 1) * out_numel
    if name in _UNARY:
        return out_numel
    if name in _BATCHNORMS:
        return BATCHNORM_FLOPS_PER_ELEM * out_numel
    if name in _NORMS:
        return NORM_FLOPS_PER_ELEM * out_numel
    if name in _SOFTMAX:
        return SOFTMAX_FLOPS_PER_ELEM * out_numel
    if name in _POOL:
        kernel = args[1] if len(args) > 1 else kwargs.get("kernel_size", [1])
        kernel = [kernel] if isinstance(kernel, int) else list(kernel)
        return out_numel * float(math.prod(kernel))
    if name in _REDUCE:
        return _numel(tensors[0]) if tensors else 0.0
    if name in _BACKWARD_PER_ELEM:   # training graphs: elementwise gradient formulas
        return _BACKWARD_PER_ELEM[name] * out_numel
    if name == "native_layer_norm_backward":
        return 2.0 * NORM_FLOPS_PER_ELEM * _numel(tensors[0])
    if name == "embedding_dense_backward":     # scatter-add of every gradient row
        return _numel(tensors[0])
    if name in _VIEWS or name in _GATHERS:
        return 0.0
    if name in ("cat", "stack", "clone", "contiguous", "_to_copy", "to", "copy", "copy_", "pad",
                "constant_pad_nd", "repeat", "roll", "flip", "scatter", "scatter_add",
                "index_put", "new_zeros", "new_ones", "zeros_like", "ones_like", "full_like",
                "empty_like", "type_as", "masked_select", "upsample_nearest2d", "pixel_shuffle",
                "sym_size", "_local_scalar_dense", "item", "getitem", "scalar_tensor"):
        return 0.0
    return None


def _einsum(equation, operands) -> float:
    from .onnx import _einsum_flops  # pure-python helper, no onnx import needed

    return _einsum_flops(str(equation), [_shape(t) for t in operands])


def profile_exported(ep) -> tuple[OpTable, dict]:
    """Measure every operator of an ``ExportedProgram``; returns ``(OpTable, info)``."""
    table, info, _ = walk_graph(ep.graph, static_placeholders(ep))
    return table, info


def static_placeholders(ep) -> set[str]:
    """Names of the placeholders of ``ep`` that hold parameters, buffers or constants."""
    from torch.export.graph_signature import InputKind

    kinds = {InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR}
    return {spec.arg.name for spec in ep.graph_signature.input_specs
            if hasattr(spec.arg, "name") and spec.kind in kinds}


def _resolve(a):
    """Replace fx nodes inside call arguments by their fake values."""
    torch = _import_torch()
    if isinstance(a, torch.fx.Node):
        return a.meta.get("val")
    if isinstance(a, (list, tuple)):
        return type(a)(_resolve(x) for x in a)
    return a


def walk_graph(graph, static_names: set[str]) -> tuple[OpTable, dict, dict[str, int]]:
    """One table row per kept ATen call of an fx ``graph``; O(nodes + edges).

    ``static_names`` are the placeholders holding weights (their bytes go to the
    consumers' ``param_bytes``; subgraphs computed from them alone are folded).
    Returns ``(table, info, index)`` where ``index`` maps fx node name -> row
    (a ``getitem`` maps to its producer's row); nodes not in ``index`` are user
    inputs, folded constants or non-tensor nodes.
    """
    torch = _import_torch()
    static: dict[str, float] = {}   # fx node name -> bytes of its constant value
    index: dict[str, int] = {}      # fx node name -> row in the table (or alias of a row)
    table = OpTable()
    uncounted: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "placeholder":
            if node.name in static_names:
                static[node.name] = _nbytes(node.meta.get("val"))
            continue
        if node.op == "get_attr":  # submodules of higher-order ops, lifted constants
            static[node.name] = _nbytes(node.meta.get("val"))
            continue
        if node.op != "call_function":
            continue
        if node.target is operator.getitem:  # element of a multi-output op: alias its producer
            parent = node.args[0].name
            if parent in static:
                static[node.name] = _nbytes(node.meta.get("val"))
            elif parent in index:
                index[node.name] = index[parent]
            continue
        val = node.meta.get("val")
        inputs = [a for a in node.all_input_nodes]
        if _first_tensor(val) is None:  # asserts, symbolic ints: no tensor data flows
            continue
        if all(u.name in static for u in inputs):
            static[node.name] = _nbytes(val)  # constant subgraph: fold into consumers
            continue
        v = _add_row(table, node, val, inputs, static, index, uncounted)
        index[node.name] = v
        for u in inputs:
            p = index.get(u.name)
            if p is not None and p != v:
                table.edges.append((p, v))
    info = {"importer": "torch.export", "torch_version": torch.__version__,
            "uncounted_ops": uncounted}
    return table, info, index


def _add_row(table: OpTable, node, val, inputs, static, index, uncounted) -> int:
    """Append the row of one ATen call (FLOPs, bytes accessed, output and weight bytes)."""
    name = _op_name(node.target)
    args = [_resolve(a) for a in node.args]
    kwargs = {k: _resolve(v) for k, v in node.kwargs.items()}
    try:
        flops = _flops(name, args, kwargs, val)
    except (TypeError, IndexError, ValueError, AttributeError):
        flops = None
    if flops is None:
        uncounted[name] = uncounted.get(name, 0) + 1
        flops = 0.0
    out_bytes = _nbytes(val)
    param = sum(static[u.name] for u in inputs if u.name in static)
    in_bytes = sum(_nbytes(u.meta.get("val")) for u in inputs)
    if name in _VIEWS:
        accessed = 0.0
    elif name in _GATHERS:
        accessed = 2.0 * out_bytes + sum(_nbytes(u.meta.get("val")) for u in inputs
                                          if u.name not in static and u.name in index)
    else:
        accessed = in_bytes + out_bytes
    stack = node.meta.get("nn_module_stack") or {}
    path = list(stack.values())[-1][0] if stack else ""
    label = f"{path}/{node.name}" if path else node.name
    return table.add(label, name, flops, accessed, out_bytes, param)


def from_exported(ep, *, device: DeviceModel | str | Mapping | None = None, k: int | None = None,
                  metadata: Mapping[str, Any] | None = None) -> Graph:
    """A pipecore :class:`Graph` from an ``ExportedProgram`` (see :func:`profile_exported`)."""
    table, info = profile_exported(ep)
    meta = dict(info)
    if k is not None:
        meta["k"] = int(k)
    meta.update(metadata or {})
    return graph_from_ops(table, device, metadata=meta)


def from_torch(module, args: Sequence = (), kwargs: Mapping | None = None, *,
               device: DeviceModel | str | Mapping | None = None, k: int | None = None,
               strict: bool = False, metadata: Mapping[str, Any] | None = None,
               training: bool = False, optimizer: str = "adam", loss_fn=None) -> Graph:
    """Export ``module(*args, **kwargs)`` with ``torch.export`` and import the result.

    ``module`` and the example inputs may be on the ``meta`` device (no weights
    are needed: only shapes and dtypes are read). ``device`` is the
    :class:`~pipecore.io.device.DeviceModel` (or preset name) used for costs.
    ``training=True`` imports the joint forward + backward graph instead
    (:func:`pipecore.io.torch_train.from_torch_training`; ``optimizer`` and
    ``loss_fn`` are passed on).
    """
    torch = _import_torch()
    if training:
        from .torch_train import from_torch_training

        return from_torch_training(module, args, kwargs, device=device, k=k,
                                   optimizer=optimizer, loss_fn=loss_fn, metadata=metadata)
    module = module.eval() if hasattr(module, "eval") else module
    ep = torch.export.export(module, tuple(args), dict(kwargs or {}), strict=strict)
    meta = {"source": f"torch:{type(module).__name__}"}
    meta.update(metadata or {})
    return from_exported(ep, device=device, k=k, metadata=meta)


# ---------------------------------------------------------------------- transformers
TRANSFORMERS_ARCHS = ("bert", "gpt2", "t5", "vit", "llama")


def transformers_model(arch: str, *, batch: int = 1, seq_len: int = 128,
                       config: Mapping[str, Any] | None = None):
    """A HuggingFace model built from its default config on the meta device.

    Returns ``(module, args, kwargs)`` ready for :func:`from_torch`; no weights
    are downloaded or allocated. ``config`` overrides config fields (e.g. a
    small ``num_hidden_layers`` for tests). Decoders get ``use_cache=False`` so
    that no KV cache objects enter the exported graph.
    """
    torch = _import_torch()
    try:
        import transformers
    except ImportError as exc:
        raise ImportError("from_transformers needs the 'transformers' package: "
                          "pip install 'pipecore[torch]'") from exc
    over = dict(config or {})
    meta = torch.device("meta")
    ids = torch.zeros((batch, seq_len), dtype=torch.long, device=meta)
    if arch == "bert":
        cfg = transformers.BertConfig(**over)
        cls, args, kwargs = transformers.BertModel, (ids,), {}
    elif arch == "gpt2":
        cfg = transformers.GPT2Config(**{"use_cache": False, **over})
        cls, args, kwargs = transformers.GPT2LMHeadModel, (ids,), {"use_cache": False}
    elif arch == "t5":
        cfg = transformers.T5Config(**{"use_cache": False, **over})
        cls, args = transformers.T5ForConditionalGeneration, ()  # type: ignore[assignment]
        kwargs = {"input_ids": ids, "decoder_input_ids": ids, "use_cache": False}
    elif arch == "vit":
        cfg = transformers.ViTConfig(**over)
        pix = torch.zeros((batch, cfg.num_channels, cfg.image_size, cfg.image_size), device=meta)
        cls, args, kwargs = transformers.ViTModel, (pix,), {}
    elif arch == "llama":
        cfg = transformers.LlamaConfig(**{"use_cache": False, **over})
        cls, args, kwargs = transformers.LlamaForCausalLM, (ids,), {"use_cache": False}
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose from {TRANSFORMERS_ARCHS}")
    with meta:
        model = cls(cfg)
    model.eval()
    return model, args, kwargs


def from_transformers(arch: str, *, batch: int = 1, seq_len: int = 128,
                      config: Mapping[str, Any] | None = None,
                      device: DeviceModel | str | Mapping | None = None,
                      k: int | None = None, training: bool = False,
                      optimizer: str = "adam") -> Graph:
    """Import a default-config HuggingFace model (see :func:`transformers_model`);
    ``training=True``: its forward + backward graph (see :func:`from_torch`)."""
    import transformers

    model, args, kwargs = transformers_model(arch, batch=batch, seq_len=seq_len, config=config)
    meta = {"source": f"transformers:{type(model).__name__}", "arch": arch, "batch": batch,
            "transformers_version": transformers.__version__}
    if arch != "vit":
        meta["seq_len"] = seq_len
    if config:
        meta["config_overrides"] = dict(config)
    return from_torch(model, args, kwargs, device=device, k=k, metadata=meta,
                      training=training, optimizer=optimizer)
