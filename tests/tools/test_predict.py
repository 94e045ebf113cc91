"""``tools/predict.py``: PaddleVideo's command and output lines, folders, JSON, errors."""
import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import load_script
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
    return load_script("tools/predict.py")


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
    code = load_tool().main(["--input_file", EXAMPLE, "--use_gpu=False", "--engine",
                             "onnxruntime"] + model_args("onnx"))
    assert code == 0
    [(class_id, name, _)] = expected(EXAMPLE)
    captured = capsys.readouterr()
    out = captured.out
    assert f"\ttop-1 class: {class_id}\n" in out and f"\ttop-1 class name: {name}\n" in out
    assert captured.err.count("Engine: ") == 1
    assert "Engine: ONNX Runtime, fp32\n" in captured.err


def test_label_file_of_the_wrong_size(tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("0 cat\n1 dog\n")
    code = load_tool().main(["--input_file", EXAMPLE, "--use_gpu=False", "--label_file",
                             str(labels)] + model_args())
    assert code == 2
    assert f"label file {labels} has 2 classes but" in capsys.readouterr().err


def test_tensorrt_refused_on_this_paddle(capsys):
    code = load_tool().main(["--input_file", EXAMPLE, "--use_gpu=False",
                             "--use_tensorrt=True"] + model_args())
    assert code == 2
    assert "needs a GPU build of Paddle with TensorRT" in capsys.readouterr().err


def test_missing_video_is_named(tmp_path, capsys):
    missing = str(tmp_path / "nope.mp4")
    code = load_tool().main(["--input_file", missing, "--use_gpu=False"] + model_args())
    assert code == 2
    assert f"input not found: {missing}" in capsys.readouterr().err


def test_unreadable_single_video_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"garbage" * 50)
    code = load_tool().main(["--input_file", str(bad), "--use_gpu=False"] + model_args())
    assert code == 1
    assert f"cannot predict {bad}" in capsys.readouterr().err


PADDLEVIDEO_FLAGS = {  # PaddleVideo's predict flags, in the spellings its test_tipc uses
    "--use_gpu": "False", "--use_xpu": "false", "--use_npu": "f", "--precision": "fp16",
    "--ir_optim": "0", "--use_tensorrt": "False", "--gpu_mem": "4000",
    "--enable_benchmark": "True", "--enable_mkldnn": "true", "--cpu_threads": "3",
    "--disable_glog": "t", "--time_test_file": "1", "-b": "2",
}


def test_every_paddlevideo_flag_parses():
    argv = ["-i", "v.mp4", "-c", "c.yaml", "-o", "INFERENCE.target_size=64",
            "--model_file", "m.pdmodel", "--params_file", "m.pdiparams"]
    for flag, value in PADDLEVIDEO_FLAGS.items():
        argv += [flag, value]
    args = load_tool().parse_args(argv)
    assert (args.input_file, args.config, args.override) == \
        ("v.mp4", "c.yaml", ["INFERENCE.target_size=64"])
    assert (args.use_gpu, args.use_xpu, args.use_npu, args.ir_optim, args.use_tensorrt) == \
        (False, False, False, False, False)
    assert (args.enable_benchmark, args.enable_mkldnn, args.disable_glog,
            args.time_test_file) == (True, True, True, True)
    assert (args.precision, args.gpu_mem, args.cpu_threads, args.batch_size) == \
        ("fp16", 4000, 3, 2)


def test_help_lists_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit):
        load_tool().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in list(PADDLEVIDEO_FLAGS) + ["--input_file", "--config", "--override",
                                           "--model_file", "--params_file", "--batch_size"]:
        assert flag in text, flag
    for default in ("GPU (without one: a one-line note, then the CPU) (default: True)",
                    "(default: 8000)", "(default: auto)", "(None: Paddle's choice) (default: None)",
                    "--enable_benchmark BOOL"):
        assert default in text, default


def test_paddle_inference_options_reach_the_engine():
    tool = load_tool()
    base = ["-i", EXAMPLE, "--use_gpu", "False"] + model_args()
    predictor = tool.build_predictor(tool.parse_args(
        base + ["--ir_optim", "False", "--gpu_mem", "1234", "--cpu_threads", "3"]))
    config = predictor.engine.config
    assert config.ir_optim() is False and config.cpu_math_library_num_threads() == 3
    assert predictor.engine.options.gpu_mem == 1234
    default = tool.build_predictor(tool.parse_args(base)).engine.config
    assert default.ir_optim() is True and default.mkldnn_enabled()


def test_enable_benchmark_prints_the_stage_times(capsys):
    code = load_tool().main(["-i", EXAMPLE, "--use_gpu=False", "--enable_benchmark", "True",
                             "--time_test_file", "True"] + model_args())
    assert code == 0
    out = capsys.readouterr().out
    times = dict(re.findall(r"\[Benchmark\] (\w+)_time\(ms\): ([\d.]+) per video", out))
    assert sorted(times) == ["inference", "postprocess", "preprocess", "total"]
    stages = {k: float(v) for k, v in times.items()}
    assert stages["preprocess"] > 0 and stages["inference"] > 0
    assert stages["total"] == pytest.approx(stages["preprocess"] + stages["inference"]
                                            + stages["postprocess"], abs=0.02)
    assert re.search(rf"Predicted {re.escape(EXAMPLE)} \(1 videos\) in [\d.]+ s", out)


def test_glog_shown_only_when_asked(tmp_path):
    def stderr(disable):
        proc = subprocess.run(
            [sys.executable, str(TOOL), "-i", EXAMPLE, "--use_gpu", "False", "--disable_glog",
             disable] + model_args(), capture_output=True, text=True, cwd=REPO_ROOT,
            timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stderr

    assert "Running analysis" in stderr("False")
    assert "Running analysis" not in stderr("True")


@pytest.mark.parametrize("extra, message", [
    (["-b", "0"], "--batch_size must be at least 1, got 0"),
    (["--top_k", "0"], "--top_k must be at least 1, got 0"),
    (["--gpu_mem", "0"], "--gpu_mem must be at least 1, got 0"),
    (["--output", "{tmp}"], "is a folder; give a file name such as results.json"),
    (["--output", "{tmp}/no/such/dir/out.json"], "does not exist"),
])
def test_unusable_arguments_are_refused_before_work(tmp_path, capsys, extra, message):
    extra = [item.replace("{tmp}", str(tmp_path)) for item in extra]
    code = load_tool().main(["-i", EXAMPLE, "--use_gpu=False"] + model_args() + extra)
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("flag, message", [("--use_xpu", "no XPU support"),
                                           ("--use_npu", "no NPU device plugin")])
def test_devices_this_paddle_lacks_are_refused(capsys, flag, message):
    code = load_tool().main(["-i", EXAMPLE, "--use_gpu=False", flag, "True"] + model_args())
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("name, which", [("SlowFast.pdmodel", "model"),
                                         ("SlowFast.json", "model"),
                                         ("SlowFast.pdiparams", "params")])
def test_garbage_model_files_give_one_line_not_a_crash(tmp_path, name, which):
    import numpy as np

    real = small_export("json" if name.endswith(".json") else "pdmodel")
    garbage = tmp_path / name
    garbage.write_bytes(np.random.default_rng(3).integers(0, 256, 4096, np.uint8).tobytes())
    model = str(garbage) if which == "model" else real["model"]
    params = str(garbage) if which == "params" else real["params"]
    proc = subprocess.run(
        [sys.executable, str(TOOL), "-i", EXAMPLE, "--use_gpu", "False", "--config",
         str(small_config_file()), "--model_file", model, "--params_file", params],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"Error: {garbage} is not a Paddle")
