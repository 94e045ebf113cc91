"""Count multiply-accumulates (MACs) of a paddle model by running it once with forward hooks.

Only convolutions and fully-connected layers are counted — they are >99% of a SlowFast's compute
and what published "GFLOPs" of video models (which are really GMACs) count:

- ``Conv1D/2D/3D``: output elements × (input channels / groups) × kernel volume;
- ``Linear``: input features × output features, for every output row.

Normalisation, activations and pooling are left out.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import paddle
import paddle.nn as nn

__all__ = ["MacCount", "count_gmacs", "count_macs", "slowfast_inputs"]

_CONV_TYPES = (nn.Conv1D, nn.Conv2D, nn.Conv3D)


@dataclass
class MacCount:
    """MACs of one forward: ``total`` for the whole batch, ``by_type`` per layer class name,
    ``batch_size`` (first dimension of the first input)."""
    total: int = 0
    batch_size: int = 1
    by_type: Dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def gmacs_per_sample(self) -> float:
        return self.total / self.batch_size / 1e9


def _conv_macs(layer: nn.Layer, output: paddle.Tensor) -> int:
    # weight: [C_out, C_in / groups, *kernel]; each output element needs C_in/groups × kernel MACs
    per_output = int(np.prod(layer.weight.shape[1:]))
    return int(np.prod(output.shape)) * per_output


def _linear_macs(layer: nn.Layer, output: paddle.Tensor) -> int:
    in_features, out_features = layer.weight.shape
    rows = int(np.prod(output.shape[:-1]))
    return rows * in_features * out_features


def _first_tensor(inputs: Any) -> Optional[paddle.Tensor]:
    if isinstance(inputs, paddle.Tensor):
        return inputs
    if isinstance(inputs, (list, tuple)):
        for item in inputs:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def count_macs(model: nn.Layer, *args: Any, **kwargs: Any) -> MacCount:
    """Run ``model(*args, **kwargs)`` once (eval mode, no grad) and count its MACs.

    Example: ``count_macs(recognizer, [slow, fast], mode="infer").gmacs_per_sample``.
    The model's train/eval mode is restored afterwards.
    """
    count = MacCount()
    first = _first_tensor(list(args) + list(kwargs.values()))
    count.batch_size = int(first.shape[0]) if first is not None and first.ndim > 0 else 1

    def make_hook(counter: Callable[[nn.Layer, paddle.Tensor], int]) -> Callable:
        def hook(layer: nn.Layer, _inputs: Any, output: paddle.Tensor) -> None:
            macs = counter(layer, output)
            count.total += macs
            count.by_type[type(layer).__name__] += macs
        return hook

    handles: List[Any] = []
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, _CONV_TYPES):
            handles.append(layer.register_forward_post_hook(make_hook(_conv_macs)))
        elif isinstance(layer, nn.Linear):
            handles.append(layer.register_forward_post_hook(make_hook(_linear_macs)))
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
        if was_training:
            model.train()
    count.by_type = dict(count.by_type)
    return count


def count_gmacs(model: nn.Layer, *args: Any, **kwargs: Any) -> float:
    """GMACs per sample (clip) of one forward; see :func:`count_macs`."""
    return count_macs(model, *args, **kwargs).gmacs_per_sample


def slowfast_inputs(num_frames: int, crop_size: int, alpha: int, batch_size: int = 1,
                    seed: Optional[int] = 0) -> List[paddle.Tensor]:
    """Random ``[slow [N,3,T/alpha,S,S], fast [N,3,T,S,S]]`` float32 inputs for a SlowFast."""
    rng = np.random.default_rng(seed)
    fast = rng.standard_normal((batch_size, 3, num_frames, crop_size, crop_size),
                               dtype=np.float32)
    slow = fast[:, :, ::alpha]
    return [paddle.to_tensor(np.ascontiguousarray(slow)), paddle.to_tensor(fast)]

