"""A tiny two-class motion dataset and a tiny SlowFast config for training-loop tests."""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, write_video

DEMO_CONFIG = str(REPO_ROOT / "configs/recognition/slowfast/slowfast_demo.yaml")


def moving_square(direction: int, offset: int, frames: int = 20, size: int = 64) -> np.ndarray:
    """A bright square moving right (direction 1) or left (-1) on a dark noisy background."""
    rng = np.random.default_rng(offset)
    video = rng.integers(0, 40, (frames, size, size, 3), dtype=np.uint8)
    for t in range(frames):
        x = (offset + direction * t * 2) % (size - 10)
        video[t, 18:30, x:x + 10] = 230
    return video


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """``train.list`` (8 videos), ``val.list`` (5 videos: 4 of class 0, 1 of class 1)."""
    root = tmp_path_factory.mktemp("tiny_dataset")
    lines = {"train": [], "val": []}
    for split, labels in (("train", [0, 1] * 4), ("val", [0, 0, 0, 0, 1])):
        for i, label in enumerate(labels):
            path = write_video(root / f"{split}_{i}.mp4",
                               moving_square(1 if label else -1, offset=3 * i + len(split)))
            lines[split].append(f"{path} {label}")
    for split, rows in lines.items():
        (root / f"{split}.list").write_text("\n".join(rows) + "\n")
    return root


def tiny_overrides(data: Path, out: Path, epochs: int = 2) -> List[str]:
    """Overrides turning the demo config into a 2-class, 8-frame, 32-pixel model."""
    items = {
        "MODEL.head.num_classes": 2, "METRIC.num_classes": 2, "MODEL.head.num_frames": 8,
        "MODEL.head.crop_size": 32, "DATASET.batch_size": 2, "DATASET.num_workers": 0,
        "DATASET.train.file_path": data / "train.list",
        "DATASET.valid.file_path": data / "val.list",
        "DATASET.test.file_path": data / "val.list", "DATASET.test.num_ensemble_views": 2,
        "METRIC.num_ensemble_views": 2, "epochs": epochs,
        "OPTIMIZER.learning_rate.max_epoch": epochs, "output_dir": out, "save_interval": 1,
        "val_interval": 1, "log_interval": 2, "PRECISEBN.preciseBN_interval": 1,
        "PRECISEBN.num_iters_preciseBN": 2, "INFERENCE.num_frames": 8,
        "INFERENCE.target_size": 32,
        # the plain kernels: oneDNN's convolution gradients are not bitwise repeatable from one
        # process to the next, and these tests compare runs exactly (test_cpu_fast_path.py
        # trains the oneDNN path)
        "cpu_fast_path": "dygraph",
        "label_file": "null",  # the demo's 8-class label file would set the class count
    }
    for mode in ("train", "valid", "test"):
        items[f"PIPELINE.{mode}.decode_sampler.num_frames"] = 8
        items[f"PIPELINE.{mode}.transform.0.JitterScale.min_size"] = 32
        items[f"PIPELINE.{mode}.transform.0.JitterScale.max_size"] = 32
        items[f"PIPELINE.{mode}.transform.1.MultiCrop.target_size"] = 32
    return [f"{key}={value}" for key, value in items.items()]
