"""Field access with errors that name the field and its position."""
from __future__ import annotations

import math

from ..errors import FileFormatError


def need(obj, key, where: str, source: str):
    if not isinstance(obj, dict):
        raise FileFormatError(f"{source}: {where}: expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise FileFormatError(f"{source}: {where}: missing field {key!r}")
    return obj[key]


def number(value, where: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FileFormatError(f"{source}: {where}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise FileFormatError(f"{source}: {where}: expected a finite number, got {value!r}")
    return float(value)


def array_of(values, where: str, source: str, n: int | None = None) -> list:
    if not isinstance(values, list):
        raise FileFormatError(f"{source}: {where}: expected a list, got {type(values).__name__}")
    if n is not None and len(values) != n:
        raise FileFormatError(f"{source}: {where}: expected {n} entries, got {len(values)}")
    return values
