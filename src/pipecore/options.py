"""Declared solver options, validated once.

Every method declares its options as :class:`Option` records (name, type, range,
default, help) and gets them through the :func:`method` decorator;
:func:`pipecore.solve` validates what the caller passed against the declaration
before anything runs, so a typo (``populaton=8``) or a bad value
(``population=0``) is a clear :class:`~pipecore.errors.InvalidOptionError` listing
what is accepted, never a silent default. The CLI's ``-O key=value`` and sweeps
parse strings through the same declarations (:func:`parse_option`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])

from .errors import InvalidOptionError
from ._validate import as_float, as_int

__all__ = ["Option", "OptionSet", "method", "parse_option"]

_NONE_WORDS = ("none", "null")


@dataclass(frozen=True)
class Option:
    """One option: ``kind`` is ``int``, ``float``, ``bool``, ``str`` or ``"seconds"``.

    ``minimum``/``maximum`` bound numbers (``strict``/``strict_max`` make them exclusive),
    ``choices`` lists the allowed strings, ``nullable`` allows ``None`` (meaning "the
    method decides", documented in ``help``).
    """

    name: str
    kind: type | str
    default: Any = None
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    strict: bool = False
    strict_max: bool = False
    choices: Sequence[str] | None = None
    nullable: bool = False

    def validate(self, value: Any, owner: str) -> Any:
        """``value`` converted to the declared type, or :class:`InvalidOptionError`."""
        where = f"option {self.name!r} of {owner}"
        if value is None:
            if self.nullable or self.default is None:
                return None
            raise InvalidOptionError(f"{where} cannot be None")
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            raise InvalidOptionError(f"{where} must be true or false, got {value!r}")
        if self.kind is int:
            return as_int(value, where, minimum=_int_or_none(self.minimum, self.strict),
                          maximum=_int_or_none(self.maximum), error=InvalidOptionError)
        if self.kind in (float, "seconds"):
            return as_float(value, where, minimum=self.minimum, maximum=self.maximum,
                            strict_minimum=self.strict, strict_maximum=self.strict_max,
                            allow_inf=self.kind == "seconds",
                            error=InvalidOptionError)
        if self.kind is str:
            if not isinstance(value, str):
                raise InvalidOptionError(f"{where} must be a string, got {value!r}")
            if self.choices is not None and value not in self.choices:
                raise InvalidOptionError(
                    f"{where} must be one of {', '.join(map(repr, self.choices))}, got {value!r}")
            return value
        raise TypeError(f"unsupported option kind {self.kind!r}")  # pragma: no cover

    def parse(self, text: str, owner: str) -> Any:
        """Convert a command-line string (``-O name=text``) and validate it."""
        where = f"option {self.name!r} of {owner}"
        if text.strip().lower() in _NONE_WORDS and (self.nullable or self.default is None):
            return None
        if self.kind is bool:
            word = text.strip().lower()
            if word in ("true", "1", "yes", "on"):
                return True
            if word in ("false", "0", "no", "off"):
                return False
            raise InvalidOptionError(f"{where} must be true or false, got {text!r}")
        if self.kind is int:
            try:
                value: Any = int(text.strip().replace("_", ""))
            except ValueError:
                try:
                    value = float(text)
                except ValueError:
                    raise InvalidOptionError(f"{where} must be an integer, got {text!r}") from None
            return self.validate(value, owner)
        if self.kind in (float, "seconds"):
            try:
                value = float(text)
            except ValueError:
                raise InvalidOptionError(f"{where} must be a number, got {text!r}") from None
            return self.validate(value, owner)
        return self.validate(text, owner)

    def describe(self) -> str:
        kind = self.kind if isinstance(self.kind, str) else self.kind.__name__
        rng = ""
        if self.choices:
            rng = " in {" + ", ".join(self.choices) + "}"
        elif self.minimum is not None or self.maximum is not None:
            lo = "" if self.minimum is None else f"{self.minimum:g} {'<' if self.strict else '<='} "
            hi = "" if self.maximum is None else \
                f" {'<' if self.strict_max else '<='} {self.maximum:g}"
            rng = f" ({lo}x{hi})"
        return f"{self.name} ({kind}{rng}, default {self.default!r}): {self.help}"


def _int_or_none(x: float | None, strict: bool = False) -> int | None:
    if x is None:
        return None
    return int(math.floor(x)) + 1 if strict else int(math.ceil(x))


class OptionSet:
    """The declared options of one method (or of the certificate)."""

    def __init__(self, owner: str, options: Iterable[Option] = ()):
        self.owner = owner
        self.options: dict[str, Option] = {o.name: o for o in options}

    def __contains__(self, name: str) -> bool:
        return name in self.options

    def __iter__(self) -> Iterator[Option]:
        return iter(self.options.values())

    def __or__(self, other: "OptionSet") -> "OptionSet":
        return OptionSet(self.owner, [*self.options.values(), *other.options.values()])

    def defaults(self) -> dict[str, Any]:
        return {o.name: o.default for o in self.options.values()}

    def validate(self, given: Mapping[str, Any], *, accepted_elsewhere: Sequence[str] = (),
                 ) -> dict[str, Any]:
        """Defaults overlaid with ``given``, each validated; unknown names are an error
        (``accepted_elsewhere`` lists names another consumer takes, for the message)."""
        out = self.defaults()
        for name, value in given.items():
            opt = self.options.get(name)
            if opt is None:
                raise InvalidOptionError(self.unknown_message(name, accepted_elsewhere))
            out[name] = opt.validate(value, self.owner)
        return out

    def unknown_message(self, name: str, elsewhere: Sequence[str] = ()) -> str:
        names = sorted(self.options)
        import difflib

        close = difflib.get_close_matches(name, [*names, *elsewhere], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listed = ", ".join(names) if names else "none"
        extra = f"; also accepted by solve(): {', '.join(sorted(elsewhere))}" if elsewhere else ""
        return f"unknown option {name!r} for {self.owner}{hint}; it accepts: {listed}{extra}"

    def help(self) -> str:
        return "\n".join(o.describe() for o in self.options.values())


def method(name: str, options: Iterable[Option] = ()) -> Callable[[_F], _F]:
    """Declare a solver method's name and options on its function (``fn.options``)."""
    spec = OptionSet(f"method {name!r}", options)

    def wrap(fn: _F) -> _F:
        fn.options = spec  # type: ignore[attr-defined]
        fn.method_name = name  # type: ignore[attr-defined]
        return fn

    return wrap


def parse_option(text: str, specs: Sequence[OptionSet]) -> tuple[str, Any]:
    """Parse ``key=value`` against the first option set that declares ``key``."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise InvalidOptionError(
            f"expected key=value (e.g. -O max_ideals=100000), got {text!r}")
    for spec in specs:
        if key in spec:
            return key, spec.options[key].parse(value, spec.owner)
    first, rest = specs[0], [n for s in specs[1:] for n in s.options]
    raise InvalidOptionError(first.unknown_message(key, rest))
