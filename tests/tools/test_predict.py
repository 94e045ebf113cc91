"""``tools/predict.py``: PaddleVideo's command and output lines, folders, JSON, errors."""
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from tests.inference.helpers import (
    REPO_ROOT,
    SHARED_VIDEOS,
    small_config,
    small_config_file,
    small_export,
    synthetic_video,
)

TOOL = REPO_ROOT / "tools" / "predict.py"
EXAMPLE = str(SHARED_VIDEOS / "example.avi")


def load_tool():
    spec = importlib.util.spec_from_file_location("predict_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_args(fmt="pdmodel"):
    paths = small_export(fmt)
    args = ["--config", str(small_config_file()), "--model_file", paths["model"]]
    return args + (["--params_file", paths["params"]] if "params" in paths else [])


def expected(path, top_k=1, fmt="pdmodel"):
    from paddlevideo.inference import Predictor

    paths = small_export(fmt)
    return Predictor(paths["model"], paths.get("params"), small_config(),
                     top_k=top_k).predict(path)


@pytest.mark.slow
def test_documented_command_runs_as_written():
    proc = subprocess.run(
        [sys.executable, str(TOOL), "--input_file", EXAMPLE] + model_args()
        + ["--use_gpu=True", "--use_tensorrt=False"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    [(class_id, name, score)] = expected(EXAMPLE)
    lines = proc.stdout.splitlines()
    assert lines[0] == f"Current video file: {EXAMPLE}"
    assert lines[1] == f"\ttop-1 class: {class_id}"
    assert re.fullmatch(r"\ttop-1 score: \S+", lines[2])
    assert abs(float(lines[2].split(": ")[1]) - score) < 1e-6
    assert lines[3] == f"\ttop-1 class name: {name}"
    warnings = [ln for ln in proc.stderr.splitlines() if "use_gpu" in ln]
    assert warnings == ["Warning: use_gpu=True but this Paddle has no usable GPU; "
                        "running on the CPU"]


def test_boolean_flags_accept_paddlevideo_spellings():
    tool = load_tool()
    base = ["--input_file", "x", "--config", "c", "--model_file", "m"]
    args = tool.parse_args(base + ["--use_gpu=False", "--enable_mkldnn", "true"])
    assert args.use_gpu is False and args.enable_mkldnn is True
    with pytest.raises(SystemExit):
        tool.parse_args(base + ["--use_gpu=maybe"])


def test_folder_with_a_corrupt_video(tmp_path, capsys):
    folder = tmp_path / "videos"
    folder.mkdir()
    os.symlink(EXAMPLE, folder / "a_example.avi")
    synthetic_video(folder / "b_generated.mp4")
    (folder / "c_broken.mp4").write_bytes(b"\x00\x01corrupt" * 100)
    (folder / "notes.txt").write_text("not a video")
    output = tmp_path / "results.json"
    code = load_tool().main(["--input_file", str(folder), "--use_gpu=False", "--top_k", "2",
                             "--batch_size", "2", "--output", str(output)] + model_args())
    assert code == 1
    captured = capsys.readouterr()
    assert f"Error: cannot predict {folder / 'c_broken.mp4'}" in captured.err
    assert "1 of 3 videos failed" in captured.err
    assert "3/3" in captured.err  # the progress bar reached the end
    assert captured.out.count("Current video file:") == 2
    results = json.loads(output.read_text())
    good = [str(folder / "a_example.avi"), str(folder / "b_generated.mp4")]
    assert [r["file"] for r in results["results"]] == good
    for record, path in zip(results["results"], good):
        want = expected(path, top_k=2)
        assert [(k["class_id"], k["class_name"]) for k in record["top_k"]] == \
            [(c, n) for c, n, _ in want]
        assert record["top_k"][0]["score"] == pytest.approx(want[0][2], abs=1e-5)
    assert results["failed"][0]["file"] == str(folder / "c_broken.mp4")
    assert results["failed"][0]["error"]


def test_onnx_model_file_is_run_with_onnxruntime(capsys):
    code = load_tool().main(["--input_file", EXAMPLE, "--use_gpu=False"] + model_args("onnx"))
    assert code == 0
    [(class_id, name, _)] = expected(EXAMPLE)
    out = capsys.readouterr().out
    assert f"\ttop-1 class: {class_id}\n" in out and f"\ttop-1 class name: {name}\n" in out


def test_label_file_of_the_wrong_size(tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("0 cat\n1 dog\n")
    code = load_tool().main(["--input_file", EXAMPLE, "--use_gpu=False", "--label_file",
                             str(labels)] + model_args())
    assert code == 1
    assert f"label file {labels} has 2 classes but" in capsys.readouterr().err


def test_tensorrt_refused_on_this_paddle(capsys):
    code = load_tool().main(["--input_file", EXAMPLE, "--use_gpu=False",
                             "--use_tensorrt=True"] + model_args())
    assert code == 1
    assert "needs a GPU build of Paddle with TensorRT" in capsys.readouterr().err


def test_missing_video_is_named(tmp_path, capsys):
    missing = str(tmp_path / "nope.mp4")
    code = load_tool().main(["--input_file", missing, "--use_gpu=False"] + model_args())
    assert code == 1
    assert f"input not found: {missing}" in capsys.readouterr().err


def test_unreadable_single_video_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"garbage" * 50)
    code = load_tool().main(["--input_file", str(bad), "--use_gpu=False"] + model_args())
    assert code == 1
    assert f"cannot predict {bad}" in capsys.readouterr().err
