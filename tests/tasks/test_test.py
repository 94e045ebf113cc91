import csv

import numpy as np
import pytest

import main as main_script
from paddlevideo.modeling import build_model
from paddlevideo.tasks import test_model as run_test
from paddlevideo.utils import get_config
from paddlevideo.utils.checkpoint import CheckpointError, save
from tests.tasks.conftest import DEMO_CONFIG, tiny_overrides


def _config(tiny_dataset, out, extra=()):
    return get_config(DEMO_CONFIG, tiny_overrides(tiny_dataset, out) + list(extra))


@pytest.fixture(scope="module")
def always_class_zero(tiny_dataset, tmp_path_factory):
    """Weights whose classifier ignores the features and always favours class 0."""
    folder = tmp_path_factory.mktemp("weights")
    model = build_model(_config(tiny_dataset, folder).MODEL)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    state["head.projection.weight"][:] = 0.0
    state["head.projection.bias"][:] = [3.0, 0.0]
    path = str(folder / "zero.pdparams")
    save(state, path)
    return path


def test_video_level_accuracy_of_a_known_model(tiny_dataset, tmp_path, always_class_zero):
    # 5 validation videos (4 of class 0, 1 of class 1) × 2 clips × 3 crops = 30 samples,
    # batch 4: the last batch is partial
    cfg = _config(tiny_dataset, tmp_path, ["DATASET.test_batch_size=4",
                                            f"label_file={tiny_dataset / 'labels.txt'}"])
    (tiny_dataset / "labels.txt").write_text("0 left\n1 right\n")
    results = run_test(cfg, always_class_zero, parallel=False)
    assert results == {"top1": 0.8, "top5": 1.0, "num_videos": 5}
    rows = list(csv.DictReader(open(tmp_path / "test_predictions.csv")))
    assert [row["label"] for row in rows] == ["0", "0", "0", "0", "1"]
    assert {row["top1_id"] for row in rows} == {"0"}
    p0 = np.exp(3.0) / (np.exp(3.0) + 1.0)
    assert float(rows[0]["top1_score"]) == pytest.approx(p0, abs=1e-5)
    assert rows[0]["video"].endswith("val_0.mp4")
    per_class = list(csv.DictReader(open(tmp_path / "test_per_class_accuracy.csv")))
    assert [(r["class_id"], r["class_name"], r["top1"]) for r in per_class] == [
        ("0", "left", "1.0000"), ("1", "right", "0.0000")]


def test_cli_test_run(tiny_dataset, tmp_path, always_class_zero, capsys):
    args = ["--test", "-c", DEMO_CONFIG, "-w", always_class_zero]
    for item in tiny_overrides(tiny_dataset, tmp_path):
        args += ["-o", item]
    assert main_script.main(args) == 0
    assert "avg_acc1= 0.8000" in (tmp_path / "test.log").read_text()


def test_checkpoint_that_does_not_fit_names_the_keys(tiny_dataset, tmp_path, always_class_zero):
    cfg = _config(tiny_dataset, tmp_path, ["MODEL.head.num_classes=3", "METRIC.num_classes=3"])
    with pytest.raises(CheckpointError, match="head.projection.weight"):
        run_test(cfg, always_class_zero, parallel=False)
    with pytest.raises(CheckpointError, match="not found: .*missing.pdparams"):
        run_test(cfg, str(tmp_path / "missing.pdparams"), parallel=False)


def test_cli_reports_config_errors(tmp_path, capsys):
    assert main_script.main(["-c", DEMO_CONFIG, "-o", "DATASET.batch_sise=2"]) == 2
    err = capsys.readouterr().err
    assert "DATASET.batch_sise" in err and "batch_size" in err


def test_metric_and_head_class_counts_must_agree(tiny_dataset, tmp_path, capsys):
    argv = ["--test", "-c", DEMO_CONFIG, "-w", str(tmp_path / "never_read.pdparams")]
    for item in tiny_overrides(tiny_dataset, tmp_path) + ["METRIC.num_classes=3"]:
        argv += ["-o", item]
    assert main_script.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("Config error: METRIC.num_classes (3) differs from MODEL.head.num_classes "
                   "(2); set both to the same value")


def test_backbone_pretrained_file_is_not_read_when_testing(tiny_dataset, tmp_path,
                                                          always_class_zero):
    # as in PaddleVideo's test task: -w holds every weight, MODEL.backbone.pretrained is unused
    cfg = _config(tiny_dataset, tmp_path,
                  [f"MODEL.backbone.pretrained={tmp_path / 'imagenet_never_downloaded.pdparams'}"])
    assert run_test(cfg, always_class_zero, parallel=False)["top1"] == 0.8
