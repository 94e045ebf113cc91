"""Spatial augmentation, conversion and packing steps of the SlowFast pipeline.

Each step is a thin class over :mod:`.functional`: it draws its random numbers (once per clip,
from :func:`.random_state.pipeline_rng`) and calls a pure function.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from ..registry import PIPELINES
from . import functional as F
from .random_state import pipeline_rng


def _short_cycle_size(results: Dict[str, Any], factors: Sequence[float], default: int,
                      configured: int) -> int:
    """Multigrid short cycles 0 and 1 shrink a size to ``round(factor * default)``."""
    idx = results.get("short_cycle_idx")
    if idx in (0, 1):
        return int(round(factors[idx] * default))
    return configured


@PIPELINES.register()
class JitterScale:
    """Resize so the short side is a random integer in ``[min_size, max_size]``, aspect kept.

    In multigrid short cycle 0/1 the lower bound becomes ``round(short_cycle_factors[i] *
    default_min_size)``.

    Reads: ``imgs`` (uint8 ``[T,H,W,C]``), ``short_cycle_idx`` (optional).
    Writes: ``imgs`` (uint8 ``[T,H',W',C]``), ``scale_size`` (the short side drawn).
    """

    def __init__(self, min_size: int, max_size: int,
                 short_cycle_factors: Sequence[float] = (0.5, 0.7071),
                 default_min_size: int = 256) -> None:
        self.min_size, self.max_size = int(min_size), int(max_size)
        self.short_cycle_factors = list(short_cycle_factors)
        self.default_min_size = int(default_min_size)

    def draw_size(self, results: Dict[str, Any], height: int, width: int) -> Tuple[int, int]:
        """Draw the short side and return the resized ``(height, width)``."""
        low = _short_cycle_size(results, self.short_cycle_factors, self.default_min_size,
                                self.min_size)
        size = int(round(pipeline_rng().uniform(low, self.max_size))) \
            if self.max_size > low else low
        results["scale_size"] = size
        return F.short_side_size(height, width, size)

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        frames = results["imgs"]
        new_h, new_w = self.draw_size(results, frames.shape[1], frames.shape[2])
        results["imgs"] = F.resize_clip(frames, new_h, new_w)
        return results


@PIPELINES.register()
class MultiCrop:
    """Square crop of side ``target_size``: random when training; in test mode crop
    ``spatial_sample_index`` of ``spatial_num_clips`` spread along the long side (offsets 0,
    ceil((L - t)/2), L - t for three) and centred on the short side.

    In multigrid short cycle 0/1 the side is ``round(short_cycle_factors[i] *
    default_crop_size)``.

    Reads: ``imgs`` (uint8 ``[T,H,W,C]``), ``spatial_sample_index``, ``spatial_num_clips`` (test),
    ``short_cycle_idx`` (optional).
    Writes: ``imgs`` (uint8 ``[T,t,t,C]``), ``crop_box`` (top, left, height, width).
    """

    def __init__(self, target_size: int, default_crop_size: int = 224,
                 short_cycle_factors: Sequence[float] = (0.5, 0.7071),
                 test_mode: bool = False) -> None:
        self.target_size, self.default_crop_size = int(target_size), int(default_crop_size)
        self.short_cycle_factors = list(short_cycle_factors)
        self.test_mode = test_mode

    def draw_box(self, results: Dict[str, Any], height: int, width: int) -> F.Box:
        size = _short_cycle_size(results, self.short_cycle_factors, self.default_crop_size,
                                 self.target_size)
        if self.test_mode:
            num = int(results.get("spatial_num_clips", 1))
            box = F.test_crop_boxes(height, width, size, num)[
                int(results.get("spatial_sample_index", 0))]
        else:
            offset_y, offset_x = pipeline_rng().uniform(0.0, 1.0, size=2)
            box = F.random_crop_box(height, width, size, offset_y, offset_x)
        results["crop_box"] = box
        return box

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        frames = results["imgs"]
        box = self.draw_box(results, frames.shape[1], frames.shape[2])
        results["imgs"] = F.crop_clip(frames, box)
        return results


class ScaleAndCrop:
    """``JitterScale`` followed by ``MultiCrop`` with the same random draws and the same box, but
    resampling only the cropped region (built by :func:`.compose.fuse_steps`, not by configs).

    Reads/Writes: as the two steps together.
    """

    def __init__(self, scale: JitterScale, crop: MultiCrop) -> None:
        self.scale, self.crop = scale, crop

    def draw(self, results: Dict[str, Any], height: int,
             width: int) -> Tuple[Tuple[int, int], F.Box]:
        """The resized ``(height, width)`` and the crop box in it, drawn in the steps' order."""
        scaled_hw = self.scale.draw_size(results, height, width)
        return scaled_hw, self.crop.draw_box(results, *scaled_hw)

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        frames = results["imgs"]
        scaled_hw, box = self.draw(results, frames.shape[1], frames.shape[2])
        results["imgs"] = F.resized_crop(frames, scaled_hw, box)
        return results


@PIPELINES.register()
class RandomFlip:
    """Mirror the whole clip left↔right with probability ``p``.

    Reads: ``imgs`` (``[T,H,W,C]``). Writes: ``imgs`` (same shape), ``flipped`` (bool).
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def draw(self, results: Dict[str, Any]) -> bool:
        """Draw whether this clip is mirrored and record it in ``results["flipped"]``."""
        flip = bool(pipeline_rng().uniform(0.0, 1.0) < self.p)
        results["flipped"] = flip
        return flip

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        if self.draw(results):
            results["imgs"] = F.horizontal_flip(results["imgs"])
        return results


@PIPELINES.register()
class Image2Array:
    """Frames to one float32 array: ``[T,H,W,C]``, or ``[C,T,H,W]`` with ``transpose=True``.

    Reads: ``imgs`` (uint8 ``[T,H,W,C]`` array or list of ``[H,W,C]`` frames).
    Writes: ``imgs`` (float32).
    """

    def __init__(self, transpose: bool = False) -> None:
        self.transpose = transpose

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        frames = np.asarray(results["imgs"])
        if self.transpose:
            frames = frames.transpose(3, 0, 1, 2)
        results["imgs"] = frames.astype(np.float32)
        return results


@PIPELINES.register()
class Normalization:
    """``(x / 255 - mean) / std`` with ``mean``/``std`` reshaped to ``tensor_shape``
    (``[1,1,1,3]`` for ``[T,H,W,C]`` frames, ``[3,1,1]`` / ``[3,1,1,1]`` for channel-first ones).

    Reads: ``imgs`` (float32 or uint8). Writes: ``imgs`` (float32, same shape).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float],
                 tensor_shape: Optional[Sequence[int]] = (3, 1, 1)) -> None:
        self.mean, self.std = list(mean), list(std)
        self.tensor_shape = list(tensor_shape) if tensor_shape is not None else [-1]
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalization: std must not contain 0, got {self.std}")

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        results["imgs"] = F.normalize(results["imgs"], self.mean, self.std, self.tensor_shape)
        return results


@PIPELINES.register()
class PackOutput:
    """Split a clip into the SlowFast pathways: fast = all T frames, slow = the frames at
    ``linspace(0, T-1, T // alpha)``; both channel-first.

    Reads: ``imgs`` (float32 ``[T,H,W,C]``).
    Writes: ``imgs`` = ``[slow [C,T//alpha,H,W], fast [C,T,H,W]]`` (float32).
    """

    def __init__(self, alpha: int) -> None:
        self.alpha = int(alpha)

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        fast = np.ascontiguousarray(np.asarray(results["imgs"]).transpose(3, 0, 1, 2))
        slow = F.slow_pathway(fast, self.alpha)
        results["imgs"] = [slow, fast]
        return results


class NormalizeAndPack:
    """``Image2Array(transpose=False)`` + channel-last ``Normalization`` + ``PackOutput`` in one
    pass over uint8 frames (built by :func:`.compose.fuse_steps`); same values.

    Reads: ``imgs`` (uint8 ``[T,H,W,C]``). Writes: ``imgs`` = ``[slow, fast]`` as ``PackOutput``.
    """

    def __init__(self, normalization: Normalization, pack: PackOutput) -> None:
        self.mean, self.std, self.alpha = normalization.mean, normalization.std, pack.alpha

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        frames = np.asarray(results["imgs"])
        if frames.dtype != np.uint8:  # only uint8 has the 256-value table; take the long way
            fast = F.normalize(frames.astype(np.float32), self.mean, self.std, [1, 1, 1, -1])
            fast = np.ascontiguousarray(fast.transpose(3, 0, 1, 2))
        else:
            fast = F.normalize_to_channels_first(frames, self.mean, self.std)
        slow = F.slow_pathway(fast, self.alpha)
        results["imgs"] = [slow, fast]
        return results


class CropToPathways:
    """``ScaleAndCrop`` → ``RandomFlip`` (optional) → ``NormalizeAndPack`` frame by frame (built
    by :func:`.compose.fuse_steps`): the same random draws, boxes and values, without a
    full-size intermediate copy of the clip between the steps.

    Reads/Writes: as the steps together (``imgs`` becomes ``[slow, fast]``).
    """

    def __init__(self, scale_crop: ScaleAndCrop, flip: Optional[RandomFlip],
                 pack: NormalizeAndPack) -> None:
        self.scale_crop, self.flip, self.pack = scale_crop, flip, pack

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        frames = results["imgs"]
        if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4:
            for step in (self.scale_crop, self.flip, self.pack):
                if step is not None:
                    results = step(results)
            return results
        scaled_hw, box = self.scale_crop.draw(results, frames.shape[1], frames.shape[2])
        flip = self.flip.draw(results) if self.flip is not None else False
        fast = F.crop_flip_normalize(frames, scaled_hw, box, flip, self.pack.mean, self.pack.std)
        slow = F.slow_pathway(fast, self.pack.alpha)
        results["imgs"] = [slow, fast]
        return results
