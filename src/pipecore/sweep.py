"""Sweeps: run many (graph, k, method, seed) instances and keep every result.

An :class:`Instance` names its graph by a *reference* that any worker can
resolve on its own (:func:`resolve_graph`):

* an embedded model name, ``bert-base`` or ``model:bert-base``;
* a generator call, ``gen:regal_like:n=500,seed=3`` (any function of
  :mod:`pipecore.generators`, keyword arguments as ``key=value``);
* a graph file path (anything :func:`pipecore.load_graph` reads, on every worker).

:func:`run_sweep` runs the instances through an executor -- ``local`` (a process
pool, one solver thread per worker, the default), ``serial`` (in-process) or
``dask`` (a ``distributed`` scheduler address, or a ``Client``; start workers
with ``--nthreads 1``) -- and appends
one row per finished instance to a results file as soon as it finishes:
JSON lines (``.jsonl``/``.json``; flushed and fsynced per row) or a Parquet
dataset directory (``.parquet``; one part file per batch of rows). Rows are
keyed by :attr:`Instance.key`; rerunning the same sweep on the same file skips
every instance already recorded, so a killed sweep resumes where it stopped
(a torn last JSON line is discarded). Each instance gets its own time limit
through :func:`pipecore.solve` (cooperative: methods stop at the deadline and
return their best partition); a failure is recorded as a row whose ``error`` field
says what went wrong, instead of stopping the sweep.
"""
from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

__all__ = ["Instance", "expand_grid", "resolve_graph", "run_instance", "run_sweep",
           "load_results", "read_results", "SweepSummary", "EXECUTORS"]

EXECUTORS = ("local", "serial", "dask")
_THREAD_VARS = ("PIPECORE_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                "NUMBA_NUM_THREADS")


@dataclass(frozen=True)
class Instance:
    """One solve: a graph reference, k, a method, a seed, a time limit and a memory cap.

    ``mem_cap="graph"`` uses the graph's own ``metadata["mem_cap"]`` (if any),
    ``None`` solves without a cap, a number sets one.
    """

    graph: str
    k: int
    method: str = "auto"
    seed: int = 0
    time_limit: float | None = None
    mem_cap: float | str | None = "graph"

    @property
    def key(self) -> str:
        """Stable identity used to skip finished work on resume."""
        tl = "none" if self.time_limit is None else f"{float(self.time_limit):g}"
        cap = self.mem_cap if isinstance(self.mem_cap, str) or self.mem_cap is None \
            else f"{float(self.mem_cap):g}"
        return f"{self.graph}|k={self.k}|{self.method}|seed={self.seed}|tl={tl}|cap={cap}"


def expand_grid(graphs: Sequence[str], ks: Sequence[int], methods: Sequence[str],
                seeds: Sequence[int] = (0,), *, time_limit: float | None = None,
                mem_cap: float | str | None = "graph") -> list[Instance]:
    """Every combination of graphs x ks x methods x seeds, in that nesting order."""
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"time_limit must be > 0 seconds, got {time_limit!r}")
    return [Instance(g, int(k), m, int(s), time_limit, mem_cap)
            for g in graphs for k in ks for m in methods for s in seeds]


# ---------------------------------------------------------------------- graph references
def _generator_kwargs(ref: str, fn, argtext: str) -> dict:
    """Keyword arguments of a ``gen:NAME:key=value,...`` reference, converted to the types
    the generator's signature declares (int, float, bool), with errors naming the key."""
    import inspect

    from ._validate import as_float, as_int

    params = inspect.signature(fn).parameters
    kwargs: dict = {}
    for part in filter(None, argtext.split(",")):
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not eq:
            raise ValueError(f"{ref!r}: expected key=value, got {part!r}")
        if key not in params or params[key].kind not in (params[key].KEYWORD_ONLY,
                                                         params[key].POSITIONAL_OR_KEYWORD):
            raise ValueError(f"{ref!r}: unknown argument {key!r}; {fn.__name__} accepts "
                             f"{', '.join(p for p in params if not p.startswith('_'))}")
        default = params[key].default
        where = f"{ref!r}: {key}"
        try:
            if isinstance(default, bool) or value.lower() in ("true", "false"):
                if value.lower() not in ("true", "false"):
                    raise ValueError
                kwargs[key] = value.lower() == "true"
            elif isinstance(default, float):
                kwargs[key] = as_float(float(value), where, error=ValueError)
            else:
                kwargs[key] = as_int(float(value) if "." in value or "e" in value.lower()
                                     else int(value), where, error=ValueError)
        except ValueError as exc:
            msg = str(exc) if str(exc).startswith(where) else f"{where} = {value!r} is not valid"
            raise ValueError(msg) from None
    return kwargs


@functools.lru_cache(maxsize=32)
def resolve_graph(ref: str):
    """Load the graph a reference names (cached per process)."""
    from .models import list_models, load_model

    if ref.startswith("model:"):
        return load_model(ref[len("model:"):])
    if ref.startswith("gen:"):
        from . import generators

        name, _, argtext = ref[len("gen:"):].partition(":")
        fn = getattr(generators, name, None)
        if fn is None or name.startswith("_") or not callable(fn):
            choices = [n for n in generators.__all__ if callable(getattr(generators, n))]
            raise ValueError(f"{ref!r}: unknown generator {name!r}; "
                             f"choose from {', '.join(choices)}")
        kwargs = _generator_kwargs(ref, fn, argtext)
        try:
            return fn(**kwargs)
        except TypeError as exc:
            raise ValueError(f"{ref!r}: {exc}") from None
    if ref in list_models():
        return load_model(ref)
    if os.path.exists(ref):
        from .io import load_graph

        return load_graph(ref)
    raise ValueError(f"graph reference {ref!r} is not an embedded model, a gen:... "
                     f"generator call or an existing file")


# ---------------------------------------------------------------------- one instance
def _num(x):
    return float(x) if x is not None and math.isfinite(x) else None


def run_instance(inst: Instance) -> dict[str, Any]:
    """Solve one instance and return its result row (errors become a row, not an exception)."""
    from . import solve

    row: dict[str, Any] = {"key": inst.key, **asdict(inst)}
    t0 = time.perf_counter()
    try:
        graph = resolve_graph(inst.graph)
        cap = graph.metadata.get("mem_cap") if inst.mem_cap == "graph" else inst.mem_cap
        row.update(n=graph.n, m=graph.m, mem_cap_used=_num(cap),
                   time_unit=graph.metadata.get("time_unit"))
        res = solve(graph, inst.k, method=inst.method, mem_cap=cap,  # type: ignore[arg-type]
                    time_limit=inst.time_limit, seed=inst.seed)
        row.update(quality=res.quality.value, termination=res.termination.value,
                   upper_bound=_num(res.upper_bound), lower_bound=_num(res.lower_bound),
                   upper_bound_source=res.upper_bound_source,
                   lower_bound_source=res.lower_bound_source, gap=_num(res.gap),
                   solve_time=res.wall_time, phases=[p.to_dict() for p in res.phases],
                   message=res.message, error=None)
        part = res.partition
        if part is not None:
            b = part.breakdown()
            row.update(stage=part.stage.tolist(), stage_work=b.dense("work").tolist(),
                       stage_recv=b.dense("recv").tolist(), stage_send=b.dense("send").tolist(),
                       stage_mem=b.dense("mem").tolist())
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # record and carry on: one bad instance must not stop a sweep
        row.update(error=f"{type(exc).__name__}: {exc}")
    row["wall_time"] = time.perf_counter() - t0
    row["host"] = socket.gethostname()
    row["finished_at"] = time.time()
    return row


# ---------------------------------------------------------------------- result files
def _is_parquet(path: str) -> bool:
    return path.endswith(".parquet")


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError as exc:
        raise ImportError("Parquet results need pyarrow: pip install pyarrow "
                          "(or write JSON lines: -o results.jsonl)") from exc
    return pyarrow


def load_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All rows of a results file (JSON lines or Parquet dataset); [] if it does not exist.

    A malformed JSON line (a sweep killed mid-write) is skipped.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        return []
    if _is_parquet(path):
        pq = _pyarrow().parquet

        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if f.endswith(".parquet")) if os.path.isdir(path) else [path]
        rows: list[dict] = []
        for f in files:
            try:
                rows.extend(pq.read_table(f).to_pylist())
            except Exception:  # a part file torn by a kill: its rows will be redone
                continue
        return rows
    rows = []
    with open(path, "r", encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "key" in row:
                rows.append(row)
    return rows


class _JsonlWriter:
    """Appends rows; first cuts a torn last line left by a killed run."""

    def __init__(self, path: str):
        self.path = path
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path, "rb+") as fh:
                data = fh.read()
                if not data.endswith(b"\n"):
                    fh.truncate(data.rfind(b"\n") + 1)
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        self.fh = open(path, "a", encoding="utf-8")

    def write(self, row: dict) -> None:
        self.fh.write(json.dumps(row, separators=(",", ":"), allow_nan=False) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


class _ParquetWriter:
    """Buffers rows and writes one part file per ``batch`` rows (and on close)."""

    def __init__(self, path: str, batch: int = 16):
        _pyarrow()  # fail before any work is done
        self.path, self.batch = path, batch
        self.buf: list[dict[str, Any]] = []
        os.makedirs(path, exist_ok=True)

    def write(self, row: dict) -> None:
        self.buf.append(row)
        if len(self.buf) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.buf:
            return
        pa = _pyarrow()
        pq = pa.parquet

        # JSON-encode the ragged / optional columns so every part has one schema
        rows = [{k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in r.items()}
                for r in self.buf]
        cols = sorted({k for r in rows for k in r})
        table = pa.Table.from_pylist([{c: r.get(c) for c in cols} for r in rows])
        name = f"part-{time.time_ns()}-{os.getpid()}.parquet"
        tmp = os.path.join(self.path, "." + name)
        pq.write_table(table, tmp)
        os.replace(tmp, os.path.join(self.path, name))  # atomic: never a torn part
        self.buf = []

    def close(self) -> None:
        self.flush()


def _decode_parquet_row(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, str) and v[:1] in "[{":
            try:
                v = json.loads(v)
            except json.JSONDecodeError:
                pass
        out[k] = v
    return out


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a results file with Parquet's JSON-encoded columns decoded."""
    rows = load_results(path)
    return [_decode_parquet_row(r) for r in rows] if _is_parquet(os.fspath(path)) else rows


# ---------------------------------------------------------------------- executors
@contextlib.contextmanager
def _single_thread_env():
    """Make worker processes started inside this block use one solver / BLAS / OpenMP
    thread each (``PIPECORE_THREADS`` caps the lower-bound step's MIP threads)."""
    old = {v: os.environ.get(v) for v in _THREAD_VARS}
    os.environ.update({v: "1" for v in _THREAD_VARS})
    try:
        yield
    finally:
        for v, val in old.items():
            if val is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = val


def _iter_serial(todo: Sequence[Instance], **_) -> Iterator[dict]:
    for inst in todo:
        yield run_instance(inst)


def _start_method() -> str:
    """``spawn`` (clean single-threaded workers) unless __main__ cannot be re-imported
    (``python -`` / ``-c`` / a REPL), where only ``fork`` works."""
    import sys

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None or os.path.exists(path):
        return "spawn"
    return "fork"


def _iter_local(todo: Sequence[Instance], *, jobs: int | None = None, **_) -> Iterator[dict]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo)))
    with _single_thread_env():
        # spawn: workers start clean and read the single-thread environment at import
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context(_start_method()))
        futures = [pool.submit(run_instance, inst) for inst in todo]
    try:
        for fut in as_completed(futures):
            yield fut.result()
    finally:
        for fut in futures:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _run_on_worker(inst: Instance) -> dict[str, Any]:
    """run_instance on a Dask worker, capped to one solver thread (pipecore's own setting)."""
    os.environ.setdefault("PIPECORE_THREADS", "1")
    return run_instance(inst)


def _iter_dask(todo: Sequence[Instance], *, scheduler: str | None = None, client=None,
               **_) -> Iterator[dict]:
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise ImportError("the dask executor needs dask.distributed: "
                          "pip install 'pipecore[dask]'") from exc
    own = client is None
    if own:
        if not scheduler:
            raise ValueError("the dask executor needs --scheduler ADDRESS (e.g. tcp://host:8786)")
        client = Client(scheduler)
    try:
        futures = [client.submit(_run_on_worker, inst, pure=False) for inst in todo]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            client.cancel(futures)
    finally:
        if own:
            client.close()


_ITERS: dict[str, Callable[..., Iterator[dict]]] = {
    "serial": _iter_serial, "local": _iter_local, "dask": _iter_dask}


@dataclass
class SweepSummary:
    """What a :func:`run_sweep` call did."""

    total: int = 0
    skipped: int = 0
    ran: int = 0
    errors: int = 0
    wall_time: float = 0.0
    output: str = ""
    error_messages: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{self.total} instances: {self.skipped} already done, {self.ran} run "
                f"({self.errors} errors) in {self.wall_time:.1f} s -> {self.output}")


def run_sweep(instances: Iterable[Instance], output: str | os.PathLike, *,
              executor: str = "local", jobs: int | None = None, scheduler: str | None = None,
              client=None, retry_errors: bool = False,
              progress: Callable[[int, int, dict], None] | None = None) -> SweepSummary:
    """Run every instance not yet in ``output`` and append its row there as it finishes.

    Parameters
    ----------
    instances : iterable of Instance
        Duplicates (same key) run once.
    output : path
        ``*.jsonl`` / ``*.json`` (JSON lines) or ``*.parquet`` (dataset directory).
    executor : {"local", "serial", "dask"}
        ``local``: a process pool of ``jobs`` workers (default: all cores), one
        solver thread each. ``dask``: ``client`` or a ``scheduler`` address.
    retry_errors : bool
        Rerun instances whose recorded row has an ``error``.
    progress : callable, optional
        ``progress(done, todo, row)`` after each finished instance.
    """
    if executor not in _ITERS:
        raise ValueError(f"unknown executor {executor!r}; choose from {EXECUTORS}")
    output = os.fspath(output)
    t0 = time.perf_counter()
    unique: dict[str, Instance] = {}
    for inst in instances:
        if not isinstance(inst, Instance):
            raise TypeError(f"expected Instance, got {type(inst).__name__}")
        unique.setdefault(inst.key, inst)
    done = {r["key"]: r for r in load_results(output)}
    if retry_errors:
        done = {k: r for k, r in done.items() if not r.get("error")}
    todo = [inst for key, inst in unique.items() if key not in done]
    summary = SweepSummary(total=len(unique), skipped=len(unique) - len(todo), output=output)
    if todo:
        writer = _ParquetWriter(output) if _is_parquet(output) else _JsonlWriter(output)
        try:
            for row in _ITERS[executor](todo, jobs=jobs, scheduler=scheduler, client=client):
                writer.write(row)
                summary.ran += 1
                if row.get("error"):
                    summary.errors += 1
                    summary.error_messages.append(f"{row['key']}: {row.get('error')}")
                if progress is not None:
                    progress(summary.ran, len(todo), row)
        finally:
            writer.close()
    summary.wall_time = time.perf_counter() - t0
    return summary
