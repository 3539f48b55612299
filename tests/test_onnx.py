"""ONNX importer: model-zoo architectures from the onnx wheel, hand-computed FLOPs, DAG validity."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="needs the 'onnx' extra (pip install 'pipecore[onnx]')")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from pipecore import FileFormatError, Graph, load_graph, solve  # noqa: E402
from pipecore.io.device import DEVICES, DeviceModel, get_device  # noqa: E402
from pipecore.io.onnx import from_onnx, onnx_zoo_models, profile_onnx  # noqa: E402

ZOO = onnx_zoo_models()
UNIT = DeviceModel("unit", peak_flops=1e9, mem_bandwidth=1e9, link_bandwidth=1e9, time_unit=1.0)

# Expected operator counts of the real architectures (constant subgraphs folded).
ARCH = {
    # ResNet-50: 53 convs (49 in bottlenecks + 4 projections) each with BN, 16 residual sums
    "resnet50": {"Conv": 53, "BatchNormalization": 53, "Relu": 49, "Sum": 16, "Gemm": 1,
                 "MaxPool": 1, "AveragePool": 1},
    # SqueezeNet 1.0: conv1, 8 fire modules x 3 convs, conv10
    "squeezenet": {"Conv": 26, "Relu": 26, "Concat": 8, "MaxPool": 3},
    # GoogLeNet: 57 convs, 9 inception concats
    "inception_v1": {"Conv": 57, "Relu": 57, "Concat": 9, "Gemm": 1, "LRN": 2},
    # VGG-19: 16 convs + 3 fully connected
    "vgg19": {"Conv": 16, "Gemm": 3, "MaxPool": 5, "Relu": 18},
    # DenseNet-121: 120 convs in dense blocks/transitions + conv1
    "densenet121": {"Conv": 121, "BatchNormalization": 121, "Concat": 58},
}


def _require(name):
    if name not in ZOO:
        pytest.skip(f"this onnx wheel does not ship {name}")
    return ZOO[name]


@pytest.mark.parametrize("name", sorted(ARCH))
def test_zoo_architectures_import_as_valid_dags(name):
    g = from_onnx(_require(name))
    assert isinstance(g, Graph)
    counts = g.metadata["op_counts"]
    for op, n in ARCH[name].items():
        assert counts.get(op) == n, (op, counts.get(op), n)
    # every kept node is a non-constant ONNX node: no ConstantOfShape weight generators left
    assert "ConstantOfShape" not in counts and "Constant" not in counts
    assert g.n == sum(counts.values())
    order = g.topological_order()
    pos = np.empty(g.n, dtype=np.int64)
    pos[order] = np.arange(g.n)
    assert (pos[g.src] < pos[g.dst]).all()  # valid DAG
    assert (g.work > 0).sum() > g.n // 2 and (g.comm >= 0).all() and (g.mem >= 0).all()
    # one entry (the image goes into the first conv) and one exit (the classifier)
    assert (np.diff(g.pred_ptr) == 0).sum() >= 1 and (np.diff(g.succ_ptr) == 0).sum() == 1
    assert g.metadata["uncounted_ops"] == {} and g.metadata["defaulted_dims"] == []


def test_known_flops_and_parameters_of_real_networks():
    vgg = from_onnx(_require("vgg19")).metadata
    # VGG-19 has 143,667,240 fp32 parameters, each read by exactly one op, plus the
    # int64[2] shape constant of its Reshape (16 bytes)
    assert vgg["total_param_bytes"] == 4 * 143_667_240 + 16
    # 19.6 GMACs for the convs + FCs = ~39.3 GFLOPs (+ bias/ReLU/pool elementwise)
    assert vgg["total_flops"] == pytest.approx(39.3e9, rel=0.01)
    res = from_onnx(_require("resnet50")).metadata
    assert res["total_flops"] == pytest.approx(2 * 4.1e9, rel=0.02)   # 4.1 GMACs
    assert res["total_param_bytes"] == pytest.approx(4 * 25.6e6, rel=0.01)


def _conv_model():
    """X[1,3,32,32] -> Conv(8,3x3,pad 1,bias) -> Relu -> MaxPool 2x2 -> Flatten -> Gemm(10)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.random((8, 3, 3, 3), dtype=np.float32), "W"),
        numpy_helper.from_array(rng.random(8, dtype=np.float32), "B"),
        numpy_helper.from_array(rng.random((10, 2048), dtype=np.float32), "FW"),
        numpy_helper.from_array(rng.random(10, dtype=np.float32), "FB"),
    ]
    nodes = [
        helper.make_node("Conv", ["X", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "FW", "FB"], ["Y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "convnet",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_conv_model_flops_by_hand():
    table, info = profile_onnx(_conv_model())
    flops = dict(zip(table.names, table.flops))
    conv = 2 * 8 * 32 * 32 * 3 * 3 * 3 + 8 * 32 * 32      # 2*MACs + bias
    assert flops == {"conv": conv, "relu": 8 * 32 * 32, "pool": 8 * 16 * 16 * 4,
                     "flatten": 0.0, "fc": 2 * 2048 * 10 + 10}
    assert table.total_flops == 450560 + 8192 + 8192 + 40970 == 507914
    params = dict(zip(table.names, table.param_bytes))
    assert params == {"conv": 4 * (8 * 27 + 8), "relu": 0, "pool": 0, "flatten": 0,
                      "fc": 4 * (10 * 2048 + 10)}
    assert table.edges == [(0, 1), (1, 2), (2, 3), (3, 4)]
    # device model: roofline work, bytes / link for comm, weights for mem
    g = from_onnx(_conv_model(), device=UNIT)
    accessed = 4 * (3 * 1024 + 8 * 27 + 8 + 8 * 1024)
    assert g.work[0] == pytest.approx(max(conv / 1e9, accessed / 1e9))
    assert g.comm[0] == pytest.approx(4 * 8 * 1024 / 1e9)
    assert g.work[3] == 0.0 and g.comm[4] == pytest.approx(40 / 1e9)  # flatten is a view
    assert g.mem[4] == 4 * (10 * 2048 + 10)
    assert g.names == ["conv", "relu", "pool", "flatten", "fc"]


def _matmul_model(batch="batch"):
    """A[b,4,16,32] @ W[32,64] + bias -> Softmax; q,k Einsum; a constant-folded transpose."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.random((64, 32), dtype=np.float32), "Wt"),
             numpy_helper.from_array(rng.random(64, dtype=np.float32), "bias")]
    nodes = [
        helper.make_node("Transpose", ["Wt"], ["W"], name="wT", perm=[1, 0]),   # constant
        helper.make_node("MatMul", ["A", "W"], ["mm"], name="mm"),
        helper.make_node("Add", ["mm", "bias"], ["ad"], name="add"),
        helper.make_node("Softmax", ["ad"], ["sm"], name="softmax", axis=-1),
        helper.make_node("Einsum", ["sm", "sm"], ["Y"], name="einsum",
                         equation="bhqd,bhkd->bhqk"),
    ]
    graph = helper.make_graph(
        nodes, "mm", [helper.make_tensor_value_info("A", TensorProto.FLOAT, [batch, 4, 16, 32])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_matmul_model_flops_by_hand_and_symbolic_dims():
    table, info = profile_onnx(_matmul_model())
    assert table.names == ["mm", "add", "softmax", "einsum"]          # Transpose folded
    b, h, q, d, n = 1, 4, 16, 32, 64
    expect = {"mm": 2 * b * h * q * d * n, "add": b * h * q * n, "softmax": 3 * b * h * q * n,
              "einsum": 2 * b * h * q * q * n}
    assert dict(zip(table.names, table.flops)) == expect
    assert info["defaulted_dims"] == ["batch"]
    assert table.param_bytes[0] == 4 * 64 * 32 and table.param_bytes[1] == 4 * 64
    t4, info4 = profile_onnx(_matmul_model(), dims={"batch": 4})
    assert t4.total_flops == 4 * table.total_flops and info4["defaulted_dims"] == []
    t3, _ = profile_onnx(_matmul_model(), input_shapes={"A": [3, 4, 16, 32]})
    assert t3.total_flops == 3 * table.total_flops
    with pytest.raises(ValueError, match="not a model input"):
        profile_onnx(_matmul_model(), input_shapes={"nope": [1]})


def test_attention_op_flops():
    q = helper.make_tensor_value_info("Q", TensorProto.FLOAT, [2, 4, 8, 16])
    k = helper.make_tensor_value_info("K", TensorProto.FLOAT, [2, 4, 10, 16])
    v = helper.make_tensor_value_info("V", TensorProto.FLOAT, [2, 4, 10, 32])
    node = helper.make_node("Attention", ["Q", "K", "V"], ["Y"], name="attn")
    graph = helper.make_graph([node], "attn", [q, k, v],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    table, _ = profile_onnx(model)
    scores = 2 * 4 * 8 * 10
    assert table.flops == [2 * scores * 16 + 2 * scores * 32 + 3 * scores]


def test_branches_and_shared_inputs_make_the_right_edges():
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 8])
    nodes = [helper.make_node("Relu", ["X"], ["a"], name="a"),
             helper.make_node("Sigmoid", ["a"], ["b"], name="b"),
             helper.make_node("Tanh", ["a"], ["c"], name="c"),
             helper.make_node("Add", ["b", "c"], ["d"], name="d"),
             helper.make_node("Mul", ["d", "a"], ["Y"], name="e")]
    graph = helper.make_graph(nodes, "diamond", [x],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    g = from_onnx(helper.make_model(graph))
    pairs = {(g.names[u], g.names[v]) for u, v in zip(g.src.tolist(), g.dst.tolist())}
    assert pairs == {("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "e"), ("a", "e")}


def test_load_graph_reads_onnx_and_solve_runs(tmp_path):
    path = tmp_path / "conv.onnx"
    onnx.save(_conv_model(), str(path))
    g = load_graph(path, device="cpu")
    assert g.n == 5 and g.metadata["device"]["name"] == "cpu"
    assert g.metadata["source"] == str(path)
    res = solve(g, 2, method="balanced")
    assert res.partition is not None and res.partition.is_valid()


def test_bad_files_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf \x00\xff" * 10)
    with pytest.raises(FileFormatError, match="bad.onnx"):
        from_onnx(bad)
    with pytest.raises(FileNotFoundError):
        load_graph(tmp_path / "missing.onnx")


def test_device_model_presets_and_validation():
    a100 = get_device()
    assert a100 is DEVICES["a100"] and get_device("h100").peak_flops > a100.peak_flops
    d = get_device({"preset": "v100", "link_bandwidth": 25e9})
    assert d.peak_flops == DEVICES["v100"].peak_flops and d.link_bandwidth == 25e9
    # roofline: compute-bound vs memory-bound, times in microseconds by default
    assert a100.work(312e12, 0.0) == pytest.approx(1e6)
    assert a100.work(0.0, 1.555e12) == pytest.approx(1e6)
    assert a100.comm([0.0, 300e9]).tolist() == pytest.approx([0.0, 1e6])
    lat = a100.with_(link_latency=2e-6)
    assert lat.comm([0.0, 300e3]).tolist() == pytest.approx([0.0, 3.0])
    for bad in ({"peak_flops": 0}, {"mem_bandwidth": -1.0}, {"link_bandwidth": float("nan")}):
        with pytest.raises(ValueError):
            DeviceModel(**bad)
    with pytest.raises(ValueError, match="unknown device"):
        get_device("tpu-v9")


def test_slower_link_raises_comm_not_work():
    fast = from_onnx(_require("squeezenet"))
    slow = from_onnx(_require("squeezenet"), device=DEVICES["a100"].with_(link_bandwidth=30e9))
    assert np.allclose(slow.work, fast.work)
    assert np.allclose(slow.comm, 10 * fast.comm)
