"""Reports on sweep results: tables, matplotlib plots (PNG) and one self-contained HTML page.

:func:`make_report` reads a results file written by :mod:`pipecore.sweep`
(JSON lines or Parquet) and writes into an output directory:

* ``bounds.png`` -- upper bound (solid) and lower bound (dashed) against k, one
  colour per method, one panel per graph (best over seeds: lowest UB, highest LB);
* ``stages.png`` -- per-stage cost bars of one partition (by default the best
  one found for the largest k of the first graph), compute, received and sent
  communication stacked, with the bottleneck and the certified lower bound;
* ``report.html`` -- the summary table and both plots inlined as base64 PNGs
  (one file to mail or attach to an issue);
* the summary table is also returned as text (and printed by the CLI).

Needs the ``report`` extra (matplotlib); the Agg backend is used, no display.
"""
from __future__ import annotations

import base64
import html
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

__all__ = ["make_report", "summarize", "format_table", "plot_bounds", "plot_stages",
           "plot_partition", "ReportFiles"]


def _plt():
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("pipecore report needs matplotlib: pip install 'pipecore[report]'"
                          ) from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


# ---------------------------------------------------------------------- tables
def summarize(rows: Sequence[dict]) -> list[dict[str, Any]]:
    """One line per (graph, k, method): best UB and LB over seeds, gap, status, mean time."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r.get("graph"), r.get("k"), r.get("method")), []).append(r)
    out = []
    for (g, k, m), rs in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1] or 0,
                                                                 str(kv[0][2]))):
        ubs = [r["upper_bound"] for r in rs if _finite(r.get("upper_bound"))]
        lbs = [r["lower_bound"] for r in rs if _finite(r.get("lower_bound"))]
        ub = min(ubs) if ubs else None
        lb = max(lbs) if lbs else None
        gap = (ub / lb - 1.0 if ub > lb else 0.0) if ub is not None and lb else None
        statuses = sorted({"error" if r.get("error") else str(r.get("quality")) for r in rs})
        times = [r["wall_time"] for r in rs if _finite(r.get("wall_time"))]
        out.append({"graph": g, "k": k, "method": m, "runs": len(rs), "upper_bound": ub,
                    "lower_bound": lb, "gap": gap, "quality": ",".join(statuses),
                    "time": float(np.mean(times)) if times else None,
                    "errors": sum(1 for r in rs if r.get("error"))})
    return out


def _cell(v, key: str) -> str:
    if v is None:
        return "-"
    if key == "gap":
        return f"{100 * v:.2f}%"
    if isinstance(v, float):
        return f"{v:.4g}" if key == "time" else f"{v:.6g}"
    return str(v)


_COLUMNS = ("graph", "k", "method", "runs", "upper_bound", "lower_bound", "gap", "quality", "time")


def format_table(summary: Sequence[dict], columns: Sequence[str] = _COLUMNS) -> str:
    """Plain-text table of :func:`summarize` output."""
    rows = [list(columns)] + [[_cell(s.get(c), c) for c in columns] for s in summary]
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) if i < 3 or i == 7 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _html_table(summary: Sequence[dict], columns: Sequence[str] = _COLUMNS) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(_cell(s.get(c), c))}</td>"
                                      for c in columns) + "</tr>" for s in summary)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


# ---------------------------------------------------------------------- plots
def plot_bounds(summary: Sequence[dict], path: str | os.PathLike, *, max_graphs: int = 6) -> str:
    """UB (solid) and LB (dashed) against k, per method, one panel per graph."""
    plt = _plt()
    graphs = list(dict.fromkeys(s["graph"] for s in summary))[:max_graphs]
    if not graphs:
        raise ValueError("no results to plot")
    methods = list(dict.fromkeys(s["method"] for s in summary))
    colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(methods)}
    ncol = min(len(graphs), 3)
    nrow = math.ceil(len(graphs) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.6 * nrow), squeeze=False)
    for ax, g in zip(axes.flat, graphs):
        ks_all = set()
        for m in methods:
            pts = sorted((s["k"], s["upper_bound"], s["lower_bound"]) for s in summary
                         if s["graph"] == g and s["method"] == m)
            if not pts:
                continue
            ks = [p[0] for p in pts]
            ks_all.update(ks)
            ub = [p[1] if _finite(p[1]) else np.nan for p in pts]
            lb = [p[2] if _finite(p[2]) and p[2] > 0 else np.nan for p in pts]
            if np.all(np.isnan(ub)) and np.all(np.isnan(lb)):
                continue  # only failed runs: nothing to draw
            # earlier methods drawn wider, so methods that agree stay visible on top of each other
            lw = 1.2 + 2.8 * (len(methods) - 1 - methods.index(m)) / max(len(methods) - 1, 1)
            ax.plot(ks, ub, "o-", color=colors[m], lw=lw, ms=3 + lw, label=f"{m} UB")
            if not np.all(np.isnan(lb)):
                ax.plot(ks, lb, "v--", color=colors[m], lw=lw, ms=3 + lw, alpha=0.8,
                        label=f"{m} LB")
        ax.set_title(str(g), fontsize=10)
        ax.set_xlabel("k (stages)")
        ax.set_ylabel("bottleneck stage cost")
        if ks_all and max(ks_all) / max(min(ks_all), 1) >= 4:
            ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(ks_all))
        ax.set_xticklabels([str(k) for k in sorted(ks_all)])
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(graphs):]:
        ax.axis("off")
    legend: dict = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(lab, h)
    labels, handles = list(legend), list(legend.values())
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8,
               frameon=False)
    fig.suptitle("Upper bound (solid) and certified lower bound (dashed) by k", fontsize=11)
    fig.tight_layout(rect=(0, 0.06 + 0.02 * (len(labels) > 6), 1, 0.96))
    path = os.fspath(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_stages(work: Sequence[float], recv: Sequence[float], send: Sequence[float],
                path: str | os.PathLike, *, title: str = "", lower_bound: float | None = None,
                unit: str = "") -> str:
    """Stacked per-stage bars: compute, received and sent communication."""
    plt = _plt()
    w, r, s = (np.asarray(x, dtype=float) for x in (work, recv, send))
    k = w.size
    x = np.arange(k)
    fig, ax = plt.subplots(figsize=(max(6.5, 0.55 * k + 2.5), 4.2))
    ax.bar(x, w, color="#4C72B0", label="compute")
    ax.bar(x, r, bottom=w, color="#DD8452", label="receive")
    ax.bar(x, s, bottom=w + r, color="#C44E52", label="send")
    total = w + r + s
    bott = float(total.max()) if k else 0.0
    ax.axhline(bott, color="black", lw=1, ls="-", label=f"bottleneck {bott:.4g}")
    if lower_bound is not None and _finite(lower_bound) and lower_bound > 0:
        ax.axhline(lower_bound, color="green", lw=1, ls="--",
                   label=f"lower bound {lower_bound:.4g}")
    top = max(bott, float(lower_bound) if lower_bound is not None and _finite(lower_bound)
              else 0.0)
    if top > 0:
        ax.set_ylim(0, 1.1 * top)  # headroom so the bottleneck line stays visible
    ax.set_xticks(x)
    ax.set_xticklabels([str(i) for i in x])
    ax.set_xlabel("stage")
    ax.set_ylabel(f"stage cost{f' ({unit})' if unit else ''}")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=5,
              frameon=False)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    path = os.fspath(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_partition(partition, path: str | os.PathLike, *, title: str = "",
                   lower_bound: float | None = None) -> str:
    """:func:`plot_stages` for a :class:`~pipecore.Partition` object."""
    b = partition.breakdown()
    unit = "us" if partition.graph.metadata.get("time_unit") == 1e-6 else ""
    return plot_stages(b.work, b.recv, b.send, path, title=title, lower_bound=lower_bound,
                       unit=unit)


# ---------------------------------------------------------------------- the report
@dataclass
class ReportFiles:
    html: str
    pngs: list[str] = field(default_factory=list)
    table: str = ""
    stage_instance: str | None = None


def _pick_instance(rows: Sequence[dict], graph=None, k=None, key=None):
    cands = [r for r in rows if r.get("stage_work") is not None and _finite(r.get("upper_bound"))]
    if key is not None:
        hit = [r for r in cands if r.get("key") == key]
        if not hit:
            raise ValueError(f"no finished instance with key {key!r} and a partition")
        return hit[0]
    if graph is not None and not any(r.get("graph") == graph for r in rows):
        names = sorted({str(r.get("graph")) for r in rows})
        raise ValueError(f"no results for graph {graph!r}; the results hold {', '.join(names)}")
    if graph is None and cands:
        graph = min(str(r.get("graph")) for r in cands)  # first graph of the summary table
    cands = [r for r in cands if r.get("graph") == graph]
    if k is not None and not any(r.get("k") == k for r in cands):
        ks = sorted({int(r["k"]) for r in cands if r.get("k") is not None})
        raise ValueError(f"no finished result for graph {graph!r} with k={k}; "
                         f"k values with a partition: {ks or 'none'}")
    if k is None and cands:
        k = max(r["k"] for r in cands)
    cands = [r for r in cands if r.get("k") == k]
    if not cands:
        return None
    return min(cands, key=lambda r: (r["upper_bound"], str(r.get("key"))))


def _b64(path: str) -> str:
    with open(path, "rb") as fh:
        return base64.b64encode(fh.read()).decode("ascii")


def make_report(results, outdir: str | os.PathLike, *, graph: str | None = None,
                k: int | None = None, instance: str | None = None,
                title: str = "pipecore sweep report") -> ReportFiles:
    """Write ``bounds.png``, ``stages.png`` and ``report.html`` for a results file or rows."""
    from .sweep import read_results

    if isinstance(results, (str, os.PathLike)):
        if not os.path.exists(results):
            raise FileNotFoundError(f"{os.fspath(results)}: no such results file")
        rows = read_results(results)
    else:
        rows = list(results)
    if not rows:
        raise ValueError(f"{os.fspath(results)}: no result rows (empty, or not a results file "
                         f"written by `pipecore sweep`)" if isinstance(results, (str, os.PathLike))
                         else "no results given")
    outdir = os.fspath(outdir)
    os.makedirs(outdir, exist_ok=True)
    summary = summarize(rows)
    table = format_table(summary)
    files = ReportFiles(html=os.path.join(outdir, "report.html"), table=table)
    files.pngs.append(plot_bounds(summary, os.path.join(outdir, "bounds.png")))
    best = _pick_instance(rows, graph, k, instance)
    stage_html = "<p>No finished instance with a partition to show.</p>"
    if best is not None:
        files.stage_instance = best.get("key")
        lb = max((r["lower_bound"] for r in rows if r.get("graph") == best.get("graph")
                  and r.get("k") == best.get("k") and _finite(r.get("lower_bound"))),
                 default=None)
        ttl = (f"{best.get('graph')}, k={best.get('k')}: best partition "
               f"({best.get('upper_bound_source') or best.get('method')})")
        unit = "us" if best.get("time_unit") == 1e-6 else ""
        p = plot_stages(best["stage_work"], best["stage_recv"], best["stage_send"],
                        os.path.join(outdir, "stages.png"), title=ttl, lower_bound=lb, unit=unit)
        files.pngs.append(p)
        stage_html = (f"<p>Instance <code>{html.escape(str(best.get('key')))}</code>: "
                      f"bottleneck {best['upper_bound']:.6g}"
                      + (f", best certified lower bound {lb:.6g}" if lb else "") + "</p>\n"
                      f'<img alt="per-stage costs" src="data:image/png;base64,{_b64(p)}">')
    n_err = sum(1 for r in rows if r.get("error"))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th {{ background: #f0f0f0; }} td:nth-child(-n+3) {{ text-align: left; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{len(rows)} results ({n_err} errors), {len(summary)} (graph, k, method) combinations;
generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')}. Bounds are the best over seeds
(lowest upper bound, highest lower bound); gap = UB / LB - 1.</p>
<h2>Bounds by k and method</h2>
<img alt="bounds by k" src="data:image/png;base64,{_b64(files.pngs[0])}">
<h2>Per-stage costs of one partition</h2>
{stage_html}
<h2>Summary table</h2>
{_html_table(summary)}
</body></html>
"""
    with open(files.html, "w", encoding="utf-8") as fh:
        fh.write(page)
    return files
