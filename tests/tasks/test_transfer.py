"""Transfer: a SlowFast trained on four motion classes of the demo data, then fine-tuned with
``main.py -w`` on the other four with 4 clips per class, validates clearly better than the same
schedule from scratch.

The source task holds one direction of each of the demo's four motions (left, up, clockwise,
growing), the target the opposite ones (right, down, counter-clockwise, shrinking): telling the
target's classes apart asks for what the source taught the backbone (along which axis, and how,
the shape moves). 16 clips are too few to learn that from scratch, which stays near chance.
Both target runs keep the backbone (weights and BN statistics) frozen for the first half of
their epochs, so the fresh head first learns on stable features; fine-tuned whole from the start,
the 16 clips pulled the backbone away from what it knew (top-1 0.38-0.67 over three seeds).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import pytest

from paddlevideo.loader.demo_data import MOTION_CLASSES, make_demo_dataset
from tests.conftest import REPO_ROOT
from tests.tasks.conftest import DEMO_CONFIG

SOURCE = ("move_left", "move_up", "rotate_clockwise", "grow")
TARGET = ("move_right", "move_down", "rotate_counterclockwise", "shrink")
SEED = 0
# 48-pixel, 32-frame videos, 40-pixel crops: the demo's recipe (8 of 32 frames, AdamW with a
# cosine schedule) at a size that trains 4 x 96 clips for 12 epochs in about a minute
SIDE, CROP = 48, 40
SOURCE_CLIPS, TARGET_CLIPS, VAL_CLIPS = 96, 4, 12  # per class
SOURCE_EPOCHS, TARGET_EPOCHS = 12, 30
SOURCE_LR, TARGET_LR = 3e-3, 5e-3
# the target runs: backbone s1-s5 and its BN statistics fixed for the first half
TARGET_FREEZE = {"FREEZE.epochs": TARGET_EPOCHS // 2, "FREEZE.stages": 5,
                 "FREEZE.bn_stats": True}
VALID_LINE = re.compile(r"\[VALID\] epoch \d+: loss \S+ top1 ([0-9.]+) top5 \S+ \((\d+) samples")


def _write_task(rows: Sequence[str], classes: Sequence[str], per_class: int, path: Path) -> Path:
    """A list of the first ``per_class`` clips of each of ``classes``, relabelled 0..K-1 in that
    order (the demo's ids are the positions in MOTION_CLASSES)."""
    ids = [MOTION_CLASSES.index(name) for name in classes]
    picked: List[str] = []
    for new, old in enumerate(ids):
        clips = [row.rsplit(" ", 1)[0] for row in rows if int(row.rsplit(" ", 1)[1]) == old]
        picked += [f"{clip} {new}" for clip in clips[:per_class]]
    path.write_text("\n".join(picked) + "\n")
    return path


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> Dict[str, Path]:
    """Lists and label files of the source task (4 x 96 clips) and the target (4 x 4), with 12
    validation clips per class each, cut from one seeded 8-class demo data set."""
    root = tmp_path_factory.mktemp("transfer")
    paths = make_demo_dataset(str(root / "demo"), classes=8, train_per_class=SOURCE_CLIPS,
                              val_per_class=VAL_CLIPS, seed=SEED, width=SIDE, height=SIDE)
    train = Path(paths["train_list"]).read_text().split("\n")[:-1]
    val = Path(paths["val_list"]).read_text().split("\n")[:-1]
    out = {}
    for task, classes, per_class in (("source", SOURCE, SOURCE_CLIPS),
                                     ("target", TARGET, TARGET_CLIPS)):
        out[f"{task}_train"] = _write_task(train, classes, per_class, root / f"{task}_train.list")
        out[f"{task}_val"] = _write_task(val, classes, VAL_CLIPS, root / f"{task}_val.list")
        labels = root / f"{task}_labels.txt"
        labels.write_text("".join(f"{i} {name}\n" for i, name in enumerate(classes)))
        out[f"{task}_labels"] = labels
    return out


def _train(tasks: Dict[str, Path], task: str, out: Path, epochs: int, lr: float,
           weights: List[str], extra: Dict[str, object]) -> str:
    """``main.py --validate`` on one task, validated once after the last epoch; returns
    train.log's text."""
    items = {"DATASET.train.file_path": tasks[f"{task}_train"],
             "DATASET.valid.file_path": tasks[f"{task}_val"],
             "DATASET.test.file_path": tasks[f"{task}_val"],
             "label_file": tasks[f"{task}_labels"], "output_dir": out, "seed": SEED,
             "epochs": epochs, "OPTIMIZER.learning_rate.max_epoch": epochs,
             "OPTIMIZER.learning_rate.cosine_base_lr": lr,
             "OPTIMIZER.learning_rate.warmup_start_lr": lr / 10,
             "val_interval": epochs, "save_interval": epochs, "log_interval": 100,
             "PRECISEBN.preciseBN_interval": epochs, "PRECISEBN.num_iters_preciseBN": 4,
             "MODEL.head.crop_size": CROP, "INFERENCE.target_size": CROP,
             "DATASET.num_workers": 0, **extra}
    for mode in ("train", "valid"):
        items[f"PIPELINE.{mode}.transform.0.JitterScale.min_size"] = CROP
        items[f"PIPELINE.{mode}.transform.1.MultiCrop.target_size"] = CROP
    items["PIPELINE.train.transform.0.JitterScale.max_size"] = CROP * 9 // 8  # the demo's 64-72
    items["PIPELINE.valid.transform.0.JitterScale.max_size"] = CROP
    argv = [sys.executable, "main.py", "-c", DEMO_CONFIG, "--validate", *weights]
    for key, value in items.items():
        argv += ["-o", f"{key}={value}"]
    # Paddle computes on one thread unless told: the run uses both cores, as run_demo.py does
    env = dict(os.environ, OMP_NUM_THREADS=str(os.cpu_count() or 1))
    proc = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return (out / "train.log").read_text()


def _top1(log: str, samples: int) -> float:
    """Validation top-1 of the last [VALID] line, checked to cover ``samples`` clips."""
    [*_, (top1, seen)] = VALID_LINE.findall(log)
    assert int(seen) == samples
    return float(top1)


@pytest.mark.slow
def test_fine_tuning_from_four_other_classes_beats_training_from_scratch(tasks, tmp_path):
    source_log = _train(tasks, "source", tmp_path / "source", SOURCE_EPOCHS, SOURCE_LR, [], {})
    source = _top1(source_log, 4 * VAL_CLIPS)
    assert source >= 0.5, f"the source task was not learnt: top1 {source}"
    weights = tmp_path / "source" / f"SlowFastDemo_epoch_{SOURCE_EPOCHS:05d}.pdparams"
    # the same number of classes on both sides: skip_head keeps the source's classifier out
    tuned_log = _train(tasks, "target", tmp_path / "tuned", TARGET_EPOCHS, TARGET_LR,
                       ["-w", str(weights), "-o", "skip_head=True"], TARGET_FREEZE)
    assert f"Loaded weights from {weights}" in tuned_log
    assert "head: skip_head=True: head initialised fresh" in tuned_log
    assert "freeze: stages s1..s5 and BN statistics trainable again from epoch 16" in tuned_log
    scratch_log = _train(tasks, "target", tmp_path / "scratch", TARGET_EPOCHS, TARGET_LR, [],
                         TARGET_FREEZE)
    assert "Loaded weights" not in scratch_log
    tuned, scratch = _top1(tuned_log, 4 * VAL_CLIPS), _top1(scratch_log, 4 * VAL_CLIPS)
    print(f"source {source:.3f}, fine-tuned {tuned:.3f}, from scratch {scratch:.3f}")
    assert tuned >= scratch + 0.2, f"fine-tuned {tuned} vs from scratch {scratch}"
