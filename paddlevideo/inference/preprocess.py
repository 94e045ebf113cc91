"""Deterministic clip preprocessing for prediction, built from the config's test pipeline.

The steps are the test pipeline's own classes (``DecodeSampler`` in test mode, ``JitterScale``,
``MultiCrop`` in test mode, ``Image2Array``, ``Normalization``, ``PackOutput``) with the clip
geometry set to the exported model's inputs, so prediction sees exactly what testing sees.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np

from ..loader.builder import build_pipeline
from ..utils.config import to_plain
from .export import InputShapes, input_shapes_from_config

DEFAULT_MEAN = [0.45, 0.45, 0.45]
DEFAULT_STD = [0.225, 0.225, 0.225]
DROPPED_STEPS = ("RandomFlip",)  # random steps never belong in prediction


def _default_test_pipeline(shapes: InputShapes) -> Dict[str, Any]:
    return {
        "decode_sampler": {"name": "DecodeSampler", "num_frames": shapes.num_frames,
                           "sampling_rate": 2, "test_mode": True},
        "transform": [
            {"JitterScale": {"min_size": shapes.target_size, "max_size": shapes.target_size}},
            {"MultiCrop": {"target_size": shapes.target_size, "test_mode": True}},
            {"Image2Array": {"transpose": False}},
            {"Normalization": {"mean": DEFAULT_MEAN, "std": DEFAULT_STD,
                               "tensor_shape": [1, 1, 1, 3]}},
            {"PackOutput": {"alpha": shapes.alpha}},
        ],
    }


def predict_pipeline_config(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """``PIPELINE.test`` with test mode on, random steps removed, and frames, short side, crop and
    alpha taken from the model inputs (``INFERENCE``)."""
    shapes = input_shapes_from_config(cfg)
    test_cfg = ((cfg.get("PIPELINE") or {}).get("test"))
    if not test_cfg:
        return _default_test_pipeline(shapes)
    pipeline = copy.deepcopy(to_plain(test_cfg))
    sampler = pipeline.setdefault("decode_sampler", {"name": "DecodeSampler",
                                                     "sampling_rate": 2})
    sampler.update(num_frames=shapes.num_frames, test_mode=True)
    transforms = []
    for item in pipeline.get("transform") or []:
        (name, kwargs), = item.items()
        if name in DROPPED_STEPS:
            continue
        kwargs = dict(kwargs or {})
        if name == "JitterScale":
            kwargs.update(min_size=shapes.target_size, max_size=shapes.target_size)
        elif name == "MultiCrop":
            kwargs.update(target_size=shapes.target_size, test_mode=True)
        elif name == "PackOutput":
            kwargs.update(alpha=shapes.alpha)
        transforms.append({name: kwargs})
    pipeline["transform"] = transforms
    return pipeline


def view_position(view: int, num_views: int) -> Tuple[int, int]:
    """``(temporal_sample_index, temporal_num_clips)`` for view ``view`` of ``num_views``.

    View ``i`` of ``n`` starts at ``(i + 1/2) / n`` of the video's free range (the part a clip can
    start in), so one view is the centred clip and several are spread evenly with equal margins.
    The test-mode sampler places index ``j`` of ``m`` at ``j / m``; index ``2i+1`` of ``2n`` is
    that position.
    """
    return 2 * view + 1, 2 * num_views


class ClipPreprocessor:
    """``path → (slow [V,3,T/alpha,S,S], fast [V,3,T,S,S])`` float32 for ``num_views`` centre-
    cropped clips spread over the video. Raises ``VideoDecodeError`` (naming the file) on a video
    that cannot be read."""

    def __init__(self, cfg: Mapping[str, Any], num_views: int = 1) -> None:
        if num_views < 1:
            raise ValueError(f"num_views must be at least 1, got {num_views}")
        self.num_views = int(num_views)
        self.shapes = input_shapes_from_config(cfg)
        self.pipeline = build_pipeline(predict_pipeline_config(cfg))

    def sample(self, path: str, view: int) -> Dict[str, Any]:
        """The pipeline input for one view: centre crop (spatial crop 0 of 1)."""
        temporal_index, temporal_clips = view_position(view, self.num_views)
        return {"filename": path, "temporal_sample_index": temporal_index,
                "temporal_num_clips": temporal_clips, "spatial_sample_index": 0,
                "spatial_num_clips": 1}

    def __call__(self, path: str) -> Tuple[np.ndarray, np.ndarray]:
        slow_views: List[np.ndarray] = []
        fast_views: List[np.ndarray] = []
        for view in range(self.num_views):
            slow, fast = self.pipeline(self.sample(path, view))["imgs"]
            slow_views.append(slow)
            fast_views.append(fast)
        return np.stack(slow_views), np.stack(fast_views)
