"""PaddleVideo's own slowfast.yaml and slowfast_multigrid.yaml, unchanged, through every command
of its SlowFast doc and usage guide (train, --validate, resume, fine-tune, --test -w,
--multigrid, export, predict); only ``-o`` overrides for paths and sizes."""
import csv
import shutil

import numpy as np
import pytest

import main as main_script
from paddlevideo.utils.checkpoint import load
from tests.conftest import REPO_ROOT, load_script, write_video
from tests.tasks.conftest import moving_square

REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "paddlevideo"
SLOWFAST = str(REFERENCE / "slowfast.yaml")
MULTIGRID = str(REFERENCE / "slowfast_multigrid.yaml")


def load_tool(name):
    return load_script(f"tools/{name}.py")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """2-second clips: ``videos/`` holds the ones the lists name relatively (joined to
    ``data_prefix``); ``val.list`` also names one video by its absolute path elsewhere."""
    root = tmp_path_factory.mktemp("k400_like")
    (root / "videos").mkdir()
    (root / "elsewhere").mkdir()
    rows = {"train": [], "val": []}
    for split, labels in (("train", [0, 1, 0, 1]), ("val", [0, 1])):
        for i, label in enumerate(labels):
            name = f"{split}_{i}.mp4"
            write_video(root / "videos" / name, moving_square(1 if label else -1, 3 * i,
                                                              frames=60, size=48))
            rows[split].append(f"{name} {label}")
    absolute = write_video(root / "elsewhere" / "val_abs.mp4", moving_square(1, 7, 60, 48))
    rows["val"].append(f"{absolute} 1")
    for split, lines in rows.items():
        (root / f"{split}.list").write_text("\n".join(lines) + "\n")
    (root / "labels.txt").write_text("0 move_left\n1 move_right\n")
    return root


def sizes(frames=8):
    """Overrides shrinking the model and the clips: width 8, 2 classes, ``frames`` frames of
    32 pixels."""
    items = {"MODEL.backbone.width_per_group": 8, "MODEL.head.width_per_group": 8,
             "MODEL.head.num_classes": 2, "MODEL.head.num_frames": frames,
             "MODEL.head.crop_size": 32, "INFERENCE.num_frames": frames,
             "INFERENCE.target_size": 32}
    return [f"{key}={value}" for key, value in items.items()]


def overrides(data, out, frames=8, epochs=2):
    items = {"METRIC.num_classes": 2, "DATASET.batch_size": 2, "DATASET.num_workers": 0,
             "DATASET.test.num_ensemble_views": 2, "METRIC.num_ensemble_views": 2,
             "epochs": epochs, "OPTIMIZER.learning_rate.max_epoch": epochs,
             "OPTIMIZER.learning_rate.warmup_epochs": 1, "output_dir": out,
             "save_interval": 1, "val_interval": 1, "PRECISEBN.preciseBN_interval": 1,
             "PRECISEBN.num_iters_preciseBN": 2,
             # the plain kernels: the resume test compares runs exactly, and oneDNN's gradient
             # sums are not bitwise repeatable (tests/tasks/test_backbone_paths_training.py
             # trains this file on the oneDNN path)
             "cpu_fast_path": "dygraph"}
    for mode, split in (("train", "train"), ("valid", "val"), ("test", "val")):
        items[f"DATASET.{mode}.data_prefix"] = data / "videos"
        items[f"DATASET.{mode}.file_path"] = data / f"{split}.list"
        items[f"PIPELINE.{mode}.decode_sampler.num_frames"] = frames
        items[f"PIPELINE.{mode}.transform.0.JitterScale.min_size"] = 32
        items[f"PIPELINE.{mode}.transform.0.JitterScale.max_size"] = 32
        items[f"PIPELINE.{mode}.transform.1.MultiCrop.target_size"] = 32
    argv = []
    for item in sizes(frames) + [f"{key}={value}" for key, value in items.items()]:
        argv += ["-o", item]
    return argv


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("slowfast")
    assert main_script.main(["--validate", "-c", SLOWFAST] + overrides(data, out)) == 0
    return out


def test_train_with_validation(trained):
    log = (trained / "train.log").read_text()
    assert "[VALID] epoch 1:" in log and "[VALID] epoch 2:" in log
    assert "(3 samples)" in log  # two relative paths and the absolute one
    for name in ("SlowFast_epoch_00001.pdparams", "SlowFast_epoch_00002.pdopt",
                 "SlowFast_best.pdparams"):
        assert (trained / name).is_file(), name


def test_test_with_weights_sets_test_mode_and_honours_test_batch_size(data, trained, tmp_path):
    argv = ["--test", "-c", SLOWFAST, "-w", str(trained / "SlowFast_best.pdparams")]
    argv += overrides(data, tmp_path) + ["-o", "DATASET.test_batch_size=4"]
    assert main_script.main(argv) == 0
    log = (tmp_path / "test.log").read_text()
    assert "on 3 videos × 6 views, batch size 4" in log  # 2 clips × 3 crops of each video
    assert "[TEST] finished" in log and "over 3 videos" in log
    with open(tmp_path / "test_predictions.csv", newline="") as f:
        videos = [row["video"] for row in csv.DictReader(f)]
    assert videos == [str(data / "videos" / "val_0.mp4"), str(data / "videos" / "val_1.mp4"),
                      str(data / "elsewhere" / "val_abs.mp4")]


def test_resume_continues_to_the_same_weights(data, trained, tmp_path):
    for suffix in ("pdparams", "pdopt"):
        shutil.copy(trained / f"SlowFast_epoch_00001.{suffix}", tmp_path)
    argv = ["--validate", "-c", SLOWFAST] + overrides(data, tmp_path) + ["-o", "resume_epoch=1"]
    assert main_script.main(argv) == 0
    expected = load(str(trained / "SlowFast_epoch_00002.pdparams"))
    resumed = load(str(tmp_path / "SlowFast_epoch_00002.pdparams"))
    for key in ("head.projection.weight", "backbone.s1.pathway0_stem._bn._mean"):
        np.testing.assert_allclose(resumed[key], expected[key], rtol=1e-6, atol=1e-7)


def test_fine_tune_from_weights(data, trained, tmp_path):
    weights = str(trained / "SlowFast_best.pdparams")
    argv = ["--validate", "-c", SLOWFAST, f"--weights={weights}"]
    assert main_script.main(argv + overrides(data, tmp_path, epochs=1)) == 0
    assert f"Loaded weights from {weights}" in (tmp_path / "train.log").read_text()


def test_multigrid_training(data, tmp_path):
    # 16 frames: the multigrid file's shortest long-cycle clip (a quarter) still has a slow frame
    argv = ["--validate", "--multigrid", "-c", MULTIGRID] + overrides(data, tmp_path, frames=16)
    assert main_script.main(argv) == 0
    log = (tmp_path / "train.log").read_text()
    assert "Multigrid schedule:" in log and "Training finished" in log
    assert sorted(p.name for p in tmp_path.glob("SlowFast_epoch_*.pdparams"))[-1] == \
        "SlowFast_epoch_00003.pdparams"  # 2 base epochs × epoch_factor 1.5


def test_export_then_predict(data, trained, tmp_path, capsys):
    out_dir = tmp_path / "inference" / "SlowFast"
    export_argv = ["-c", SLOWFAST, "-p", str(trained / "SlowFast_best.pdparams"),
                   "-o", str(out_dir)]
    for item in sizes():
        export_argv += ["--override", item]
    assert load_tool("export_model").main(export_argv) == 0
    video = str(data / "videos" / "val_1.mp4")
    predict_argv = ["--input_file", video, "--config", SLOWFAST,
                    "--model_file", str(out_dir / "SlowFast.pdmodel"),
                    "--params_file", str(out_dir / "SlowFast.pdiparams"),
                    "--use_gpu=True", "--use_tensorrt=False", "--label_file",
                    str(data / "labels.txt")]
    for item in sizes():
        predict_argv += ["-o", item]
    capsys.readouterr()
    assert load_tool("predict").main(predict_argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"Current video file: {video}"
    assert lines[1] in ("\ttop-1 class: 0", "\ttop-1 class: 1")
    assert lines[3] == "\ttop-1 class name: " + ("move_left", "move_right")[int(lines[1][-1])]


def test_an_older_release_copy_tests_too(data, trained, tmp_path):
    """PaddleVideo's release branches spelled some keys differently: ``METRIC.num_cls``,
    ``DATASET.test.test_mode`` in the file, ``log_interval``, no ``data_prefix``/``INFERENCE``."""
    import yaml

    with open(SLOWFAST, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    cfg["METRIC"]["num_cls"] = cfg["METRIC"].pop("num_classes")
    cfg["DATASET"]["test"]["test_mode"] = True
    for mode in ("train", "valid", "test"):
        del cfg["DATASET"][mode]["data_prefix"]
    del cfg["INFERENCE"]
    cfg["log_interval"] = 1
    older = tmp_path / "slowfast_release.yaml"
    older.write_text(yaml.safe_dump(cfg, sort_keys=False))
    argv = ["--test", "-c", str(older), "-w", str(trained / "SlowFast_best.pdparams")]
    items = overrides(data, tmp_path)[1::2]  # the values after each -o
    for item in items:
        if not item.startswith("INFERENCE."):
            argv += ["-o", item.replace("METRIC.num_classes", "METRIC.num_cls")]
    assert main_script.main(argv) == 0
    assert "over 3 videos" in (tmp_path / "test.log").read_text()
