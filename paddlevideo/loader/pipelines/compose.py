"""Build a pipeline from ``PIPELINE.<mode>``; fuse adjacent steps that have a faster joint form."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping

from ...utils.config import ConfigError
from ...utils.registry import build_from_config
from ..registry import PIPELINES
from .augmentations import (
    CropToPathways,
    Image2Array,
    JitterScale,
    MultiCrop,
    Normalization,
    NormalizeAndPack,
    PackOutput,
    RandomFlip,
    ScaleAndCrop,
)

Step = Callable[[Dict[str, Any]], Dict[str, Any]]


def _build_step(entry: Any, where: str) -> Step:
    """``{'name': X, **kwargs}`` or ``{X: kwargs_or_None}`` → the registered step ``X``."""
    if callable(entry):
        return entry
    if not isinstance(entry, Mapping) or not entry:
        raise ConfigError(f"{where}: a pipeline step must be {{Name: {{kwargs}}}}, got {entry!r}")
    if "name" in entry:
        return build_from_config(dict(entry), PIPELINES)
    if len(entry) != 1:
        raise ConfigError(f"{where}: one step per list item ({{Name: {{kwargs}}}}), got {entry!r}")
    (name, kwargs), = entry.items()
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise ConfigError(f"{where}: arguments of '{name}' must be a mapping, got {kwargs!r}")
    return build_from_config({"name": name, **(kwargs or {})}, PIPELINES)


def _channel_last_normalization(step: Normalization) -> bool:
    shape = list(step.tensor_shape)
    return len(shape) >= 1 and all(s == 1 for s in shape[:-1]) and shape[-1] in (
        len(step.mean), -1)


def fuse_steps(steps: List[Step]) -> List[Step]:
    """Replace ``JitterScale→MultiCrop`` by :class:`ScaleAndCrop`, ``Image2Array(transpose=
    False)→Normalization(channel last)→PackOutput`` by :class:`NormalizeAndPack`, and then
    ``ScaleAndCrop→RandomFlip (optional)→NormalizeAndPack`` by :class:`CropToPathways`.

    The fused steps draw the same random numbers and produce the same layout and values (the
    crop is resampled from the source frame rather than from a resized copy).
    """
    fused: List[Step] = []
    i = 0
    while i < len(steps):
        step, rest = steps[i], steps[i + 1:]
        if isinstance(step, JitterScale) and rest and type(rest[0]) is MultiCrop:
            fused.append(ScaleAndCrop(step, rest[0]))
            i += 2
        elif (type(step) is Image2Array and not step.transpose and len(rest) >= 2
              and type(rest[0]) is Normalization and _channel_last_normalization(rest[0])
              and type(rest[1]) is PackOutput):
            fused.append(NormalizeAndPack(rest[0], rest[1]))
            i += 3
        else:
            fused.append(step)
            i += 1
    return _fuse_crop_to_pathways(fused)


def _fuse_crop_to_pathways(steps: List[Step]) -> List[Step]:
    out: List[Step] = []
    i = 0
    while i < len(steps):
        step = steps[i]
        flip = steps[i + 1] if i + 1 < len(steps) and type(steps[i + 1]) is RandomFlip else None
        j = i + (2 if flip is not None else 1)
        if isinstance(step, ScaleAndCrop) and j < len(steps) and \
                isinstance(steps[j], NormalizeAndPack):
            out.append(CropToPathways(step, flip, steps[j]))
            i = j + 1
        else:
            out.append(step)
            i += 1
    return out


class Compose:
    """Run steps in config order: ``decode_sampler`` (a ``{name: ..., kwargs}`` mapping), then
    each ``transform`` item (``{Name: {kwargs}}``, ``None`` kwargs allowed), i.e. every value of
    ``PIPELINE.<mode>`` in turn, as PaddleVideo does.
    """

    def __init__(self, pipeline_cfg: Mapping[str, Any], fuse: bool = True) -> None:
        steps: List[Step] = []
        for key, value in pipeline_cfg.items():
            if isinstance(value, (list, tuple)):
                steps.extend(_build_step(v, f"{key}[{i}]") for i, v in enumerate(value))
            elif value is not None:
                steps.append(_build_step(value, str(key)))
        self.configured_steps = steps
        self.steps = fuse_steps(steps) if fuse else list(steps)

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        for step in self.steps:
            results = step(results)
        return results

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(type(s).__name__ for s in self.steps) + ")"
