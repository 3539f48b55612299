"""Development set of wide real models for the gap table (issue 10), cached as gzip JSON.

Families: embedded models (``pipecore models``), the ONNX zoo models shipped in the
``onnx`` wheel, and models imported with :func:`pipecore.io.torch.from_torch` from small
random-init (meta device) configs: encoder-decoder (T5, BART, Marian), two-tower (CLIP),
speech (Whisper, wav2vec2), mixture-of-experts (Mixtral; Switch-Transformers fails torch.export on the meta device), a U-Net and a
multi-branch CNN built in torch. ``python bench/devset.py`` builds the missing files
under ``bench/data/devset/``; :func:`load` reads one by name.
"""
from __future__ import annotations

import sys
import traceback
from pathlib import Path

DIR = Path(__file__).resolve().parent / "data" / "devset"

#: name -> family
FAMILIES = {
    "t5-small": "encoder-decoder", "densenet121": "cnn", "inception-v1": "cnn",
    "onnx-inception_v2": "cnn", "onnx-shufflenet": "cnn", "onnx-squeezenet": "cnn",
    "t5-6x6": "encoder-decoder", "bart-6x6": "encoder-decoder", "marian-6x6": "encoder-decoder",
    "clip": "two-tower", "whisper-4x4": "speech", "wav2vec2": "speech",
    "mixtral-4l": "moe", "unet": "unet-cnn", "multibranch": "multibranch-cnn",
}


def _tf(cls_name: str, cfg_name: str, cfg: dict, inputs) -> "object":
    import torch
    import transformers

    from pipecore.io.torch import from_torch

    meta = torch.device("meta")
    with meta:
        model = getattr(transformers, cls_name)(getattr(transformers, cfg_name)(**cfg))
    model.eval()
    args, kwargs = inputs(torch, meta)
    return from_torch(model, args, kwargs, metadata={"source": cls_name})


def _ids(torch, meta, n=128):
    return torch.zeros((1, n), dtype=torch.long, device=meta)


def _unet():
    import torch
    from torch import nn

    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.ReLU(), nn.Conv2d(o, o, 3, padding=1),
                             nn.ReLU())

    class UNet(nn.Module):
        def __init__(self, ch=(32, 64, 128, 256, 512)):
            super().__init__()
            self.down = nn.ModuleList([block(3 if i == 0 else ch[i - 1], c) for i, c in enumerate(ch)])
            self.up = nn.ModuleList([nn.ConvTranspose2d(ch[i], ch[i - 1], 2, stride=2)
                                     for i in range(len(ch) - 1, 0, -1)])
            self.dec = nn.ModuleList([block(2 * ch[i - 1], ch[i - 1]) for i in range(len(ch) - 1, 0, -1)])
            self.out = nn.Conv2d(ch[0], 2, 1)

        def forward(self, x):
            skips = []
            for i, b in enumerate(self.down):
                x = b(x)
                if i < len(self.down) - 1:
                    skips.append(x)
                    x = nn.functional.max_pool2d(x, 2)
            for up, dec in zip(self.up, self.dec):
                x = dec(torch.cat([up(x), skips.pop()], 1))
            return self.out(x)

    from pipecore.io.torch import from_torch

    return from_torch(UNet(), (torch.zeros(1, 3, 256, 256),), metadata={"source": "unet"})


def _multibranch():
    import torch
    from torch import nn

    class Cell(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.b = nn.ModuleList([nn.Sequential(*[nn.Conv2d(c, c, kk, padding=kk // 2)
                                                    for _ in range(d)])
                                    for kk, d in ((1, 1), (3, 2), (5, 1), (3, 3))])
            self.mix = nn.Conv2d(4 * c, c, 1)

        def forward(self, x):
            return x + self.mix(torch.cat([torch.relu(b(x)) for b in self.b], 1))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 64, 3, padding=1)
            self.cells = nn.Sequential(*[Cell(64) for _ in range(8)])
            self.head = nn.Linear(64, 1000)

        def forward(self, x):
            return self.head(self.cells(self.stem(x)).mean((2, 3)))

    from pipecore.io.torch import from_torch

    return from_torch(Net(), (torch.zeros(1, 3, 112, 112),), metadata={"source": "multibranch"})


def build(name: str):
    """Import one development model (see :data:`FAMILIES`) and return its Graph."""
    import pipecore

    if name in ("t5-small", "densenet121", "inception-v1"):
        return pipecore.models.load_model(name)
    if name.startswith("onnx-"):
        from pipecore.io.onnx import from_onnx, onnx_zoo_models

        return from_onnx(onnx_zoo_models()[name[5:]])
    s2s = lambda t, m: ((), {"input_ids": _ids(t, m), "decoder_input_ids": _ids(t, m)})  # noqa
    if name == "t5-6x6":
        return _tf("T5ForConditionalGeneration", "T5Config",
                   {"num_layers": 6, "num_decoder_layers": 6, "use_cache": False}, s2s)
    if name == "bart-6x6":
        return _tf("BartForConditionalGeneration", "BartConfig", {"use_cache": False}, s2s)
    if name == "marian-6x6":
        return _tf("MarianMTModel", "MarianConfig", {"use_cache": False}, s2s)
    if name == "clip":
        return _tf("CLIPModel", "CLIPConfig", {}, lambda t, m: ((), {
            "input_ids": _ids(t, m, 77), "pixel_values": t.zeros((1, 3, 224, 224), device=m)}))
    if name == "whisper-4x4":
        return _tf("WhisperForConditionalGeneration", "WhisperConfig",
                   {"encoder_layers": 4, "decoder_layers": 4, "use_cache": False},
                   lambda t, m: ((), {"input_features": t.zeros((1, 80, 3000), device=m),
                                      "decoder_input_ids": _ids(t, m, 64)}))
    if name == "wav2vec2":
        return _tf("Wav2Vec2Model", "Wav2Vec2Config", {"num_hidden_layers": 6},
                   lambda t, m: ((t.zeros((1, 32000), device=m),), {}))
    if name == "mixtral-4l":
        return _tf("MixtralForCausalLM", "MixtralConfig",
                   {"num_hidden_layers": 4, "hidden_size": 512, "intermediate_size": 1024,
                    "num_attention_heads": 8, "num_key_value_heads": 2, "num_local_experts": 4,
                    "use_cache": False}, lambda t, m: ((_ids(t, m),), {"use_cache": False}))
    if name == "unet":
        return _unet()
    if name == "multibranch":
        return _multibranch()
    raise KeyError(name)


def path(name: str) -> Path:
    return DIR / f"{name}.json.gz"


def load(name: str):
    """The cached Graph of a development model (build it first: ``python bench/devset.py``)."""
    import pipecore

    return pipecore.load_graph(path(name))


def main(argv=None) -> int:
    import pipecore

    DIR.mkdir(parents=True, exist_ok=True)
    names = (argv if argv is not None else sys.argv[1:]) or list(FAMILIES)
    for name in names:
        if path(name).exists():
            continue
        try:
            g = build(name)
        except Exception:  # one failing importer must not stop the others
            traceback.print_exc()
            print(f"{name}: FAILED", file=sys.stderr)
            continue
        pipecore.save_graph(g, path(name))
        print(f"{name}: {g.n} nodes, {g.m} edges", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
