"""Typed YAML configs: dataclasses filled from dicts, unknown keys are errors.

``from_dict(FeatureConfig, yaml_dict, where="data/hparams.yaml")`` checks every key
(recursively for dataclass-typed fields) and names the offending key and file.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from typing import Any, Mapping, TypeVar

import yaml

from csi.registry import ConfigError

T = TypeVar("T")


def load_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping; an empty file is ``{}``; anything else is a ConfigError naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; nested dataclass fields are built recursively.

    A key that is not a field raises ConfigError naming ``where`` and the key path.
    A ``None`` value for a nested dataclass field keeps it ``None`` (feature off).
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; accepted: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        sub = _dataclass_in(hints[name])
        if sub is not None and value is not None:
            value = from_dict(sub, value, where=f"{where}: {name}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


def to_dict(obj: Any) -> Any:
    """Plain dict/list form of a (nested) dataclass, for writing resolved configs."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass inside ``X`` or ``Optional[X]``, if any."""
    if dataclasses.is_dataclass(hint):
        return hint
    for arg in typing.get_args(hint):
        if dataclasses.is_dataclass(arg):
            return arg
    return None
