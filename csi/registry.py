"""Name → class registries, so components are chosen by name from YAML configs.

    FRONTENDS = Registry("frontend")

    @FRONTENDS.register("coverhunter_cqt")
    class CoverHunterCQT(torch.nn.Module): ...

    frontend = FRONTENDS.build({"name": "coverhunter_cqt", "hop_s": 0.04})

``build`` passes the remaining keys as keyword arguments and turns an unknown key into an
error that names the key, the component and the keys it accepts.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping


class ConfigError(ValueError):
    """A configuration that names an unknown component or key."""


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._classes: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def add(cls: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._classes[name] = cls
            return cls
        return add

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests that register a component of their own)."""
        self._classes.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._classes)

    def in_order(self) -> list[str]:
        """Names in the order they were registered (e.g. the rows of a table)."""
        return list(self._classes)

    def __contains__(self, name: str) -> bool:
        return name in self._classes

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._classes:
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._classes[name]

    def build(self, config: Mapping[str, Any], where: str = "") -> Any:
        """Instantiate ``config["name"]`` with the other keys as keyword arguments."""
        prefix = f"{where}: " if where else ""
        if "name" not in config:
            raise ConfigError(f"{prefix}{self.kind} config needs a 'name' key (one of {', '.join(self.names())})")
        cls = self.get(config["name"])
        kwargs = {k: v for k, v in config.items() if k != "name"}
        accepted = [p.name for p in inspect.signature(cls).parameters.values()
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ConfigError(f"{prefix}unknown key(s) {', '.join(unknown)} for {self.kind} "
                              f"{config['name']!r}; accepted: {', '.join(accepted)}")
        return cls(**kwargs)
