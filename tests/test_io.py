"""File formats: pipecore JSON round trip, the device-placement importer, malformed files."""
import json

import numpy as np
import pytest

import pipecore
from pipecore import FileFormatError, Graph
from pipecore.generators import dnn_like
from pipecore.io import load_graph, load_partition, save_graph, save_partition

from oracle import MSR_GRAPHS, msr_path, msr_reference


@pytest.mark.parametrize("name", MSR_GRAPHS)
def test_msr_graphs_import(name):
    ref = msr_reference()[name]
    g = load_graph(msr_path(name))
    assert g.n == ref["nodes"]
    assert g.metadata["k"] == ref["k"]
    assert g.metadata["mem_cap"] > 0
    raw = json.loads(msr_path(name).read_text())
    assert g.total_work == pytest.approx(sum(v["fpgaLatency"] for v in raw["nodes"]))
    assert g.m <= len(raw["edges"])
    # a valid partition can be evaluated through the public API
    order = g.contract().graph.topological_order()
    assert g.topological_order().size == g.n and order.size > 0


def test_msr_mapping_details():
    raw = json.loads(msr_path("op_bert_l-3_inference").read_text())
    g = load_graph(msr_path("op_bert_l-3_inference"))
    idx = {v["id"]: i for i, v in enumerate(raw["nodes"])}
    e = raw["edges"][0]
    assert g.comm[idx[e["sourceId"]]] == e["cost"]
    node = raw["nodes"][5]
    assert g.mem[idx[node["id"]]] == node["size"]
    # nodes without colorClass are ungrouped, nodes sharing one are grouped
    no_color = [i for i, v in enumerate(raw["nodes"]) if "colorClass" not in v]
    assert all(g.group[i] == -1 for i in no_color)


def test_graph_round_trip(tmp_path):
    g = dnn_like(4, seed=1)
    g.metadata["k"] = 3
    for name in ("g.json", "g.json.gz"):
        save_graph(g, tmp_path / name)
        h = load_graph(tmp_path / name)
        assert h.names == g.names and np.array_equal(h.src, g.src) and np.array_equal(h.dst, g.dst)
        assert np.array_equal(h.work, g.work) and np.array_equal(h.comm, g.comm)
        assert h.metadata["k"] == 3


def test_partition_round_trip(tmp_path):
    g = dnn_like(3, seed=2)
    res = pipecore.solve(g, 3, method="balanced")
    save_partition(res.partition, tmp_path / "p.json")
    p = load_partition(g, tmp_path / "p.json")
    assert np.array_equal(p.stage, res.partition.stage) and p.k == 3
    (tmp_path / "q.json").write_text(json.dumps(
        {"format": "pipecore.partition", "version": 1, "stages": [g.names[:5], g.names[5:]]}))
    q = load_partition(g, tmp_path / "q.json")
    assert q.k == 2 and (q.stage[:5] == 0).all()


def _write(tmp_path, obj, name="bad.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


GOOD = {"format": "pipecore.graph", "version": 1,
        "nodes": {"name": ["a", "b"], "work": [1.0, 2.0]}, "edges": [[0, 1]]}


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("edges"), "missing field 'edges'"),
    (lambda d: d.update(version=7), "unsupported version 7"),
    (lambda d: d["nodes"].update(work=[1.0, "x"]), r"nodes.work\[1\]"),
    (lambda d: d["nodes"].update(work=[1.0, -2.0]), r"nodes.work\[1\]"),
    (lambda d: d["nodes"].update(comm=[1.0]), "nodes.comm: expected 2 entries"),
    (lambda d: d.update(edges=[[0, 1], [0]]), r"edges\[1\]"),
    (lambda d: d.update(edges=[[0, 5]]), r"edges\[0\] = \[0, 5\]"),
    (lambda d: d["nodes"].update(name=["a", "a"]), r"nodes.name\[1\]: duplicate"),
    (lambda d: d["nodes"].update(group=[0, 1.5]), r"nodes.group\[1\]"),
])
def test_malformed_pipecore_graph(tmp_path, mutate, message):
    data = json.loads(json.dumps(GOOD))
    mutate(data)
    with pytest.raises(FileFormatError, match=message):
        load_graph(_write(tmp_path, data))


def test_malformed_msr(tmp_path):
    raw = json.loads(msr_path("layer_bert24_inference").read_text())
    bad = json.loads(json.dumps(raw))
    del bad["nodes"][3]["fpgaLatency"]
    with pytest.raises(FileFormatError, match=r"nodes\[3\]: missing field 'fpgaLatency'"):
        load_graph(_write(tmp_path, bad))
    bad = json.loads(json.dumps(raw))
    bad["edges"][2]["destId"] = 10**6
    with pytest.raises(FileFormatError, match=r"edges\[2\].destId: unknown node id 1000000"):
        load_graph(_write(tmp_path, bad))
    bad = json.loads(json.dumps(raw))
    bad["nodes"][1]["size"] = -5
    with pytest.raises(FileFormatError, match=r"nodes\[1\].size"):
        load_graph(_write(tmp_path, bad))


def test_not_json_and_unknown_format(tmp_path):
    with pytest.raises(FileFormatError, match="line 1"):
        load_graph(_write(tmp_path, "{nope"))
    with pytest.raises(FileFormatError, match="unrecognised"):
        load_graph(_write(tmp_path, {"hello": 1}))
    path = tmp_path / "x.json.gz"
    path.write_bytes(b"not gzip")
    with pytest.raises(FileFormatError):
        load_graph(path)


def test_cycle_in_file_is_reported(tmp_path):
    data = json.loads(json.dumps(GOOD))
    data["edges"] = [[0, 1], [1, 0]]
    with pytest.raises(pipecore.CycleError):
        load_graph(_write(tmp_path, data))


def test_partition_file_errors(tmp_path):
    g = load_graph(_write(tmp_path, GOOD, "g.json"))
    with pytest.raises(FileFormatError, match="stage: expected 2 entries"):
        load_partition(g, _write(tmp_path, {"format": "pipecore.partition", "version": 1,
                                            "stage": [0]}))
    with pytest.raises(FileFormatError, match="outside"):
        load_partition(g, _write(tmp_path, {"format": "pipecore.partition", "version": 1,
                                            "k": 1, "stage": [0, 3]}))


def test_native_format_v2_round_trips_training_fields(tmp_path):
    g = Graph(3, [0, 0], [1, 2], [1, 2, 3], group=[0, 0, -1], backward=[False, True, True],
              act_mem=[1, 0, 2])
    path = tmp_path / "g.json"
    save_graph(g, path)
    data = json.loads(path.read_text())
    assert data["version"] == 2 and data["nodes"]["backward"] == [False, True, True]
    h = load_graph(path)
    assert h.backward.tolist() == [False, True, True] and h.act_mem.tolist() == [1.0, 0.0, 2.0]
    data["nodes"]["backward"] = [0, 1, 1]
    path.write_text(json.dumps(data))
    with pytest.raises(FileFormatError, match=r"nodes.backward\[0\]"):
        load_graph(path)


def test_native_format_version_1_is_still_read(tmp_path):
    path = tmp_path / "g1.json"
    path.write_text(json.dumps({"format": "pipecore.graph", "version": 1,
                                "nodes": {"work": [1.0, 2.0]}, "edges": [[0, 1]]}))
    assert load_graph(path).n == 2
