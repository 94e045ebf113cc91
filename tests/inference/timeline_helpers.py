"""A long video of three known actions and a small exported model whose answers on it are known.

The video joins three clips of the demo generator's motion classes (2 s each at 30 fps). The
model is the small 4x16 SlowFast with three classes; its backbone keeps the spread-out random
weights of ``helpers.randomise_weights`` and its classifier is solved in closed form (ridge
regression on the pooled features of windows of each clip, one class per clip), so each clip's
windows give that clip's class. The model then goes through the real export and ``Predictor``.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Dict, List

import numpy as np

from tests.inference.helpers import CONFIG_4X16, SMALL_OVERRIDES, randomise_weights, work_dir

CLASSES = ("move_left", "rotate_clockwise", "grow")  # demo classes 0, 4, 6
DEMO_LABELS = (0, 4, 6)
CLIP_FRAMES, FPS, SIDE = 60, 30, 96
BOUNDARIES = (2.0, 4.0)  # seconds where the action changes


def timeline_config():
    from paddlevideo.utils import get_config

    return get_config(str(CONFIG_4X16), overrides=SMALL_OVERRIDES + [
        "MODEL.head.num_classes=3", f"label_file={label_file()}"])


@functools.cache
def label_file() -> Path:
    path = work_dir() / "three_labels.txt"
    path.write_text("".join(f"{i} {name}\n" for i, name in enumerate(CLASSES)))
    return path


@functools.cache
def clip_frames() -> List[np.ndarray]:
    """uint8 ``[60,96,96,3]`` per class, from the demo generator with fixed seeds."""
    from paddlevideo.loader.demo_data import render_video, sample_motion

    clips = []
    for label in DEMO_LABELS:
        rng = np.random.default_rng([7, label])
        params = sample_motion(label, rng, SIDE, SIDE, CLIP_FRAMES)
        clips.append(render_video(params, rng, SIDE, SIDE, CLIP_FRAMES))
    return clips


@functools.cache
def three_action_video() -> Path:
    """The three clips one after another: 180 frames, 6 s, H.264 with its index first (so it
    streams over HTTP and pipes)."""
    from tests.conftest import write_video

    return write_video(work_dir() / "three_actions.mp4", np.concatenate(clip_frames()),
                       fps=FPS, faststart=True)


def _window_features(model, cfg, frames: np.ndarray) -> np.ndarray:
    """Pooled head features ``[positions, C]`` of every window (stride 4 frames) of
    ``frames``, stacked over windows."""
    import paddle

    from paddlevideo.inference.preprocess import ClipPreprocessor
    from paddlevideo.inference.timeline_runner import WindowPreprocessor

    windows = WindowPreprocessor(ClipPreprocessor(cfg))
    plan = windows.plan(FPS, 4 / FPS)
    clips = [windows(frames[plan.frame_indices(k)]) for k in range(
        (len(frames) - int(plan.offsets[-1]) - 1) // 4 + 1)]
    captured = []
    hook = model.head.projection.register_forward_pre_hook(
        lambda layer, inputs: captured.append(inputs[0].numpy()))
    with paddle.no_grad():
        model([paddle.to_tensor(np.stack([c[0] for c in clips])),
               paddle.to_tensor(np.stack([c[1] for c in clips]))], mode="infer")
    hook.remove()
    return captured[0].reshape(-1, captured[0].shape[-1])


def fit_classifier(model, cfg) -> None:
    """Ridge regression of one-hot targets (x8, a confident softmax) on the features of the
    windows of each clip; written into ``head.projection``."""
    features, targets = [], []
    for label, frames in enumerate(clip_frames()):
        feats = _window_features(model, cfg, frames)
        features.append(feats)
        targets.append(np.tile(np.eye(3)[label] * 8.0 - 4.0, (len(feats), 1)))
    x, y = np.concatenate(features), np.concatenate(targets)
    mean = x.mean(axis=0)
    xc = x - mean
    weight = np.linalg.solve(xc.T @ xc + 1e-2 * np.eye(x.shape[1]), xc.T @ y)
    bias = -mean @ weight
    model.head.projection.weight.set_value(weight.astype("float32"))
    model.head.projection.bias.set_value(bias.astype("float32"))


@functools.cache
def three_class_model():
    """The three-class model in eval mode (classifier fitted to the three clips)."""
    import paddle

    from paddlevideo.modeling import build_model

    cfg = timeline_config()
    paddle.seed(0)
    model = build_model(cfg.MODEL)
    randomise_weights(model, seed=3)
    model.eval()
    fit_classifier(model, cfg)
    return model


@functools.cache
def three_class_export(fmt: str = "pdmodel") -> Dict[str, str]:
    """Paths of the exported three-class model (``fmt``: pdmodel, onnx, openvino...) and its
    config YAML (``config``)."""
    from paddlevideo.inference import export_inference_model
    from paddlevideo.utils import dump_config

    cfg = timeline_config()
    folder = "three_class" if fmt == "pdmodel" else f"three_class_{fmt}"
    paths = export_inference_model(three_class_model(), cfg, str(work_dir() / folder),
                                   "SlowFast", fmt)
    config_path = work_dir() / "three_class.yaml"
    dump_config(cfg, str(config_path))
    return dict(paths, config=str(config_path))


def three_class_predictor(batch_size: int = 1):
    from paddlevideo.inference import EngineOptions, Predictor

    paths = three_class_export()
    return Predictor(paths["model"], paths["params"], timeline_config(),
                     engine=EngineOptions(batch_size=batch_size))
