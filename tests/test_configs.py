"""Every config under configs/ loads, is self-consistent and builds its model; the shipped
SlowFast configs are PaddleVideo's, key for key."""
import fnmatch
import glob
import os
import re

import numpy as np
import paddle
import pytest
import yaml

from paddlevideo.modeling import build_model
from paddlevideo.utils.config import get_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True))
SLOWFAST_DIR = os.path.join(REPO, "configs", "recognition", "slowfast")


def _config_id(path):
    return os.path.relpath(path, REPO)


def _transform(cfg, mode, name):
    for step in cfg.PIPELINE[mode].transform:
        if name in step:
            return step[name] or {}
    raise AssertionError(f"no {name} in PIPELINE.{mode}.transform")


def test_configs_are_found():
    names = {os.path.basename(p) for p in CONFIGS}
    assert {"slowfast.yaml", "slowfast_multigrid.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=_config_id)
def test_config_loads_and_is_consistent(path):
    cfg = get_config(path)
    backbone, head = cfg.MODEL.backbone, cfg.MODEL.head
    assert cfg.MODEL.framework == "Recognizer3D"
    for key in ("alpha", "beta", "width_per_group"):
        assert backbone[key] == head[key], f"MODEL.backbone.{key} != MODEL.head.{key}"
    assert cfg.PIPELINE.train.decode_sampler.num_frames == head.num_frames
    assert _transform(cfg, "train", "MultiCrop").target_size == head.crop_size
    for mode in cfg.PIPELINE:
        assert _transform(cfg, mode, "PackOutput").alpha == backbone.alpha, mode
    metric_classes = cfg.METRIC.get("num_classes", cfg.METRIC.get("num_cls"))
    assert metric_classes == head.num_classes
    if "INFERENCE" in cfg:
        assert cfg.INFERENCE.alpha == backbone.alpha
        assert cfg.INFERENCE.num_frames == head.num_frames


@pytest.mark.parametrize("path", CONFIGS, ids=_config_id)
def test_config_builds_its_model(path):
    cfg = get_config(path)
    paddle.seed(0)
    model = build_model(cfg.MODEL)
    head = cfg.MODEL.head
    width, beta = head.width_per_group, head.beta
    assert model.head.projection.weight.shape == [32 * width + 32 * width // beta,
                                                  head.num_classes]
    if width > 16:
        return  # full-width models are only built here; running them is for benchmarks/
    model.eval()
    frames, crop = head.num_frames, head.crop_size
    fast = paddle.randn([1, 3, frames, crop, crop])
    with paddle.no_grad():
        probs = model([fast[:, :, ::head.alpha], fast], mode="infer").numpy()
    assert probs.shape == (1, head.num_classes)
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-5)


# Values of PaddleVideo's released configs that users' copies rely on.
EXPECTED = {
    "slowfast.yaml": {
        "MODEL.backbone.alpha": 8, "MODEL.backbone.beta": 8, "MODEL.backbone.depth": 50,
        "MODEL.backbone.fusion_kernel_sz": 5, "MODEL.head.num_frames": 32,
        "MODEL.head.crop_size": 224, "MODEL.head.dropout_rate": 0.5,
        "MODEL.head.num_classes": 400, "DATASET.batch_size": 8, "DATASET.num_workers": 8,
        "DATASET.train.format": "SFVideoDataset", "DATASET.test.num_ensemble_views": 10,
        "DATASET.test.num_spatial_crops": 3, "PIPELINE.train.decode_sampler.sampling_rate": 2,
        "PIPELINE.train.transform.0.JitterScale.min_size": 256,
        "PIPELINE.train.transform.0.JitterScale.max_size": 320,
        "PIPELINE.test.transform.0.JitterScale.max_size": 256,
        "PIPELINE.test.transform.1.MultiCrop.target_size": 256,
        "PIPELINE.train.transform.4.Normalization.mean": [0.45, 0.45, 0.45],
        "PIPELINE.train.transform.4.Normalization.std": [0.225, 0.225, 0.225],
        "PIPELINE.train.transform.4.Normalization.tensor_shape": [1, 1, 1, 3],
        "OPTIMIZER.name": "Momentum", "OPTIMIZER.momentum": 0.9,
        "OPTIMIZER.use_nesterov": True, "OPTIMIZER.weight_decay.value": "1e-4",
        "OPTIMIZER.learning_rate.name": "CustomWarmupCosineDecay",
        "OPTIMIZER.learning_rate.iter_step": True,
        "OPTIMIZER.learning_rate.warmup_start_lr": 0.01,
        "OPTIMIZER.learning_rate.warmup_epochs": 34,
        "OPTIMIZER.learning_rate.cosine_base_lr": 0.1,
        "OPTIMIZER.learning_rate.max_epoch": 196, "METRIC.name": "MultiCropMetric",
        "PRECISEBN.preciseBN_interval": 10, "PRECISEBN.num_iters_preciseBN": 200,
        "INFERENCE.name": "SlowFast_Inference_helper", "INFERENCE.target_size": 256,
        "epochs": 196, "save_interval": 10, "val_interval": 10, "model_name": "SlowFast",
    },
    "slowfast_multigrid.yaml": {
        "MODEL.backbone.alpha": 4, "MODEL.backbone.beta": 8,
        "MODEL.backbone.fusion_kernel_sz": 7, "MODEL.head.multigrid_short": True,
        "MODEL.head.num_classes": 400,
        "PIPELINE.test.transform.1.MultiCrop.target_size": 224,
        "OPTIMIZER.learning_rate.name": "CustomWarmupPiecewiseDecay",
        "OPTIMIZER.learning_rate.steps": [0, 94, 154, 196],
        "OPTIMIZER.learning_rate.lrs": [1, 0.1, 0.01, 0.001, 0.0001, 0.00001],
        "OPTIMIZER.learning_rate.step_base_lr": 0.1,
        "OPTIMIZER.learning_rate.warmup_epochs": 34,
        "OPTIMIZER.learning_rate.warmup_start_lr": 0.01,
        "OPTIMIZER.learning_rate.max_epoch": 239,
        "MULTIGRID.LONG_CYCLE": True, "MULTIGRID.SHORT_CYCLE": True,
        "MULTIGRID.epoch_factor": 1.5, "MULTIGRID.bn_base_size": 8, "MULTIGRID.EVAL_FREQ": 3,
        "MULTIGRID.short_cycle_factors": [0.5, 0.7071],
        "PRECISEBN.preciseBN_interval": 20, "epochs": 239,
    },
}


def _lookup(cfg, dotted):
    node = cfg
    for part in dotted.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reference_config_values(name):
    cfg = get_config(os.path.join(SLOWFAST_DIR, name))
    wrong = {key: _lookup(cfg, key) for key, value in EXPECTED[name].items()
             if _lookup(cfg, key) != value}
    assert wrong == {}


def test_multigrid_long_cycle_factors():
    cfg = get_config(os.path.join(SLOWFAST_DIR, "slowfast_multigrid.yaml"))
    factors = [f["value"] if isinstance(f, dict) else f for f in cfg.MULTIGRID.long_cycle_factors]
    assert factors == [[0.25, 0.7071], [0.5, 0.7071], [0.5, 1], [1, 1]]


REFERENCE_DIR = os.path.join(os.path.dirname(REPO), "shared", "reference", "paddlevideo")
LISTED_DIFFERENCE = re.compile(r"^#\s+([+~]) (\S+?):", re.MULTILINE)


def _flatten(node, prefix=""):
    """``{dotted.key: leaf value}``; list items are numbered (``transform.0.JitterScale``)."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    flat = {}
    for key, value in items:
        path = f"{prefix}{key}"
        if isinstance(value, (dict, list)) and value:
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _covered(key, patterns):
    return any(fnmatch.fnmatchcase(key, p) or key.startswith(p + ".") for p in patterns)


@pytest.mark.parametrize("name", ["slowfast.yaml", "slowfast_multigrid.yaml"])
def test_shipped_config_is_paddlevideos_plus_the_listed_differences(name):
    with open(os.path.join(SLOWFAST_DIR, name), encoding="utf-8") as f:
        text = f.read()
    with open(os.path.join(REFERENCE_DIR, name), encoding="utf-8") as f:
        reference = _flatten(yaml.safe_load(f))
    ours = _flatten(yaml.safe_load(text))
    listed = LISTED_DIFFERENCE.findall(text.split("\n\n")[0].split("\nMODEL:")[0])
    added = [key for sign, key in listed if sign == "+"]
    changed = [key for sign, key in listed if sign == "~"]
    assert added, "the header comment lists no additions"
    missing = sorted(set(reference) - set(ours))
    unlisted_additions = sorted(k for k in set(ours) - set(reference) if not _covered(k, added))
    unlisted_changes = sorted(k for k in set(ours) & set(reference)
                              if ours[k] != reference[k] and not _covered(k, changed))
    assert (missing, unlisted_additions, unlisted_changes) == ([], [], [])
    # and every listed difference is one the file really has
    for pattern in added:
        assert any(_covered(k, [pattern]) for k in set(ours) - set(reference)), pattern
    for pattern in changed:
        assert any(_covered(k, [pattern]) and ours[k] != reference[k]
                   for k in set(ours) & set(reference)), pattern
