"""A name → class table that lets a config file pick the class to build."""
from __future__ import annotations

import inspect
from typing import Any, Callable, ClassVar, Dict, Iterator, Optional

from .errors import BadArgumentsError, ConfigError, UnknownNameError, nearest_names


class Registry:
    """Maps names to classes or functions.

    >>> BACKBONES = Registry("backbone")
    >>> @BACKBONES.register()
    ... class ResNetSlowFast: ...
    >>> BACKBONES.get("ResNetSlowFast")

    Registering a name twice is an error (a ``KeyError``: a programming mistake), and asking for a
    name that was never registered is an :class:`UnknownNameError` (a ``ConfigError`` that is
    also a ``KeyError``) listing the names that are registered, nearest first, so a typo in a
    config is easy to spot. The first registry of each name is findable through :meth:`named`,
    which lets the config check look up constructors without importing the packages that own
    them.
    """

    _all: ClassVar[Dict[str, Registry]] = {}

    def __init__(self, name: str) -> None:
        self._name = name
        self._obj_map: Dict[str, Any] = {}
        Registry._all.setdefault(name, self)  # the project's own, created at import, stay found

    @classmethod
    def named(cls, name: str) -> Optional[Registry]:
        """The registry called ``name``, or None if the package that defines it is not loaded."""
        return cls._all.get(name)

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
        except (KeyError, TypeError):
            known = ", ".join(sorted(self._obj_map)) or "(none)"
            near = nearest_names(name, sorted(self._obj_map))
            raise UnknownNameError(
                f"No object named '{name}' in the '{self._name}' registry. Registered: {known}",
                key=self._name, expected=f"a registered {self._name} name", nearest=near,
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
        raise UnknownNameError(f"A '{registry.name}' config needs a '{key}' key, got: {cfg!r}",
                               key=key)
    kwargs = dict(cfg)
    obj_name = kwargs.pop(key)
    obj_cls: Callable[..., Any] = registry.get(obj_name)
    kwargs.update(extra_kwargs)
    problem = argument_problem(obj_cls, kwargs)
    if problem:
        raise BadArgumentsError(f"Cannot build {registry.name} '{obj_name}': {problem}",
                                key=obj_name)
    try:
        return obj_cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as err:  # a constructor refusing a value is a config mistake too
        raise ConfigError(f"Cannot build {registry.name} '{obj_name}': {err}",
                          key=obj_name) from err


def signature_of(obj: Callable[..., Any]) -> inspect.Signature:
    """The signature of a class's constructor (without ``self``) or of a function."""
    return inspect.signature(obj)


def accepted_arguments(obj: Callable[..., Any]) -> Optional[Dict[str, inspect.Parameter]]:
    """Named parameters of ``obj``; None when it also takes ``**kwargs`` (anything goes)."""
    params = signature_of(obj).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {n: p for n, p in params.items()
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}


def argument_problem(obj: Callable[..., Any], kwargs: Dict[str, Any]) -> Optional[str]:
    """Why ``obj(**kwargs)`` cannot be called (unknown or missing arguments), or None."""
    accepted = accepted_arguments(obj)
    if accepted is None:
        return None
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        near = {k: nearest_names(k, accepted) for k in unknown}
        return "; ".join(f"unknown argument '{k}' (nearest: {', '.join(v)})"
                         for k, v in near.items())
    missing = [n for n, p in accepted.items() if p.default is inspect.Parameter.empty
               and n not in kwargs]
    if missing:
        return "missing required argument(s) " + ", ".join(f"'{m}'" for m in missing)
    return None


__all__ = ["ConfigError", "Registry", "accepted_arguments", "argument_problem",
           "build_from_config"]
