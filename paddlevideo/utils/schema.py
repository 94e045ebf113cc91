"""What a config may hold: one table for the top-level and section keys, and the registered
constructors' signatures for every part built by name.

A mapping built by name (``MODEL.backbone: {name: ResNetSlowFast, ...}``) may hold exactly the
arguments its registered constructor accepts, so a key added to a constructor is accepted without
editing any list here. Plain sections (``PRECISEBN``, ``MULTIGRID``...) and top-level keys are
described by :class:`Value` entries with their default, kind and bounds; :func:`check_and_fill`
checks a whole config against them and fills the defaults, so the code that reads a config reads
each key without a default of its own.

Registries are looked up by name (:meth:`Registry.named`), so this module imports no domain
package; ``paddlevideo/__init__.py`` imports them all, which registers every part first.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .errors import ConfigError, nearest_names
from .registry import Registry, accepted_arguments

# YAML 1.1 reads "1e-4" (no dot) as a string; such text counts as a number.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def is_number_text(value: Any) -> bool:
    return isinstance(value, str) and bool(_EXPONENT_FLOAT.match(value.strip()))


@dataclass(frozen=True)
class Value:
    """A plain key: its default, its kind (``int``, ``number``, ``bool``, ``str``, ``list``,
    ``any``), optional bounds or choices, and whether it must be present."""

    default: Any = None
    kind: str = "any"
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    choices: Tuple[Any, ...] = ()
    required: bool = False

    def problem(self, value: Any) -> Optional[str]:
        """What is wrong with ``value`` (None: nothing; ``None`` is accepted unless required)."""
        if value is None:
            return "a value" if self.required else None
        kind_ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "number": (isinstance(value, (int, float)) and not isinstance(value, bool))
            or is_number_text(value),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
            "list": isinstance(value, (list, tuple)),
        }.get(self.kind, True)
        if not kind_ok:
            return {"int": "an integer", "number": "a number", "bool": "true or false",
                    "str": "a string", "list": "a list"}[self.kind]
        if self.choices and value not in self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        number = float(value) if self.kind in ("int", "number") else None
        if number is not None and self.minimum is not None and number < self.minimum:
            return f"at least {self.minimum:g}"
        if number is not None and self.maximum is not None and number > self.maximum:
            return f"at most {self.maximum:g}"
        return None


@dataclass(frozen=True)
class Table:
    """A mapping with a fixed set of keys. ``scalar_ok``: a bare value may stand for it
    (``weight_decay: 1e-4`` for ``{name: L2, value: 1e-4}``)."""

    keys: Mapping[str, Node]
    scalar_ok: bool = False


@dataclass(frozen=True)
class Built:
    """A mapping that names a registered constructor under ``key``; its other keys are that
    constructor's arguments, except ``injected`` ones (the builder passes them). ``children``
    describe arguments that are configs themselves."""

    registry: str
    key: str = "name"
    injected: Tuple[str, ...] = ()
    children: Mapping[str, Node] = field(default_factory=dict)
    default_name: Optional[str] = None
    # accept the arguments of every entry of the registry (the builder drops, with a warning,
    # those the named one does not take), so that ``-o ...name=Other`` can switch entries
    any_entry_args: bool = False


@dataclass(frozen=True)
class Steps:
    """A list of ``{StepName: {kwargs}}`` entries, each a registered constructor."""

    registry: str


Node = Union[Value, Table, Built, Steps]

_PIPELINE_MODE = Table({"decode_sampler": Built("pipeline"), "transform": Steps("pipeline")})
_DATASET_MODE = Built("dataset", key="format", injected=("pipeline",))

SCHEMA = Table({
    "MODEL": Built("recognizer", key="framework", children={
        "backbone": Built("backbone"), "head": Built("head"), "loss": Built("loss")}),
    "DATASET": Table({
        "batch_size": Value(kind="int", minimum=1, required=True),
        "num_workers": Value(0, "int", minimum=0),
        "valid_batch_size": Value(None, "int", minimum=1),
        "test_batch_size": Value(None, "int", minimum=1),
        "use_shared_memory": Value(True, "bool"),
        "train": _DATASET_MODE, "valid": _DATASET_MODE, "test": _DATASET_MODE}),
    "PIPELINE": Table({"train": _PIPELINE_MODE, "valid": _PIPELINE_MODE,
                       "test": _PIPELINE_MODE}),
    "OPTIMIZER": Built("optimizer", default_name="Momentum", injected=("parameters",), children={
        # scale_with / reference_batch_size: read by solver/lr_scaling.py, never passed to a
        # schedule (the builder strips them), hence children rather than constructor arguments
        "learning_rate": Built("lr", injected=("num_iters",), any_entry_args=True, children={
            "scale_with": Value("none", "str", choices=("none", "linear")),
            "reference_batch_size": Value(64, "int", minimum=1)}),
        "weight_decay": Table({"name": Value("L2", "str", choices=("L1", "L2")),
                               "value": Value(0.0, "number", minimum=0)}, scalar_ok=True),
        "grad_clip": Table({"name": Value("ClipGradByGlobalNorm", "str"),
                            "clip_norm": Value(1.0, "number", minimum=0)}, scalar_ok=True)}),
    "METRIC": Built("metric", injected=("data_size", "batch_size")),
    "PRECISEBN": Table({"preciseBN_interval": Value(1, "int", minimum=1),
                        "num_iters_preciseBN": Value(200, "int", minimum=1)}),
    "INFERENCE": Table({"name": Value(None, "str"), "num_frames": Value(None, "int", minimum=1),
                        "alpha": Value(None, "int", minimum=1),
                        "target_size": Value(None, "int", minimum=1)}),
    "MULTIGRID": Table({
        "LONG_CYCLE": Value(False, "bool"), "SHORT_CYCLE": Value(False, "bool"),
        "EVAL_FREQ": Value(3, "int", minimum=1),
        "default_batch_size": Value(0, "int", minimum=0),
        "default_temporal_size": Value(0, "int", minimum=0),
        "default_crop_size": Value(0, "int", minimum=0),
        "epoch_factor": Value(1.5, "number", minimum=0),
        "bn_base_size": Value(8, "int", minimum=1),
        "long_cycle_sampling_rate": Value(0, "int", minimum=0),
        "long_cycle_factors": Value([[0.25, 0.5 ** 0.5], [0.5, 0.5 ** 0.5], [0.5, 1.0],
                                     [1.0, 1.0]], "list"),
        "short_cycle_factors": Value([0.5, 0.5 ** 0.5], "list")}),
    "GRADIENT_ACCUMULATION": Table({"global_batch_size": Value(None, "int", minimum=1)}),
    # fine-tuning: backbone stages / BN statistics held fixed for the first epochs
    # (modeling/freezing.py); epochs 0: off
    "FREEZE": Table({"epochs": Value(0, "int", minimum=0), "stages": Value(0, "int", minimum=0,
                                                                         maximum=5),
                     "bn_stats": Value(False, "bool")}),
    "model_name": Value("model", "str"),
    "output_dir": Value(None, "str"),
    "epochs": Value(1, "int", minimum=1),
    "log_interval": Value(10, "int", minimum=1),
    "save_interval": Value(1, "int", minimum=1),
    "val_interval": Value(1, "int", minimum=1),
    "log_level": Value("INFO", "str", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    "seed": Value(1234, "int", minimum=0),
    "resume": Value(None),
    "resume_epoch": Value(0, "int", minimum=0),
    "device": Value(None, "str"),
    # seconds a rank waits in a collective for its peers before it stops with a message
    # naming itself, its node and the collective (utils/dist.py)
    "dist_timeout": Value(1800, "number", minimum=1),
    "to_static": Value(False, "bool"),
    # how the backbone trains (tasks/backbone_paths.py); YAML reads "off" as false: dygraph
    "cpu_fast_path": Value("auto", choices=("auto", "onednn", "dygraph", False)),
    "bad_video_max_fraction": Value(0.05, "number", minimum=0, maximum=1),
    "skip_head": Value(False, "bool"),
    "label_file": Value(None, "str"),
})


def section_defaults(name: str) -> Dict[str, Any]:
    """The defaults of a plain top-level section (e.g. ``MULTIGRID``), for code that must work
    when the config leaves the section out."""
    node = SCHEMA.keys[name]
    assert isinstance(node, Table), name
    return {key: sub.default for key, sub in node.keys.items() if isinstance(sub, Value)}


def _constructor(node: Built, cfg: Any) -> Any:
    """The registered constructor a ``Built`` mapping names, or None when its registry is not
    loaded or the name is unknown (the name itself is checked separately)."""
    registry = Registry.named(node.registry)
    name = cfg.get(node.key, node.default_name) if isinstance(cfg, Mapping) else None
    if registry is None or not isinstance(name, str) or name not in registry:
        return None
    return registry.get(name)


def allowed_keys(node: Node, cfg: Any) -> Optional[List[str]]:
    """The keys a mapping at ``node`` may hold (None: any key; [] for non-mappings)."""
    if isinstance(node, Table):
        return list(node.keys)
    if isinstance(node, Built):
        constructor = _constructor(node, cfg)
        if constructor is None:
            return None
        registry = Registry.named(node.registry)
        constructors = [registry.get(n) for n in registry] if node.any_entry_args else [
            constructor]
        names = [node.key] + [n for n in node.children if n != node.key]
        for entry in constructors:
            accepted = accepted_arguments(entry)
            if accepted is None:
                return None
            names += [n for n in accepted if n not in node.injected and n not in names]
        return names
    return []


def child(node: Node, cfg: Any, part: str) -> Tuple[Optional[Node], Any]:
    """The schema node and config value one path segment below (``None``: no schema there,
    anything goes)."""
    value = None
    if isinstance(cfg, Mapping):
        value = cfg.get(part)
    elif isinstance(cfg, list) and part.lstrip("-").isdigit() and -len(cfg) <= int(part) < len(
            cfg):
        value = cfg[int(part)]
    if isinstance(node, Table):
        return node.keys.get(part), value
    if isinstance(node, Built):
        if part in node.children:
            return node.children[part], value
        return (Value(kind="str") if part == node.key else Value()), value
    if isinstance(node, Steps):
        if isinstance(cfg, Mapping):  # one step: {Name: kwargs}
            registry = Registry.named(node.registry)
            if registry is not None and part in registry:
                return _StepArgs(registry.get(part)), value
            return None, value
        return node, value  # a list index: the same Steps node, at one entry
    if isinstance(node, _StepArgs):
        return Value(), value
    return None, value


@dataclass(frozen=True)
class _StepArgs:
    """The keyword arguments of one pipeline step (its constructor's parameters)."""

    constructor: Any


def allowed_path(cfg: Mapping[str, Any], parts: Sequence[str]) -> bool:
    """Whether the key at ``parts`` may be added to ``cfg`` (for ``-o`` overrides)."""
    node: Optional[Node] = SCHEMA
    value: Any = cfg
    for i, part in enumerate(parts):
        if node is None:
            return False
        names = _names_under(node, value)
        if names is not None and part not in names and not isinstance(value, list):
            return False
        node, value = child(node, value, part)
        if node is None and i < len(parts) - 1:
            return False
    return True


def _names_under(node: Node, cfg: Any) -> Optional[List[str]]:
    if isinstance(node, _StepArgs):
        accepted = accepted_arguments(node.constructor)
        return None if accepted is None else list(accepted)
    if isinstance(node, Steps):
        if isinstance(cfg, Mapping):
            registry = Registry.named(node.registry)
            return None if registry is None else list(registry)
        return None
    return allowed_keys(node, cfg)


def check_and_fill(cfg: Dict[str, Any], source: str) -> None:
    """Check every key and value of ``cfg`` against :data:`SCHEMA` (raising a one-line
    :class:`ConfigError` naming ``source`` and the key) and fill the defaults of plain keys."""
    _check(SCHEMA, cfg, "", source)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _error(source: str, path: str, message: str, **facts: Any) -> ConfigError:
    return ConfigError(f"{source}: '{path}' {message}", file=source, key=path, **facts)


def _check_unknown(mapping: Mapping[str, Any], allowed: Sequence[str], path: str, source: str,
                   owner: str = "") -> None:
    for key in mapping:
        if key not in allowed:
            near = nearest_names(str(key), allowed)
            where = f" ({owner} takes: {', '.join(allowed)})" if owner else ""
            raise _error(source, _join(path, key), f"is not a known key{where}; nearest: "
                         f"{', '.join(near)}", expected="a known key", nearest=near)


def _check(node: Node, value: Any, path: str, source: str) -> None:
    if isinstance(node, Value):
        problem = node.problem(value)
        if problem:
            raise _error(source, path, f"must be {problem}, got {value!r}", expected=problem)
    elif isinstance(node, Table):
        _check_table(node, value, path, source)
    elif isinstance(node, Built):
        _check_built(node, value, path, source)
    elif isinstance(node, Steps):
        for i, step in enumerate(value or []):
            (name, kwargs), = step.items()  # check_config made sure of the shape
            _check_named(node.registry, name, _join(path, i), source)
            constructor = Registry.named(node.registry).get(name)
            accepted = accepted_arguments(constructor)
            if accepted is not None and isinstance(kwargs, Mapping):
                _check_unknown(kwargs, list(accepted), _join(_join(path, i), name), source, name)


def _check_table(node: Table, value: Any, path: str, source: str) -> None:
    if not isinstance(value, Mapping):
        if value is None or node.scalar_ok:
            return
        raise _error(source, path, f"must be a mapping, got {value!r}", expected="a mapping")
    _check_unknown(value, list(node.keys), path, source)
    for key, sub in node.keys.items():
        if isinstance(sub, Value) and key not in value:
            if sub.required:
                raise _error(source, _join(path, key), "is required", expected="a value")
            value[key] = sub.default
        if key in value and (value[key] is not None or isinstance(sub, Value)):
            _check(sub, value[key], _join(path, key), source)


def _check_named(registry_name: str, name: Any, path: str, source: str) -> bool:
    """Check that ``name`` is registered; False when the registry is not loaded."""
    registry = Registry.named(registry_name)
    if registry is None:
        return False
    if name not in registry:
        names = sorted(registry)
        near = nearest_names(str(name), names)
        raise _error(source, path, f"names {registry_name} {name!r}, which is not registered; "
                     f"registered: {', '.join(names)}", expected=f"a {registry_name} name",
                     nearest=near)
    return True


def _check_built(node: Built, value: Any, path: str, source: str) -> None:
    if not isinstance(value, Mapping):
        raise _error(source, path, f"must be a mapping with '{node.key}: <{node.registry} "
                     f"name>', got {value!r}", expected="a mapping")
    name = value.get(node.key, node.default_name)
    if name is None:
        raise _error(source, _join(path, node.key), f"is required (a {node.registry} name)",
                     expected=f"a {node.registry} name")
    if not _check_named(node.registry, name, _join(path, node.key), source):
        return
    allowed = allowed_keys(node, value)
    if allowed is not None:
        _check_unknown(value, allowed, path, source, owner=str(name))
    # Missing required arguments are left to the builder (a BadArgumentsError then): a config
    # may leave out what only training needs and still export or predict.
    for key, sub in node.children.items():
        if isinstance(sub, Value) and key not in value:
            value[key] = sub.default
        if value.get(key) is not None or isinstance(sub, Value):
            _check(sub, value[key], _join(path, key), source)
