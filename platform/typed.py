"""Build frozen dataclasses from plain mappings, checking keys and types on the way.

Used for the platform's own config and for the ``Params`` dataclasses that models,
scenarios and learning rules declare, so every field at any depth is checked the same way.
Errors are :class:`ConfigError` carrying the dotted field path.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from neurocomm.platform.errors import ConfigError

T = TypeVar("T")

_TYPE_NAMES = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}
# Integers end up in numpy and torch: anything outside int64 is a mistake, not a size.
INT_LIMIT = 2**63


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if tp in _TYPE_NAMES:
        return _TYPE_NAMES[tp]
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp) if a is not type(None)) + " or null"
    if origin in (list, tuple):
        return f"a list of {_describe(get_args(tp)[0])}" if get_args(tp) else "a list"
    if origin in (dict, Mapping):
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return "any value" if tp is Any else getattr(tp, "__name__", str(tp))


def convert(tp: Any, value: Any, path: str) -> Any:
    """``value`` converted to type ``tp``; ConfigError(path) when it does not fit."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            # X | None: X's own message names the field that is wrong inside it
            return convert(options[0], value, path)
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(arg, value, path)
            except ConfigError:
                continue
        raise ConfigError(f"expected {_describe(tp)}, got {value!r}", path=path)
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"expected {_describe(tp)}, got {value!r}", path=path)
    if dataclasses.is_dataclass(tp):
        short = getattr(tp, "SHORT_FORM", None)  # a record whose one required field may stand alone
        if short and isinstance(value, str):
            value = {short: value}
        return from_mapping(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"expected {_describe(tp)}, got {value!r}", path=path)
        (item,) = get_args(tp)[:1] or (Any,)
        items = [convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a mapping, got {value!r}", path=path)
        args = get_args(tp)
        vt = args[1] if len(args) == 2 else Any
        return {str(k): convert(vt, v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if -INT_LIMIT <= value < INT_LIMIT:
                return value
            raise ConfigError(f"{value} is out of range; allowed: integers of at most 63 bits",
                              path=path)
    elif tp is float:
        # inf and nan are never a sensible rate, probability or coefficient: a run would
        # "finish" with NaN weights
        if isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(value, int) and not -INT_LIMIT <= value < INT_LIMIT:
                raise ConfigError(f"{value} is out of range for a number", path=path)
            if math.isfinite(value):
                return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"expected {_describe(tp)}, got {value!r}", path=path)


def from_mapping(cls: type[T], data: Any, path: str = "") -> T:
    """An instance of dataclass ``cls`` built from ``data``; unknown keys are errors.

    After construction, a ``check()`` method (if any) may raise ValueError("field: message")
    or ConfigError with a relative path; it is re-raised under ``path``.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping, got {data!r}", path=path)
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        allowed = ", ".join(fields) or "none"
        sub = f"{path}.{unknown[0]}" if path else str(unknown[0])
        raise ConfigError(f"unknown key; allowed here: {allowed}", path=sub)
    kwargs = {}
    for name, field in fields.items():
        sub = f"{path}.{name}" if path else name
        if name in data:
            kwargs[name] = convert(hints[name], data[name], sub)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError("required field is missing", path=sub)
    try:
        obj = cls(**kwargs)
        check = getattr(obj, "check", None)
        if callable(check):
            check()
    except ConfigError as err:
        raise err.at(prefix=path) from None
    except (ValueError, TypeError) as err:
        field, sep, message = str(err).partition(": ")
        if sep and field in fields:
            raise ConfigError(message, path=f"{path}.{field}" if path else field) from None
        raise ConfigError(str(err), path=path) from None
    return obj


def to_plain(obj: Any) -> Any:
    """Plain dicts/lists (for YAML/JSON) from a dataclass tree."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    return obj

