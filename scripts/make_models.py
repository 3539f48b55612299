#!/usr/bin/env python
"""Regenerate the embedded models in ``src/pipecore/data/models/``.

Transformers come from HuggingFace default configs exported with ``torch.export``
on the meta device (no weights, no network); CNNs come from the model-zoo
architectures shipped inside the ``onnx`` wheel. Costs use the default device
model (:data:`pipecore.io.device.DEVICES` ``["a100"]``, microseconds, bytes).
Needs the extras: ``pip install torch==2.13.0 transformers onnx``.

Usage::

    python scripts/make_models.py            # all models
    python scripts/make_models.py bert-base  # some of them
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "src", "pipecore", "data", "models")
sys.path.insert(0, os.path.join(HERE, "..", "src"))

from pipecore.io import native  # noqa: E402

#: name -> (importer, arguments, metadata defaults)
MODELS = {
    "bert-base": ("transformers", {"arch": "bert", "seq_len": 128}, {"k": 8}),
    "gpt2": ("transformers", {"arch": "gpt2", "seq_len": 128}, {"k": 8}),
    "t5-small": ("transformers", {"arch": "t5", "seq_len": 128}, {"k": 8}),
    "vit-base": ("transformers", {"arch": "vit"}, {"k": 8}),
    "llama-7b": ("transformers", {"arch": "llama", "seq_len": 128}, {"k": 8, "mem_cap": 16e9}),
    # training graphs (forward + backward, Adam state; DESIGN.md section 1b)
    "bert-base-train": ("transformers", {"arch": "bert", "seq_len": 128, "training": True},
                        {"k": 8}),
    "gpt2-train": ("transformers", {"arch": "gpt2", "seq_len": 128, "training": True},
                   {"k": 8}),
    "resnet50": ("onnx", {"zoo": "resnet50"}, {"k": 4}),
    "inception-v1": ("onnx", {"zoo": "inception_v1"}, {"k": 4}),
    "densenet121": ("onnx", {"zoo": "densenet121"}, {"k": 4}),
}


def build(name: str):
    kind, kwargs, meta = MODELS[name]
    if kind == "transformers":
        from pipecore.io.torch import from_transformers

        g = from_transformers(kwargs["arch"], seq_len=kwargs.get("seq_len", 128),
                              training=kwargs.get("training", False))
    else:
        from pipecore.io.onnx import from_onnx, onnx_zoo_models

        path = onnx_zoo_models()[kwargs["zoo"]]
        g = from_onnx(path)
        g.metadata["source"] = f"onnx wheel: backend/test/data/light/{os.path.basename(path)}"
    g.metadata.update(meta)
    g.metadata["name"] = name
    g.metadata["generated_by"] = "scripts/make_models.py"
    return g


def _round(values, digits: int = 6):
    return [float(f"{x:.{digits}g}") for x in values]


def write(name: str, graph) -> str:
    data = native.graph_to_dict(graph)
    nodes = data["nodes"]
    for key in ("work", "comm", "mem", "act_mem"):
        if key not in nodes:
            continue
        nodes[key] = _round(nodes[key])
    path = os.path.join(OUT, f"{name}.json.gz")
    with gzip.GzipFile(path, "wb", mtime=0) as fh:  # mtime=0: byte-identical on rerun
        fh.write(json.dumps(data, separators=(",", ":"), sort_keys=True).encode())
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help=f"models to build (default: all of {list(MODELS)})")
    args = ap.parse_args(argv)
    for name in args.names or list(MODELS):
        if name not in MODELS:
            ap.error(f"unknown model {name!r}")
        t0 = time.perf_counter()
        g = build(name)
        path = write(name, g)
        print(f"{name:14s} {g.n:5d} nodes {g.m:5d} edges "
              f"{g.metadata['total_flops'] / 1e9:9.2f} GFLOP  {os.path.getsize(path) / 1024:7.1f} KiB"
              f"  ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
