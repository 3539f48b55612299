"""The ``pipecore`` command line.

One module per group of subcommands (:mod:`.graphs`: info, evaluate, solve, models,
export; :mod:`.studies`: sweep, report; :mod:`.split`: runnable PyTorch stages;
:mod:`.mcm`: multi-chip modules); each
registers its subparsers in :func:`build_parser`, and every solve goes through
:func:`pipecore.solve`, the single dispatch point, so new methods and options
appear here without changes.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Sequence

from .. import errors

__all__ = ["main", "run", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from . import graphs, mcm, split, studies

    parser = argparse.ArgumentParser(
        prog="pipecore",
        description="Partition a DNN graph into pipeline stages and certify the result.")
    sub = parser.add_subparsers(dest="command", required=True)
    graphs.register(sub)
    studies.register(sub)
    split.register(sub)
    mcm.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse has already printed
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    try:
        return int(args.func(args))
    except (errors.PipecoreError, ValueError, FileNotFoundError, IsADirectoryError,
            PermissionError) as exc:
        print(f"pipecore: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:  # an optional extra is missing
        print(f"pipecore: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pipecore: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `pipecore solve --json | head`
        sys.stderr.close()
        return 0


def run() -> int:
    """The console entry point: :func:`main`, then exit at once even if a MIP solver
    thread that did not stop at its deadline is still winding down (it was abandoned
    with its result; waiting for it would break the time limit the answer kept)."""
    code = main()
    if any(t.name == "pipecore-highs" and t.is_alive() for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
