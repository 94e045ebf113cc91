"""A narrow SlowFast and small input clips that run quickly on CPU (shared by the tests)."""
from typing import Any, Dict

import numpy as np
import paddle

from paddlevideo.modeling import build_model

NUM_CLASSES = 5
NUM_FRAMES = 16
CROP = 64
WIDTH = 8


def small_model_cfg(alpha: int = 4, beta: int = 4, num_classes: int = NUM_CLASSES,
                    crop_size: int = CROP, multigrid_short: bool = False,
                    dropout_rate: float = 0.5, **backbone: Any) -> Dict[str, Any]:
    """A ``MODEL`` section for a narrow SlowFast (width_per_group 8) that runs fast on CPU."""
    return {
        "framework": "Recognizer3D",
        "backbone": {"name": "ResNetSlowFast", "alpha": alpha, "beta": beta,
                     "width_per_group": WIDTH, "fusion_kernel_sz": 5, **backbone},
        "head": {"name": "SlowFastHead", "width_per_group": WIDTH, "alpha": alpha, "beta": beta,
                 "num_classes": num_classes, "num_frames": NUM_FRAMES, "crop_size": crop_size,
                 "dropout_rate": dropout_rate, "multigrid_short": multigrid_short},
    }


def build_small(seed: int = 0, **kwargs: Any) -> paddle.nn.Layer:
    paddle.seed(seed)
    return build_model(small_model_cfg(**kwargs))


def make_inputs(batch: int = 2, alpha: int = 4, crop: int = CROP, frames: int = NUM_FRAMES,
                seed: int = 0):
    """``(slow [N,3,T/alpha,crop,crop], fast [N,3,T,crop,crop], label [N,1])`` float32/int64."""
    rng = np.random.default_rng(seed)
    fast = rng.standard_normal((batch, 3, frames, crop, crop)).astype("float32")
    slow = fast[:, :, ::alpha].copy()
    label = rng.integers(0, NUM_CLASSES, size=(batch, 1)).astype("int64")
    return paddle.to_tensor(slow), paddle.to_tensor(fast), paddle.to_tensor(label)
