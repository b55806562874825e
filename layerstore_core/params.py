"""Driver parameters: a dataclass per driver, filled from configuration with strict checking.

Configuration arrives as YAML values or as strings (environment overrides), so values are
converted by the field's declared type. Unknown keys are errors, never ignored: a typo in an
operator's config must not silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from .errors import LayerstoreError

_P = TypeVar("_P")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class ParameterError(LayerstoreError, ValueError):
    """A configuration parameter is unknown, missing or malformed."""


def _convert(value: Any, kind: Any, key: str, owner: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        if value is None:
            return None
        return _convert(value, options[0], key, owner)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(value)
        if kind is int:
            if isinstance(value, bool) or isinstance(value, float):
                raise ValueError(value)
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError(value)
            return str(value)
    except ValueError:
        raise ParameterError(
            f"{owner}: parameter {key!r} must be {getattr(kind, '__name__', kind)}, got {value!r}"
        ) from None
    return value


def parse_params(cls: type[_P], params: Mapping[str, Any], *, owner: str) -> _P:
    """Build dataclass ``cls`` from ``params`` (keys case-insensitive, as in Distribution)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name.lower(): f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # a TypeVar, not a DataclassInstance
    values: dict[str, Any] = {}
    for key, value in params.items():
        field = fields.get(str(key).lower())
        if field is None:
            known = ", ".join(sorted(fields)) or "none"
            raise ParameterError(f"{owner}: unknown parameter {key!r} (known: {known})")
        values[field.name] = _convert(value, hints[field.name], str(key), owner)
    try:
        obj = cls(**values)
    except TypeError as exc:  # a required parameter is missing
        raise ParameterError(f"{owner}: {exc}") from None
    check = getattr(obj, "validate", None)
    if callable(check):
        check()
    return obj


def describe_params(cls: type[Any]) -> list[tuple[str, str, str]]:
    """(name, type, default) for each parameter, for ``layerstore drivers``."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "(required)"
        kind = hints[f.name]
        rows.append((f.name, getattr(kind, "__name__", str(kind)), default))
    return rows


def check_range(owner: str, key: str, value: int, low: int, high: int) -> None:
    """Raise a ParameterError naming ``owner`` and ``key`` unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise ParameterError(f"{owner}: parameter {key!r} must be in [{low}, {high}], got {value}")
