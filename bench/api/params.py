"""Parameter dataclasses: validated once, at construction, with errors that name the offending key.

Every registered object (dataset, model, compressor, bound, recipe) declares its parameters as a
dataclass with defaults. Configuration values arrive from TOML or the CLI as plain Python values; this
module checks them against the declared types, and expands list values into grids.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import types
import typing
from typing import Annotated, Any, Literal, Mapping, Union

from bench.kit.ranges import Range


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key (and lists the valid choices)."""


def _is_sequence_type(tp: Any) -> bool:
    if typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return any(_is_sequence_type(a) for a in typing.get_args(tp) if a is not type(None))
    return origin in (tuple, list) or tp in (tuple, list)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` converted to the declared type ``tp`` or raise ConfigError naming ``key``.

    ``Annotated[T, Ge(1), ...]`` checks the declared ranges (``bench.kit.ranges``) after the type."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Annotated:
        value = coerce(value, args[0], key)
        for mark in args[1:]:
            problem = mark.problem(value) if isinstance(mark, Range) else None
            if problem:
                raise ConfigError(f"parameter '{key}' must be {problem}, got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"parameter '{key}' must be {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(
            f"parameter '{key}' must be one of {', '.join(repr(a) for a in args)}, got {value!r}"
        )
    if origin in (tuple, list) or tp in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"parameter '{key}' must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"parameter '{key}' must have {len(args)} items, got {value!r}")
            return tuple(coerce(v, a, key) for v, a in zip(value, args))
        item_tp = args[0] if args else Any
        return tuple(coerce(v, item_tp, key) for v in value)
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"parameter '{key}' must be a table, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"parameter '{key}' must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"parameter '{key}' must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"parameter '{key}' must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"parameter '{key}' must be a string, got {value!r}")
    raise ConfigError(f"parameter '{key}' has an unsupported declared type {tp!r}")


def field_types(params_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(params_cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(params_cls)}


def check_retired(params_cls: type, values: Mapping[str, Any], owner: str) -> None:
    """A parameter (``name``) or a value of one (``name=value``) listed in the class's ``RETIRED`` table
    is a one-line error that says it was removed and what to use instead."""
    retired: Mapping[str, str] = getattr(params_cls, "RETIRED", {})
    for key, value in values.items():
        for what in (key, f"{key}={value}"):
            if what in retired:
                shown = f"parameter '{key}'" if what == key else f"{key} = {value!r}"
                raise ConfigError(f"{owner}: {shown} was removed: {retired[what]}")


def build_params(params_cls: type, values: Mapping[str, Any] | None, *, owner: str, check: bool = True) -> Any:
    """Instantiate ``params_cls`` from ``values``; unknown keys and wrong types name the key and owner.
    ``check = False`` skips the cross-field ``validate()`` (a decoder's partial view of values that
    were validated whole)."""
    values = dict(values or {})
    types_ = field_types(params_cls)
    check_retired(params_cls, values, owner)
    unknown = sorted(set(values) - set(types_))
    if unknown:
        known = ", ".join(sorted(types_)) or "(none)"
        raise ConfigError(f"{owner}: unknown parameter '{unknown[0]}' (known: {known})")
    try:
        converted = {k: coerce(v, types_[k], k) for k, v in values.items()}
    except ConfigError as exc:
        raise ConfigError(f"{owner}: {exc}") from None
    try:
        instance = params_cls(**converted)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{owner}: {exc}") from None
    rules = getattr(instance, "validate", None)
    if check and callable(rules):
        try:
            rules()
        except ValueError as exc:
            raise ConfigError(f"{owner}: {exc}") from None
    return instance


def expand_grid(params_cls: type, values: Mapping[str, Any] | None, *, owner: str) -> list[dict]:
    """Expand list values into the cross product of configurations.

    A list is a grid axis, except for a parameter whose declared type is itself a sequence: there a
    list of lists is the axis. Each returned configuration is validated; the grid size is what a
    runner charges (``log2``) as hyperparameter bits.
    """
    values = dict(values or {})
    types_ = field_types(params_cls)
    axes: list[tuple[str, list]] = []
    fixed: dict[str, Any] = {}
    for key, value in sorted(values.items()):
        is_axis = isinstance(value, list) and (
            key not in types_
            or not _is_sequence_type(types_[key])
            or (value and all(isinstance(v, (list, tuple)) for v in value))
        )
        if is_axis:
            if not value:
                raise ConfigError(f"{owner}: parameter '{key}' is an empty grid")
            axes.append((key, value))
        else:
            fixed[key] = value
    configs = []
    for combo in itertools.product(*(vals for _, vals in axes)):
        cfg = dict(fixed)
        cfg.update({k: v for (k, _), v in zip(axes, combo)})
        build_params(params_cls, cfg, owner=owner)  # validate every point of the grid up front
        configs.append(cfg)
    return configs


def params_dict(instance: Any) -> dict[str, Any]:
    """A parameter instance as plain JSON-able data (tuples become lists)."""
    return json.loads(canonical_json(dataclasses.asdict(instance)))


def _default(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    raise TypeError(f"not JSON-serializable: {obj!r}")


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_default)


def content_hash(obj: Any, length: int = 16) -> str:
    """Hash of the canonical JSON of ``obj``: the key of every content-addressed cache and cell id."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]
