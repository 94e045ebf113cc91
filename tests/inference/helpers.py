"""Shared, cached test assets: a small-width SlowFast with non-trivial weights and its exports.

The exports are cached per test session (``functools.cache``) so every test file reuses them.
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Dict

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_4X16 = REPO_ROOT / "configs" / "recognition" / "slowfast" / "slowfast.yaml"
SHARED_VIDEOS = REPO_ROOT.parent / "shared" / "videos"
# Narrow channels, 8 frames of 64x64: the 4x16 architecture at a size that runs in a blink.
SMALL_OVERRIDES = ["MODEL.backbone.width_per_group=8", "MODEL.head.width_per_group=8",
                   "INFERENCE.num_frames=8", "INFERENCE.target_size=64"]


@functools.cache
def work_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="inference_tests_"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def small_config():
    from paddlevideo.utils import get_config

    return get_config(str(CONFIG_4X16), overrides=SMALL_OVERRIDES)


def randomise_weights(model, seed: int = 0) -> None:
    """Give BN statistics and the classifier spread-out values, so the probabilities differ
    clearly between inputs and classes (freshly built, the head gives near-uniform outputs)."""
    import paddle

    rng = np.random.default_rng(seed)
    state = {}
    for name, value in model.state_dict().items():
        shape = value.shape
        if name.endswith("_variance"):
            new = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("_mean"):
            new = rng.normal(0.0, 0.1, shape)
        elif name.startswith("head.projection"):
            # Scaled by the feature count so the top class gets ~0.4-0.5 on real clips at any
            # width: a saturated softmax would magnify rounding differences.
            new = rng.normal(0.0, 0.5 / np.sqrt(shape[0]), shape)
        elif len(shape) == 1:  # BN scale and shift
            new = (1.0 if name.endswith("weight") else 0.0) + rng.normal(0.0, 0.2, shape)
        else:
            continue
        state[name] = paddle.to_tensor(new.astype("float32"))
    model.set_state_dict(state)


@functools.cache
def small_model():
    """The small model in eval mode, and its weights saved as ``small.pdparams``."""
    import paddle

    from paddlevideo.modeling import build_model

    paddle.seed(0)
    model = build_model(small_config().MODEL)
    randomise_weights(model)
    model.eval()
    paddle.save(model.state_dict(), str(work_dir() / "small.pdparams"))
    return model


def small_weights() -> Path:
    small_model()
    return work_dir() / "small.pdparams"


@functools.cache
def small_export(fmt: str) -> Dict[str, str]:
    """Paths of the small model exported in ``fmt`` (pdmodel, json or onnx)."""
    from paddlevideo.inference import export_inference_model

    return export_inference_model(small_model(), small_config(), str(work_dir() / fmt),
                                  "SlowFast", fmt)


@functools.cache
def small_config_file() -> Path:
    """The small config written as YAML, for the command-line tools."""
    from paddlevideo.utils import dump_config

    path = work_dir() / "slowfast_small.yaml"
    dump_config(small_config(), str(path))
    return path


def synthetic_video(path: Path, num_frames: int = 48, seed: int = 1) -> Path:
    """A 96x72 clip of moving noise blobs (enough texture for distinct model outputs)."""
    from tests.conftest import write_video

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (72 + num_frames, 96, 3), dtype=np.uint8)
    frames = np.stack([base[t:t + 72] for t in range(num_frames)])
    return write_video(path, frames, fps=25)
