"""Reports: summary tables, PNG plots and a self-contained HTML page from sweep results."""
import base64
import re

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="needs the 'report' extra (matplotlib)")

from pipecore import load_model, solve  # noqa: E402
from pipecore.cli import main  # noqa: E402
from pipecore.report import (format_table, make_report, plot_partition,  # noqa: E402
                             summarize)
from pipecore.sweep import expand_grid, run_sweep  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _rows():
    """Two graphs, three k, two methods, two seeds; one error row."""
    rows = []
    for g, base in (("g1", 100.0), ("g2", 40.0)):
        for k in (2, 4, 8):
            for m, extra in (("fast", 0.2), ("good", 0.0)):
                for seed in (0, 1):
                    ub = base / k * (1 + extra + 0.01 * seed)
                    work = [ub * 0.8] * k
                    rows.append({"key": f"{g}|{k}|{m}|{seed}", "graph": g, "k": k, "method": m,
                                 "seed": seed, "quality": "feasible", "upper_bound": ub,
                                 "lower_bound": base / k * (0.9 + 0.01 * seed),
                                 "wall_time": 0.5, "stage_work": work,
                                 "stage_recv": [ub * 0.1] * k, "stage_send": [ub * 0.1] * k})
    rows.append({"key": "g1|2|broken|0", "graph": "g1", "k": 2, "method": "broken", "seed": 0,
                 "error": "boom", "upper_bound": None,
                 "lower_bound": None, "wall_time": 0.0})
    return rows


def _png_size(path):
    data = open(path, "rb").read()
    assert data[:8] == PNG
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return w, h


def test_summary_takes_best_over_seeds():
    s = summarize(_rows())
    assert len(s) == 2 * 3 * 2 + 1
    line = next(x for x in s if x["graph"] == "g1" and x["k"] == 4 and x["method"] == "good")
    assert line["runs"] == 2
    assert line["upper_bound"] == pytest.approx(25.0)          # min over seeds
    assert line["lower_bound"] == pytest.approx(25.0 * 0.91)   # max over seeds
    assert line["gap"] == pytest.approx(1 / 0.91 - 1)
    broken = next(x for x in s if x["method"] == "broken")
    assert broken["upper_bound"] is None and broken["errors"] == 1
    text = format_table(s)
    assert "g1" in text and "25" in text and "9.89%" in text and "-" in text


def test_make_report_writes_pngs_and_self_contained_html(tmp_path):
    files = make_report(_rows(), tmp_path / "rep", graph="g2", k=4)
    assert [p.rsplit("/", 1)[-1] for p in files.pngs] == ["bounds.png", "stages.png"]
    for p in files.pngs:
        w, h = _png_size(p)
        assert w > 300 and h > 200
    assert files.stage_instance == "g2|4|good|0"                # best UB for (g2, 4)
    page = open(files.html, encoding="utf-8").read()
    imgs = re.findall(r'src="([^"]+)"', page)
    assert len(imgs) == 2 and all(s.startswith("data:image/png;base64,") for s in imgs)
    for s in imgs:                                               # the inline images decode
        assert base64.b64decode(s.split(",", 1)[1])[:8] == PNG
    assert "http://" not in page and "https://" not in page     # nothing external
    assert "<table>" in page and "g2" in page and "1 errors" in page


def test_stage_plot_shows_the_right_bars(tmp_path):
    import matplotlib.image as mpimg

    g = load_model("resnet50")
    res = solve(g, 4, method="balanced")
    path = plot_partition(res.partition, tmp_path / "p.png", title="resnet50 k=4",
                          lower_bound=res.lower_bound)
    img = mpimg.imread(path)
    assert img.shape[0] > 200 and img.shape[1] > 300
    # the three stacked colours (compute, receive, send) are all drawn
    rgb = (img[..., :3] * 255).round().astype(int).reshape(-1, 3)
    for colour in ((0x4C, 0x72, 0xB0), (0xDD, 0x84, 0x52), (0xC4, 0x4E, 0x52)):
        assert (np.abs(rgb - colour).sum(axis=1) < 6).sum() > 50, colour


def test_cli_report_on_a_real_sweep(tmp_path, capsys):
    out = tmp_path / "res.jsonl"
    run_sweep(expand_grid(["resnet50", "gen:regal_like:n=60,seed=1"], [2, 4], ["balanced"]),
              out, executor="serial")
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "resnet50" in text and "report.html" in text
    folder = tmp_path / "res-report"
    assert (folder / "report.html").exists() and (folder / "bounds.png").exists()
    assert _png_size(folder / "stages.png")[0] > 300
    assert main(["report", str(out), "-o", str(tmp_path / "x"), "--instance",
                 "resnet50|k=2|balanced|seed=0|tl=none|cap=graph"]) == 0
    assert main(["report", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such results file" in capsys.readouterr().err
