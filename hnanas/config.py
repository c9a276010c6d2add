"""Typed configuration: dataclasses loaded strictly from plain dicts (YAML/JSON).

``from_dict`` rejects unknown keys, checks types (a bool is a bool, never the string 'True'), checks
``Literal`` choices and recurses into nested dataclasses, so a typo in a config or space file is an error that
names the file and the key instead of a silently ignored option.

One way to configure, for every config: presets are data (nested mappings), resolved with :func:`layered`
(defaults < preset < file, each layer checked and named in errors), then :func:`override` applies dotted changes
(``{"train.epochs": 3}``; a None change is an option not given, :data:`NULL` sets None).
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from typing import (Any, Literal, Mapping, Sequence, TypeVar, Union, get_args, get_origin,
                    get_type_hints)

import yaml

from hnanas.errors import ConfigError

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} does not match {_type_name(tp)}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return _from_mapping(tp, value, where)
    if origin in (list, typing.List):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        (item,) = get_args(tp) or (Any,)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (tuple, typing.Tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args or [Any] * len(value))))
    if origin in (dict, typing.Dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        kt, vt = get_args(tp) or (Any, Any)
        return {_coerce(k, kt, where): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {type(value).__name__}")
    return value


def _from_mapping(cls: type[T], data: Mapping, where: str) -> T:
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], f"{where}.{name}" if where else name)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key {name!r}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # __post_init__ validation
        raise ConfigError(f"{where}: {exc}") from None


def from_dict(cls: type[T], data: Mapping | None, *, source: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; errors name ``source`` (a file path) and the offending key."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    return _from_mapping(cls, data, source)


def to_dict(obj: Any) -> Any:
    """Plain, YAML/JSON-friendly representation of a (nested) dataclass."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


class _Null:
    """The type of :data:`NULL`."""

    def __repr__(self) -> str:
        return "NULL"


NULL = _Null()  # a change that sets a field to None (a None change means "not given" and keeps the field)


def given(changes: Mapping[str, Any]) -> dict:
    """The changes that were given. The one place where "None = not given" holds (argparse leaves an option that
    was not given at None): a None change is dropped; :data:`NULL` sets the field to None (e.g.
    ``train.val_max_images: NULL`` = the whole validation subset)."""
    return {key: value for key, value in changes.items() if value is not None}


def nest(changes: Mapping[str, Any]) -> dict:
    """The :func:`given` dotted changes as a nested mapping: ``{"train.epochs": 3, "seed": None}`` ->
    ``{"train": {"epochs": 3}}`` (:data:`NULL` becomes None)."""
    out: dict = {}
    for key, value in given(changes).items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = None if value is NULL else value
    return out


def assignments(items: Sequence[str], *, source: str = "command line") -> dict:
    """``["halving.eta=2", "seed=3", "table=null"]`` -> dotted changes for :func:`override`: each value read as a
    YAML scalar (``safe_load``: numbers, booleans; ``null`` becomes :data:`NULL`, which sets None)."""
    out: dict = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"{source}: {item!r} is not KEY=VALUE")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"{source}: {item!r}: {value!r} is not a value (a number, true/false, null or a "
                              f"word)") from None
        out[key.strip()] = NULL if parsed is None else parsed
    return out


def merge(base: dict, extra: Mapping) -> dict:
    """Deep-merge mapping ``extra`` into ``base`` (in place; nested mappings merge, other values replace)."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def layered(cls: type[T], layers: Sequence[tuple[str, Mapping]]) -> T:
    """Build ``cls`` from ``layers`` (source, nested mapping), each merged over the ones before and checked as in
    ``from_dict``: an error names the layer that caused it (a preset, a file)."""
    if not layers:
        raise ValueError("layered: no layer")
    data: dict = {}
    for source, layer in layers:
        result = from_dict(cls, merge(data, layer), source=source)
    return result


def override(obj: T, changes: Mapping[str, Any], *, source: str = "override") -> T:
    """Return a copy of dataclass ``obj`` with ``changes`` applied (:func:`nest`: dotted keys, None = not given,
    :data:`NULL` = None), checked as in ``from_dict``: ``{"optim.lr": 0.01}``."""
    data = to_dict(obj)
    for key in changes:
        node, path = data, []
        for part in key.split("."):
            if not isinstance(node, dict):
                raise ConfigError(f"{source}: unknown key {key!r} ({'.'.join(path)} is a value, not a section)")
            if part not in node:
                raise ConfigError(f"{source}: unknown key {key!r} (known{' in ' + '.'.join(path) if path else ''}: "
                                  f"{', '.join(sorted(node))})")
            node = node[part]
            path.append(part)
    return from_dict(type(obj), merge(data, nest(changes)), source=source)


def check_probability(value: float | None, name: str) -> float | None:
    """``value`` if it is None or a probability strictly inside (0, 1), else a ValueError naming ``name`` (the
    config loaders turn it into a one-line ConfigError)."""
    if value is not None and not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be a probability in (0, 1) (or null), got {value}")
    return value
