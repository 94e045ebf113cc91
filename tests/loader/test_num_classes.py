"""One number of classes: label file → head and metric; command-line conflicts name both."""
import subprocess
import sys

import pytest

from paddlevideo.loader.num_classes import resolve_num_classes
from paddlevideo.utils.config import ConfigError, get_config
from tests.conftest import REPO_ROOT

SLOWFAST_YAML = str(REPO_ROOT / "configs/recognition/slowfast/slowfast.yaml")


def _labels(tmp_path, count, name="labels.txt"):
    path = tmp_path / name
    path.write_text("".join(f"{i} class {i}\n" for i in range(count)))
    return path


def _resolve(overrides):
    cfg = get_config(SLOWFAST_YAML, overrides)
    count, line = resolve_num_classes(cfg, overrides, SLOWFAST_YAML)
    return cfg, count, line


def test_label_file_sets_head_and_metric(tmp_path):
    labels = _labels(tmp_path, 6)
    cfg, count, line = _resolve([f"label_file={labels}"])
    assert count == 6 and cfg.MODEL.head.num_classes == 6 and cfg.METRIC.num_classes == 6
    assert line == f"classes: 6 (from label_file {labels})"
    # the same number on the command line is fine
    cfg, count, _ = _resolve([f"label_file={labels}", "MODEL.head.num_classes=6"])
    assert count == 6


@pytest.mark.parametrize("key", ["MODEL.head.num_classes", "METRIC.num_classes"])
def test_other_number_on_command_line_names_both(tmp_path, key):
    labels = _labels(tmp_path, 6)
    with pytest.raises(ConfigError) as err:
        _resolve([f"label_file={labels}", f"{key}=5"])
    assert f"-o {key}=5" in str(err.value) and "(6 classes)" in str(err.value)
    assert str(labels) in str(err.value)


def test_without_label_file_metric_follows_head():
    cfg, count, line = _resolve(["MODEL.head.num_classes=6"])
    assert (count, cfg.MODEL.head.num_classes, cfg.METRIC.num_classes) == (6, 6, 6)
    assert "from the command line" in line
    cfg, count, _ = _resolve(["METRIC.num_classes=7"])
    assert (cfg.MODEL.head.num_classes, cfg.METRIC.num_classes) == (7, 7)
    cfg, count, _ = _resolve([])
    assert count == 400


def test_two_numbers_on_command_line_are_an_error():
    with pytest.raises(ConfigError, match=r"^METRIC.num_classes \(5\) differs from "
                                          r"MODEL.head.num_classes \(6\); set both"):
        _resolve(["MODEL.head.num_classes=6", "METRIC.num_classes=5"])


def test_list_label_outside_label_file_names_list_and_line(tmp_path):
    labels = _labels(tmp_path, 3)
    listing = tmp_path / "train.list"
    listing.write_text("a.mp4 0\nb.mp4 2\nc.mp4 4\nd.mp4 1\n")
    with pytest.raises(ConfigError) as err:
        _resolve([f"label_file={labels}", f"DATASET.train.file_path={listing}"])
    message = str(err.value)
    assert f"{listing}:3: label 4 does not fit label_file {labels} (3 classes" in message


def test_label_file_with_bad_line_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("0 a\nb\n")
    with pytest.raises(ConfigError, match=r"label_file: .*bad.txt:2"):
        _resolve([f"label_file={bad}"])


def test_main_stops_in_one_line_before_work(tmp_path):
    labels = _labels(tmp_path, 6)
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "main.py"), "-c", SLOWFAST_YAML, "-o",
         f"label_file={labels}", "-o", "MODEL.head.num_classes=5", "-o",
         f"output_dir={tmp_path / 'out'}"], capture_output=True, text=True, cwd=str(tmp_path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1:] == [
        f"Config error: -o MODEL.head.num_classes=5 differs from label_file {labels} "
        f"(6 classes); leave -o MODEL.head.num_classes out or pass the label file of 5 classes"]
    assert not (tmp_path / "out").exists()
