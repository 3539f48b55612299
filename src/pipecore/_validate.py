"""One validated conversion for every number that enters pipecore.

The API, the file readers, the CLI and the method options all convert user
values through :func:`as_int` and :func:`as_float`, so the same input gets the
same answer everywhere: booleans and strings are never numbers, an integer
must be integral (``2.7`` is not silently truncated to ``2``), NaN is never
accepted, and the error names the field. The exception class is the caller's
(``InvalidGraphError`` for the API, ``FileFormatError`` for a file, ...).
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from . import errors

__all__ = ["as_int", "as_float", "as_float_array", "as_int_array", "INT32_MAX"]

#: the largest stage index or node id the int32 kernels can hold.
INT32_MAX = 2**31 - 1


def as_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None,
           error: type[Exception] = errors.InvalidGraphError) -> int:
    """``value`` as a Python int, or ``error`` naming ``name``.

    Accepts Python and numpy integers and integral floats (``3.0``); rejects
    booleans, strings, non-integral or non-finite floats, and values outside
    ``[minimum, maximum]``.

    Examples
    --------
    >>> as_int(3.0, "k")
    3
    >>> as_int(2.7, "k")
    Traceback (most recent call last):
    ...
    pipecore.errors.InvalidGraphError: k must be an integer, got 2.7
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise error(f"{name} must be an integer, got {value!r}")
    if isinstance(value, numbers.Integral):
        out = int(value)
    else:
        f = float(value)
        if not math.isfinite(f) or f != math.floor(f):
            raise error(f"{name} must be an integer, got {value!r}")
        out = int(f)
    if minimum is not None and out < minimum:
        raise error(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and out > maximum:
        raise error(f"{name} must be <= {maximum}, got {value!r}")
    return out


def as_float(value: Any, name: str, *, minimum: float | None = None,
             maximum: float | None = None, strict_minimum: bool = False,
             strict_maximum: bool = False, allow_inf: bool = False,
             error: type[Exception] = errors.InvalidGraphError) -> float:
    """``value`` as a finite Python float, or ``error`` naming ``name``.

    Rejects booleans, strings, NaN, infinities (unless ``allow_inf``) and values
    below ``minimum`` (or equal to it when ``strict_minimum``) or above ``maximum`` (or
    equal to it when ``strict_maximum``).

    Examples
    --------
    >>> as_float(2, "mem_cap", minimum=0)
    2.0
    >>> as_float("5", "time_limit")
    Traceback (most recent call last):
    ...
    pipecore.errors.InvalidGraphError: time_limit must be a number, got '5'
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise error(f"{name} must be a number, got {value!r}")
    out = float(value)
    if math.isnan(out) or (math.isinf(out) and not allow_inf):
        raise error(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and (out < minimum or (strict_minimum and out == minimum)):
        rel = ">" if strict_minimum else ">="
        raise error(f"{name} must be {rel} {minimum:g}, got {value!r}")
    if maximum is not None and (out > maximum or (strict_maximum and out == maximum)):
        rel = "<" if strict_maximum else "<="
        raise error(f"{name} must be {rel} {maximum:g}, got {value!r}")
    return out


def as_float_array(values: Any, name: str, n: int | None = None,
                   error: type[Exception] = errors.InvalidCostError) -> np.ndarray:
    """A float64 copy of a 1-D numeric array, or ``error`` naming ``name`` and the position.

    Booleans and strings are not numbers (a list is scanned element by element, a
    numpy array by dtype). NaN and infinities are kept: callers decide about
    finiteness and sign. O(n).
    """
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "iuf":
            raise error(f"{name}: expected numbers, got an array of dtype {values.dtype}")
        arr = values
    else:
        try:
            items = list(values)
        except TypeError:
            raise error(f"{name}: expected a sequence of numbers, got {values!r}") from None
        for i, x in enumerate(items):
            if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
                raise error(f"{name}[{i}] = {x!r}: expected a number")
        arr = np.asarray(items, dtype=np.float64) if items else np.zeros(0)
    out = np.array(arr, dtype=np.float64)
    if out.ndim != 1 or (n is not None and out.shape != (n,)):
        want = f"({n},)" if n is not None else "a 1-D array"
        raise error(f"{name}: expected shape {want}, got {out.shape}")
    return out


def as_int_array(values: Any, name: str, n: int | None = None, *, minimum: int | None = None,
                 maximum: int | None = INT32_MAX,
                 error: type[Exception] = errors.InvalidGraphError) -> np.ndarray:
    """An int64 copy of a 1-D integer array (integral floats accepted), range-checked, or
    ``error`` naming ``name`` and the position. O(n)."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "iu":
            arr = values.astype(np.int64, copy=True)
        elif values.dtype.kind == "f":
            ok = np.isfinite(values) & (values == np.floor(values))
            if not ok.all():
                i = int(np.flatnonzero(~ok)[0])
                raise error(f"{name}[{i}] = {values.ravel()[i]!r}: expected an integer")
            if values.size and np.abs(values).max() >= 2.0**62:
                i = int(np.argmax(np.abs(values)))
                raise error(f"{name}[{i}] = {values.ravel()[i]!r}: out of range")
            arr = values.astype(np.int64)
        else:
            raise error(f"{name}: expected integers, got an array of dtype {values.dtype}")
    else:
        try:
            items = list(values)
        except TypeError:
            raise error(f"{name}: expected a sequence of integers, got {values!r}") from None
        out_items = [as_int(x, f"{name}[{i}]", error=error) for i, x in enumerate(items)]
        if any(abs(v) >= 2**62 for v in out_items):
            i = next(j for j, v in enumerate(out_items) if abs(v) >= 2**62)
            raise error(f"{name}[{i}] = {items[i]!r}: out of range")
        arr = np.asarray(out_items, dtype=np.int64) if out_items else np.zeros(0, np.int64)
    if arr.ndim != 1 or (n is not None and arr.shape != (n,)):
        want = f"({n},)" if n is not None else "a 1-D array"
        raise error(f"{name}: expected shape {want}, got {arr.shape}")
    if arr.size:
        if minimum is not None and arr.min() < minimum:
            i = int(np.argmin(arr))
            raise error(f"{name}[{i}] = {int(arr[i])}: must be >= {minimum}")
        if maximum is not None and arr.max() > maximum:
            i = int(np.argmax(arr))
            raise error(f"{name}[{i}] = {int(arr[i])}: must be <= {maximum}")
    return arr
