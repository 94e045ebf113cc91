"""A name → class table that lets a config file pick the class to build."""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Optional


class Registry:
    """Maps names to classes or functions.

    >>> BACKBONES = Registry("backbone")
    >>> @BACKBONES.register()
    ... class ResNetSlowFast: ...
    >>> BACKBONES.get("ResNetSlowFast")

    Registering a name twice is an error, and so is asking for a name that was never registered;
    the ``KeyError`` lists the names that are registered so a typo in a config is easy to spot.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._obj_map: Dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self._name

    def _do_register(self, name: str, obj: Any) -> None:
        if name in self._obj_map:
            raise KeyError(
                f"An object named '{name}' is already registered in the '{self._name}' registry"
            )
        self._obj_map[name] = obj

    def register(self, obj: Any = None, name: Optional[str] = None) -> Any:
        """Register ``obj`` under ``name`` (default: its ``__name__``); usable as a decorator."""
        if obj is None:

            def decorator(func_or_class: Any) -> Any:
                self._do_register(name or func_or_class.__name__, func_or_class)
                return func_or_class

            return decorator
        self._do_register(name or obj.__name__, obj)
        return obj

    def get(self, name: str) -> Any:
        try:
            return self._obj_map[name]
        except KeyError:
            known = ", ".join(sorted(self._obj_map)) or "(none)"
            raise KeyError(
                f"No object named '{name}' in the '{self._name}' registry. Registered: {known}"
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self._obj_map

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._obj_map))

    def __len__(self) -> int:
        return len(self._obj_map)

    def __repr__(self) -> str:
        return f"Registry(name={self._name!r}, items={sorted(self._obj_map)})"


def build_from_config(cfg: Dict[str, Any], registry: Registry, key: str = "name",
                      **extra_kwargs: Any) -> Any:
    """Build ``registry[cfg[key]](**rest_of_cfg, **extra_kwargs)``.

    ``cfg`` is a plain mapping from the YAML file; it is copied, never modified.
    """
    if not isinstance(cfg, dict) or key not in cfg:
        raise KeyError(f"A '{registry.name}' config needs a '{key}' key, got: {cfg!r}")
    kwargs = dict(cfg)
    obj_name = kwargs.pop(key)
    obj_cls: Callable[..., Any] = registry.get(obj_name)
    kwargs.update(extra_kwargs)
    try:
        return obj_cls(**kwargs)
    except TypeError as err:
        raise TypeError(f"Cannot build {registry.name} '{obj_name}' from {kwargs}: {err}") from err
