"""Typed YAML configs: dataclasses filled from dicts, unknown keys are errors.

``from_dict(FeatureConfig, yaml_dict, where="data/hparams.yaml")`` checks every key
(recursively for dataclass-typed fields) and names the offending key and file.

- A field's value must match its annotation (``int``, ``float``, ``bool``, ``str``,
  ``list``, ``dict``, ``Optional[...]``): ``max_epochs: ten`` is an error naming the key,
  not a crash later. A float field takes an int, and a string YAML 1.1 reads as text
  (``1e-3``) if it is a number. ``null`` is refused for a scalar field that is not
  ``Optional`` (a list or mapping field passes it on to the dataclass's own checks).
- ``dataclasses.InitVar`` pseudo-fields are accepted keys that ``__post_init__`` checks or
  uses but that are not stored (not in ``to_dict``, so not in a resolved run record).
- ``base: FILE`` (or a list of files; relative to the file naming them) layers a config on
  others (``load_config``): the bases are merged in order, then the file's own keys over
  them — mappings key by key, anything else replaced; a circle of bases is an error.
- ``IGNORED_KEYS: ClassVar[dict[str, str]] = {key: why}`` on a dataclass: keys of a
  reference file that are accepted and have no effect. Each one present logs one warning
  ``<where>: <key>: ignored — <why>`` (logger ``csi.config``) and is dropped.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import typing
from typing import Any, Iterable, Mapping, TypeVar

import yaml

from csi.registry import ConfigError

T = TypeVar("T")
log = logging.getLogger("csi.config")


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


BASE_KEY = "base"


def load_config(path: str | os.PathLike) -> dict:
    """A YAML mapping with its ``base:`` chain merged (module docstring); the result has no
    ``base`` key."""
    return _layered(os.path.normpath(os.fspath(path)), ())


def _layered(path: str, chain: tuple[str, ...]) -> dict:
    if path in chain:
        raise ConfigError(f"{path}: base: a circle of bases ({' -> '.join(chain + (path,))})")
    data = load_yaml(path)
    bases = data.pop(BASE_KEY, None)
    if bases is None:
        return data
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise ConfigError(f"{path}: base: expected a file name or a list of file names, got {bases!r}")
    merged: dict = {}
    for base in bases:
        base_path = os.path.normpath(base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base))
        if not os.path.isfile(base_path):
            raise ConfigError(f"{path}: base: {base}: file not found ({base_path})")
        merged = merge_configs(merged, _layered(base_path, chain + (path,)))
    return merge_configs(merged, data)


def merge_configs(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict:
    """``over`` layered on ``base``: mappings merged key by key (recursively), any other value
    of ``over`` (a scalar, a list, null) replacing ``base``'s."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_configs(out[key], value)
        else:
            out[key] = value
    return out


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "config",
              ignored: dict[str, str] | None = None, key_path: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; nested dataclass fields are built recursively.

    A key that is not a field raises ConfigError naming ``where`` and the key path; so does
    a value of the wrong type. A ``None`` value for a nested dataclass field keeps it
    ``None`` (feature off). Keys of ``cls.IGNORED_KEYS`` are dropped with a warning and
    added to ``ignored`` (``{"a.b.key": why}``, under ``key_path``, the key path of ``data``
    in its file) when given.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    accepted = [f.name for f in dataclasses.fields(cls)]
    accepted += [name for name, hint in hints.items() if isinstance(hint, dataclasses.InitVar)]
    skip: dict[str, str] = getattr(cls, "IGNORED_KEYS", {})
    unknown = sorted(set(data) - set(accepted) - set(skip), key=str)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; accepted: {', '.join(accepted)}")
    kwargs = {}
    for name, value in data.items():
        if name in skip and name not in accepted:
            log.warning("%s: %s: ignored — %s", where, name, skip[name])
            if ignored is not None:
                ignored[f"{key_path}{name}"] = skip[name]
            continue
        hint = hints[name]
        if isinstance(hint, dataclasses.InitVar):
            hint = hint.type
        sub = _dataclass_in(hint)
        if sub is not None and value is not None:
            value = from_dict(sub, value, where=f"{where}: {name}", ignored=ignored,
                              key_path=f"{key_path}{name}.")
        else:
            value = _checked(value, hint, f"{where}: {name}")
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


_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list",
          dict: "a mapping"}


def _checked(value: Any, hint: Any, where: str) -> Any:
    """``value`` if it fits ``hint`` (a float field also takes an int or a numeric string),
    else a ConfigError naming ``where``; other annotations are not checked."""
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            return value
        hint = rest[0]
    base = typing.get_origin(hint) or hint
    if base not in _NAMES:
        return value
    if value is None:
        if optional or base in (list, dict):   # a null container: its owner's checks judge it
            return None
    elif base is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    elif base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    elif isinstance(value, base) and not (base is int and isinstance(value, bool)):
        return value
    shown = "null" if value is None else repr(value)
    raise ConfigError(f"{where}: expected {_NAMES[base]}{' or null' if optional else ''}, got {shown}")


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass inside ``X`` or ``Optional[X]``, if any."""
    if dataclasses.is_dataclass(hint):
        return hint
    for arg in typing.get_args(hint):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def apply_overrides(config: dict, assignments: Iterable[str], where: str = "--set") -> dict:
    """Set each ``key.sub=VALUE`` of ``assignments`` in ``config`` (in place; also returned).

    VALUE is read as a YAML scalar or flow list/mapping. A malformed assignment, or a key
    path through a value that is not a mapping, is a ConfigError naming ``where``."""
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"{where}: --set expects KEY=VALUE (KEY: name or a.b.c), got {assignment!r}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{where}: --set {key}: value {text!r} is not valid YAML: "
                              f"{' '.join(str(e).split())}") from None
        *parents, leaf = key.split(".")
        node = config
        for depth, part in enumerate(parents):
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                path = ".".join(parents[:depth + 1])
                raise ConfigError(f"{where}: --set {key}: {path} is {node!r}, not a mapping")
        node[leaf] = value
    return config
