"""``tools/quantize.py``: NNCF int8 of an exported model, its report, and its answers.

The model is the three-class model of the timeline tests (classifier fitted to three demo
motion classes), so its top-1 answers mean something and int8 must keep them.
"""
import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from paddlevideo.inference import ClipPreprocessor, EngineError, EngineOptions, create_engine
from tests.conftest import load_script
from tests.inference.helpers import (
    REPO_ROOT,
    small_config_file,
    small_export,
    synthetic_video,
    work_dir,
)
from tests.inference.timeline_helpers import (
    CLASSES,
    FPS,
    clip_frames,
    three_class_export,
    timeline_config,
)

TOOL = REPO_ROOT / "tools" / "quantize.py"


def load_tool():
    return load_script("tools/quantize.py")


@functools.cache
def class_videos() -> list:
    """One video of each of the three classes (the clips the classifier was fitted on)."""
    from tests.conftest import write_video

    folder = work_dir() / "calibration"
    folder.mkdir(exist_ok=True)
    return [write_video(folder / f"{name}.mp4", frames, fps=FPS)
            for name, frames in zip(CLASSES, clip_frames())]


@functools.cache
def calibration_list() -> Path:
    """The three class videos, three other generated ones and one that cannot be decoded."""
    folder = work_dir() / "calibration"
    lines = [f"{video} {label}" for label, video in enumerate(class_videos())]
    for seed in range(3):
        video = synthetic_video(folder / f"generated_{seed}.mp4", num_frames=64, seed=seed)
        lines.append(f"{video} 0")
    broken = folder / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 50)
    lines.append(f"{broken} 1")
    path = folder / "calib.list"
    path.write_text("\n".join(lines) + "\n")
    return path


@functools.cache
def quantized() -> dict:
    """Run the tool once; its exit code, printed text and output folder."""
    out_dir = work_dir() / "int8"
    proc = subprocess.run(
        [sys.executable, str(TOOL), "-c", three_class_export("openvino")["config"],
         "--model_file", three_class_export("openvino")["model"], "--calib_list",
         str(calibration_list()), "--num_samples", "300", "-o", str(out_dir)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    return {"code": proc.returncode, "out": proc.stdout, "err": proc.stderr, "dir": out_dir}


def test_quantize_writes_an_int8_model_and_how_it_was_made():
    run = quantized()
    assert run["code"] == 0, run["err"][-2000:]
    report = json.loads((run["dir"] / "quantization.json").read_text())
    assert report["clips_used"] == 6 and report["num_samples"] == 300
    assert report["bias_correction"] == "full"
    assert report["clips_skipped"] == [str(calibration_list().parent / "broken.mp4")]
    assert report["source_model"] == three_class_export("openvino")["model"]
    assert set(report["versions"]) == {"openvino", "nncf"}
    assert report["int8_model"] == str(run["dir"] / "SlowFast_int8.xml")
    assert (run["dir"] / "SlowFast_int8.bin").stat().st_size > 0
    assert "FakeQuantize" in (run["dir"] / "SlowFast_int8.xml").read_text()
    printed = re.search(r"Top-1 agreement with fp32 on the 6 calibration clips: ([\d.]+)%",
                        run["out"])
    assert printed and float(printed.group(1)) == pytest.approx(
        100 * report["top1_agreement"], abs=0.05)
    assert "skipped" in run["err"] and "broken.mp4" in run["err"]
    # top-1 accuracy against the list's labels: fp32's as the fp32 engine gives it on the same
    # centred clips; int8's can differ from it by at most the share of clips that disagree
    videos, labels = [], []
    for line in calibration_list().read_text().split("\n"):
        if line and "broken" not in line:
            videos.append(line.rsplit(" ", 1)[0])
            labels.append(int(line.rsplit(" ", 1)[1]))
    preprocess = ClipPreprocessor(timeline_config(), num_views=1)
    engine = create_engine(three_class_export("openvino")["model"],
                           options=EngineOptions(precision="fp32"))
    top1 = [int(engine.run(*preprocess(video)).argmax()) for video in videos]
    expected = np.mean(np.array(top1) == np.array(labels))
    assert report["fp32_top1"] == pytest.approx(expected, abs=1e-4) and 0.5 <= expected < 1
    assert abs(report["int8_top1"] - report["fp32_top1"]) <= 1 - report["top1_agreement"] + 1e-4
    printed = re.search(r"Top-1 accuracy on them \(the list's labels\): fp32 ([\d.]+)%, int8 "
                        r"([\d.]+)%", run["out"])
    assert printed and [float(x) for x in printed.groups()] == pytest.approx(
        [100 * report["fp32_top1"], 100 * report["int8_top1"]], abs=0.05)


def test_int8_agrees_with_fp32_on_clips_it_was_not_calibrated_on():
    run = quantized()
    assert run["code"] == 0, run["err"][-2000:]
    # 8 clips spread over each class video (calibration saw only the centred one)
    preprocess = ClipPreprocessor(timeline_config(), num_views=8)
    clips = [preprocess(str(v)) for v in class_videos()]
    slow, fast = np.concatenate([c[0] for c in clips]), np.concatenate([c[1] for c in clips])
    fp32 = create_engine(three_class_export("openvino")["model"],
                         options=EngineOptions(precision="fp32")).run(slow, fast)
    assert list(fp32.argmax(1)) == [0] * 8 + [1] * 8 + [2] * 8
    engine = create_engine(str(run["dir"] / "SlowFast_int8.xml"),
                           options=EngineOptions(precision="int8"))
    int8 = engine.run(slow, fast)
    assert engine.choice.describe() == "OpenVINO, int8 (auto: OpenVINO IR)"
    assert np.mean(fp32.argmax(1) == int8.argmax(1)) >= 0.98
    assert np.abs(int8 - fp32).max() > 1e-6  # the int8 kernels really ran


def test_int8_model_is_refused_at_another_precision():
    run = quantized()
    assert run["code"] == 0, run["err"][-2000:]
    with pytest.raises(EngineError, match=r"is an int8 model \(tools/quantize.py\); run it "
                                          r"with --precision int8"):
        create_engine(str(run["dir"] / "SlowFast_int8.xml"),
                      options=EngineOptions(precision="fp32"))


@pytest.mark.parametrize("extra, message", [
    (["--num_samples", "0"], "--num_samples must be at least 1, got 0"),
    (["--calib_list", "no/such.list"], "--calib_list no/such.list: file not found"),
])
def test_bad_arguments_are_one_line_before_work(tmp_path, capsys, extra, message):
    argv = ["-c", str(small_config_file()), "--model_file", small_export("pdmodel")["model"],
            "--calib_list", str(calibration_list()), "-o", str(tmp_path / "out")] + extra
    code = load_tool().main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"Error: {message}"
    assert not (tmp_path / "out").exists()


def test_paddle_program_without_params_is_one_line(tmp_path, capsys):
    code = load_tool().main(["-c", str(small_config_file()), "--model_file",
                             small_export("pdmodel")["model"], "--calib_list",
                             str(calibration_list()), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.endswith("is a Paddle program: give its --params_file")
    assert len(err.splitlines()) == 1
