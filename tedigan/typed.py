"""Typed dataclass <-> plain dict conversion with strict checking.

The lowest room of the house: models use it for `config.json`, `tedigan.config` for YAML stage configs.
Unknown keys and wrong types raise :class:`ConfigError` naming the dotted key, so a typo in a YAML file
or a ``--train.lr=abc`` override fails at start-up instead of hours into a run.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
from collections.abc import Callable
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is unknown, missing or of the wrong type."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, on_unknown: Callable[[str], None] | None = None) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        errors = []
        for arg in options:
            try:
                return _coerce(value, arg, key, on_unknown)
            except ConfigError as err:
                errors.append(err)
        if len(options) == 1:  # Optional[X]: X's own message (a Literal's lists its choices)
            none = " (or null)" if type(None) in args else ""
            raise ConfigError(f"{errors[0]}{none}") from None
        raise ConfigError(f"{key}: {value!r} does not match {_type_name(tp)}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {list(choices)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
            return tuple(
                _coerce(v, a, f"{key}[{i}]", on_unknown) for i, (v, a) in enumerate(zip(value, args))
            )
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{key}[{i}]", on_unknown) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        kt, vt = get_args(tp) or (Any, Any)
        return {_coerce(k, kt, key): _coerce(v, vt, f"{key}.{k}", on_unknown) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=key, on_unknown=on_unknown)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        else:
            number = float(value)
        # no config number is meaningful as NaN or infinity; they would only surface hours later
        if not math.isfinite(number):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(
    cls: type[T], data: dict[str, Any], prefix: str = "", on_unknown: Callable[[str], None] | None = None
) -> T:
    """Build dataclass ``cls`` from ``data``, checking keys and types recursively.

    Unknown keys are errors, unless ``on_unknown`` is given: then each one's dotted name is passed to it and
    the key is dropped (tolerant loading of files written by a newer version)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or cls.__name__}: expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if key not in fields and on_unknown is not None:
            on_unknown(dotted)
            continue
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(fields)})"
            raise ConfigError(f"unknown config key '{dotted}'{hint}")
        kwargs[key] = _coerce(value, hints[key], dotted, on_unknown)
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{prefix or cls.__name__}: missing required key(s) {missing}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:  # __post_init__ validation
        raise ConfigError(f"{prefix or cls.__name__}: {err}") from err


def to_dict(obj: Any) -> Any:
    """Plain-Python (JSON/YAML-safe) view of a dataclass tree; tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


__all__ = ["ConfigError", "from_dict", "to_dict"]
