"""Transfer: a backbone trained on four motion classes, fine-tuned with -w on the other four
with 4 clips per class, validates clearly better than the same schedule from scratch."""
import numpy as np
import pytest

from paddlevideo.loader.demo_data import MOTION_CLASSES, make_demo_dataset
from paddlevideo.tasks.train import train_model
from paddlevideo.utils import get_config
from tests.tasks.conftest import DEMO_CONFIG

# the source task sees one direction of each motion, the target the opposite one: what the
# backbone learnt (which way things move) is what the target needs
SOURCE = ("move_left", "move_up", "rotate_clockwise", "grow")
TARGET = ("move_right", "move_down", "rotate_counterclockwise", "shrink")
SIDE, FRAMES, CROP = 40, 16, 32
SOURCE_CLIPS, TARGET_CLIPS, VAL_CLIPS = 48, 4, 8  # per class


@pytest.fixture(scope="module")
def motion_clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    paths = make_demo_dataset(str(root / "videos"), classes=8, train_per_class=SOURCE_CLIPS,
                              val_per_class=VAL_CLIPS, width=SIDE, height=SIDE, frames=FRAMES)
    rows = {split: [line.rsplit(" ", 1) for line in open(paths[f"{split}_list"]).read().split(
        "\n") if line] for split in ("train", "val")}

    def write(name, classes, split, per_class):
        ids = [MOTION_CLASSES.index(c) for c in classes]
        kept = [(p, ids.index(int(label))) for p, label in rows[split] if int(label) in ids]
        picked = [f"{p} {new}" for new in range(len(ids)) for p, label in kept if label == new]
        picked = [line for new in range(len(ids))
                  for line in [r for r in picked if r.endswith(f" {new}")][:per_class]]
        (root / name).write_text("\n".join(picked) + "\n")
        return root / name

    labels = root / "target_labels.txt"
    labels.write_text("".join(f"{i} {c}\n" for i, c in enumerate(TARGET)))
    return {"source_train": write("source_train.list", SOURCE, "train", SOURCE_CLIPS),
            "source_val": write("source_val.list", SOURCE, "val", VAL_CLIPS),
            "target_train": write("target_train.list", TARGET, "train", TARGET_CLIPS),
            "target_val": write("target_val.list", TARGET, "val", VAL_CLIPS), "labels": labels}


def _overrides(train_list, val_list, out, epochs, lr):
    items = {"DATASET.train.file_path": train_list, "DATASET.valid.file_path": val_list,
             "DATASET.test.file_path": val_list, "DATASET.batch_size": 8,
             "MODEL.backbone.width_per_group": 4, "MODEL.head.width_per_group": 4,
             "DATASET.num_workers": 0, "output_dir": out, "epochs": epochs,
             "OPTIMIZER.learning_rate.max_epoch": epochs,
             "OPTIMIZER.learning_rate.warmup_epochs": 0,
             "OPTIMIZER.learning_rate.cosine_base_lr": lr,
             "OPTIMIZER.learning_rate.warmup_start_lr": lr,
             "MODEL.head.num_frames": 8, "MODEL.head.crop_size": CROP, "MODEL.head.num_classes": 4,
             "METRIC.num_classes": 4, "label_file": "null", "val_interval": epochs,
             "save_interval": epochs, "log_interval": 50, "PRECISEBN.preciseBN_interval": epochs,
             "PRECISEBN.num_iters_preciseBN": 4, "cpu_fast_path": "dygraph"}
    for mode in ("train", "valid"):
        items[f"PIPELINE.{mode}.transform.0.JitterScale.min_size"] = CROP
        items[f"PIPELINE.{mode}.transform.0.JitterScale.max_size"] = CROP
        items[f"PIPELINE.{mode}.transform.1.MultiCrop.target_size"] = CROP
        items[f"PIPELINE.{mode}.decode_sampler.sampling_rate"] = 2
    return [f"{k}={v}" for k, v in items.items()]


def _train(clips, train, val, out, epochs, lr, weights=None):
    cfg = get_config(DEMO_CONFIG, _overrides(clips[train], clips[val], out, epochs, lr))
    return train_model(cfg, weights=weights, parallel=False, validate=True, seed=3)


def test_fine_tuning_beats_training_from_scratch(motion_clips, tmp_path):
    source = _train(motion_clips, "source_train", "source_val", tmp_path / "source", 8, 3e-3)
    assert source["best_top1"] >= 0.6, "the source task was not learnt"
    weights = str(tmp_path / "source" / "SlowFastDemo_epoch_00008.pdparams")
    tuned = _train(motion_clips, "target_train", "target_val", tmp_path / "tuned", 6, 1e-3,
                   weights=weights)
    scratch = _train(motion_clips, "target_train", "target_val", tmp_path / "scratch", 6, 1e-3)
    print(source["best_top1"], tuned["best_top1"], scratch["best_top1"])
    assert tuned["best_top1"] >= scratch["best_top1"] + 0.2
    assert np.isfinite(tuned["best_top1"])
