"""Load a YAML config, apply ``-o key.path=value`` overrides, check it and dump it back."""
from __future__ import annotations

import copy
import os
from typing import Any, Dict, Optional, Sequence

import yaml

from . import schema
from .errors import ConfigError, nearest_names
from .fileio import read_utf8_lines, write_text_atomic

__all__ = ["AttrDict", "ConfigError", "get_config", "override_config", "dump_config"]


class AttrDict(dict):
    """A dict whose keys are also attributes: ``cfg.MODEL.backbone.name``."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(
                f"config has no key '{key}'; keys here: {sorted(self.keys())}"
            ) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __deepcopy__(self, memo: Dict[int, Any]) -> AttrDict:
        return AttrDict({k: copy.deepcopy(v, memo) for k, v in self.items()})


class FrozenConfigError(TypeError):
    """Code tried to change a resolved (frozen) config."""


def _refuse(self: Any, *args: Any, **kwargs: Any) -> None:
    raise FrozenConfigError("the resolved config of a run is frozen (its identity hashes it); "
                            "change a copy (copy.deepcopy) instead")


class FrozenConfig(AttrDict):
    """A resolved config: read like an :class:`AttrDict`, never changed. ``copy.deepcopy``
    gives a changeable :class:`AttrDict` (as a multigrid stage's config is derived)."""

    __setitem__ = __delitem__ = __setattr__ = _refuse
    setdefault = update = pop = popitem = clear = __ior__ = _refuse

    def __reduce__(self) -> Any:
        return AttrDict, (dict(self),)


class FrozenList(list):
    """A list inside a :class:`FrozenConfig`; ``copy.deepcopy`` gives a plain list."""

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = remove = pop = clear = sort = reverse = _refuse

    def __deepcopy__(self, memo: Dict[int, Any]) -> list:
        return [copy.deepcopy(v, memo) for v in self]

    def __reduce__(self) -> Any:
        return list, (list(self),)


def freeze_config(obj: Any) -> Any:
    """A :class:`FrozenConfig` copy of ``obj`` (nested dicts and lists frozen too)."""
    if isinstance(obj, dict):
        return FrozenConfig({k: freeze_config(v) for k, v in obj.items()})
    if isinstance(obj, (list, tuple)):
        return FrozenList(freeze_config(v) for v in obj)
    return obj


def _to_attr(obj: Any) -> Any:
    if isinstance(obj, dict):
        return AttrDict({k: _to_attr(v) for k, v in obj.items()})
    if isinstance(obj, list):
        return [_to_attr(v) for v in obj]
    return obj


def to_plain(obj: Any) -> Any:
    """AttrDicts → plain dicts, recursively (for YAML dumping and builders)."""
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def _load_yaml(path: str) -> Dict[str, Any]:
    if not os.path.isfile(path):
        raise ConfigError(f"Config file not found: {path}")
    # a file saved as GBK or a binary file: one line naming the file and line, not a traceback
    text = "\n".join(read_utf8_lines(path, ConfigError))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"Malformed YAML in {where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level of a config must be a mapping, "
                          f"got {type(data).__name__}")
    return data


def _is_number_text(value: Any) -> bool:
    return schema.is_number_text(value)


def _kind(value: Any) -> str:
    """The type family a value belongs to for override checks."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)) or _is_number_text(value):
        return "number"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _check_type(path: str, old: Any, new: Any) -> Any:
    """Return ``new`` if it may replace ``old``; raise a ConfigError naming ``path`` otherwise.

    ``None`` on either side is accepted; an int may replace a float (and becomes a float), but a
    float may not replace an int (an epoch count of 2.5 is a mistake).
    """
    if old is None or new is None:
        return new
    if _kind(old) != _kind(new) or (isinstance(old, int) and isinstance(new, float)
                                    and not isinstance(old, bool)):
        raise ConfigError(
            f"Override '{path}': expected a value of type {type(old).__name__} "
            f"(current value {old!r}), got {type(new).__name__} {new!r}"
        )
    if isinstance(old, float) and isinstance(new, int):
        return float(new)
    return new


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"Override '{item}' must look like key.path=value")
    key, _, raw = item.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"Override '{item}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # not YAML (e.g. 'a: b: c'): keep the text as given
    if _is_number_text(value):
        value = float(value)
    return key, value


def override_config(cfg: Dict[str, Any], overrides: Optional[Sequence[str]] = None,
                    source: str = "<config>") -> Dict[str, Any]:
    """Apply ``["a.b.c=value", ...]`` to ``cfg`` in place and return it.

    Path parts that are integers index lists (``PIPELINE.train.transform.1.MultiCrop.target_size``).
    A key missing from the file is an error unless the config schema knows it there (a plain key
    of :data:`schema.SCHEMA` or an argument of the registered constructor that mapping names); a
    value of a different type than the one it replaces is an error (an int may replace a float).
    """
    for item in overrides or []:
        key, value = _parse_override(item)
        parts = key.split(".")
        node: Any = cfg
        for depth, part in enumerate(parts):
            path = ".".join(parts[: depth + 1])
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not part.lstrip("-").isdigit():
                    raise ConfigError(f"{source}: override '{key}': '{path}' indexes a list, "
                                      f"use an integer index (0..{len(node) - 1})")
                index = int(part)
                if not -len(node) <= index < len(node):
                    raise ConfigError(f"{source}: override '{key}': index {index} out of range "
                                      f"for the list at '{path}' of length {len(node)}")
                if last:
                    node[index] = _to_attr(_check_type(path, node[index], value))
                else:
                    node = node[index]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"{source}: override '{key}': '{'.'.join(parts[:depth])}' "
                                  f"is a {type(node).__name__}, not a mapping")
            if part not in node:
                if not schema.allowed_path(cfg, parts[: depth + 1]):
                    near = ", ".join(nearest_names(part, node.keys()))
                    raise ConfigError(f"{source}: override '{key}': no key '{path}' in the "
                                      f"config. Nearest existing keys: {near}")
                if last:
                    node[part] = _to_attr(value)
                    break
                node[part] = AttrDict()
            if last:
                node[part] = _to_attr(_check_type(path, node[part], value))
            else:
                node = node[part]
    return cfg


REQUIRED_SECTIONS = ("MODEL",)


def check_config(cfg: Dict[str, Any], source: str) -> None:
    """Fail early, naming the file and key, on a config that cannot build a model; then check
    every key against the schema and fill the defaults of plain keys."""
    for section in REQUIRED_SECTIONS:
        if section not in cfg:
            raise ConfigError(f"{source}: missing required section '{section}'")
    model = cfg["MODEL"]
    if not isinstance(model, dict) or "framework" not in model:
        raise ConfigError(f"{source}: 'MODEL.framework' is required (e.g. Recognizer3D)")
    for mode, section in (cfg.get("PIPELINE") or {}).items():
        transforms = (section or {}).get("transform") or []
        if not isinstance(transforms, list):
            raise ConfigError(f"{source}: 'PIPELINE.{mode}.transform' must be a list of "
                              f"{{Name: {{kwargs}}}} entries")
        for i, step in enumerate(transforms):
            if not isinstance(step, dict) or len(step) != 1:
                raise ConfigError(f"{source}: 'PIPELINE.{mode}.transform.{i}' must be a "
                                  f"single-key mapping {{Name: {{kwargs}}}}, got {step!r}")
    schema.check_and_fill(cfg, source)


def get_config(fname: str, overrides: Optional[Sequence[str]] = None,
               show: bool = False) -> AttrDict:
    """Read ``fname``, apply ``overrides`` and return the checked config as an :class:`AttrDict`."""
    cfg = _to_attr(_load_yaml(fname))
    override_config(cfg, overrides, source=fname)
    check_config(cfg, fname)
    if show:
        print(dump_config(cfg))
    return cfg


def dump_config(cfg: Dict[str, Any], path: Optional[str] = None) -> str:
    """The config as YAML text; also written (atomically) to ``path`` when given."""
    text = yaml.safe_dump(to_plain(cfg), sort_keys=False, allow_unicode=True)
    if path:
        write_text_atomic(path, text)
    return text
