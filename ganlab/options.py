"""Typed option tables: one dataclass per TOML table, validated with the same rules for the core and for tricks.

A field is declared with :func:`opt`, which records its help text and the allowed range or choices; the
help text is what `ganlab plugins` and the README's tables show.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Callable

from ganlab.errors import ConfigError


def opt(default: Any, help: str, *, min: float | None = None, max: float | None = None,
        choices: tuple | None = None, min_exclusive: bool = False) -> Any:
    """A dataclass field with its documentation and its allowed values."""
    meta = {"help": help, "min": min, "max": max, "choices": choices, "min_exclusive": min_exclusive}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        (inner,) = typing.get_args(tp)
        return f"a list of {_type_name(inner)}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _check_type(value: Any, tp: Any) -> Any:
    """The value converted to tp (int -> float only), or raise TypeError."""
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise TypeError
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif typing.get_origin(tp) is list:
        (inner,) = typing.get_args(tp)
        if isinstance(value, list):
            return [_check_type(v, inner) for v in value]
    raise TypeError


def check_value(f: dataclasses.Field, tp: Any, value: Any, key: str, file: str | None) -> Any:
    """Validate one value against its type `tp` and its field's range; raise ConfigError naming key and file."""
    try:
        value = _check_type(value, tp)
    except TypeError:
        raise ConfigError(key, f"expected {_type_name(tp)}, got {value!r}", file) from None
    m = f.metadata
    if m.get("choices") is not None and value not in m["choices"]:
        allowed = ", ".join(repr(c) for c in m["choices"])
        raise ConfigError(key, f"{value!r} is not allowed; choose one of {allowed}", file)
    lo, hi = m.get("min"), m.get("max")
    if lo is not None and (value < lo or (m.get("min_exclusive") and value == lo)):
        op = ">" if m.get("min_exclusive") else ">="
        rng = f"{op} {lo}" + (f" and <= {hi}" if hi is not None else "")
        raise ConfigError(key, f"must be {rng}, got {value!r}", file)
    if hi is not None and value > hi:
        rng = f">= {lo} and <= {hi}" if lo is not None else f"<= {hi}"
        raise ConfigError(key, f"must be {rng}, got {value!r}", file)
    return value


def parse_table(cls: type, table: dict[str, Any], prefix: str,
                origin: Callable[[str], str | None] = lambda key: None) -> Any:
    """Build dataclass `cls` from a TOML table: unknown keys, wrong types and out-of-range values are errors.

    `prefix` is the table's dotted name ("train", "tricks.input_noise"); `origin(key)` names the file a key
    came from, for the message.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in table.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in fields:
            known = ", ".join(sorted(fields)) or "(none)"
            raise ConfigError(key, f"unknown key; the keys of [{prefix or 'top level'}] are: {known}", origin(key))
        values[name] = check_value(fields[name], hints[name], value, key, origin(key))
    return cls(**values)


def describe(cls: type) -> list[tuple[str, Any, str]]:
    """(key, default, help) for each field of an options dataclass, in declaration order."""
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out.append((f.name, default, f.metadata.get("help", "")))
    return out
