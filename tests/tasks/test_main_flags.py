"""``main.py`` flags: -p profiles, --seed and -o seed agree, refused flags, the log header."""
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

import main as main_script
from paddlevideo.utils.checkpoint import load
from tests.conftest import REPO_ROOT
from tests.tasks.conftest import DEMO_CONFIG, tiny_overrides


def _argv(tiny_dataset, out, *extra, epochs=1):
    argv = ["-c", DEMO_CONFIG]
    for item in tiny_overrides(tiny_dataset, out, epochs) + ["PRECISEBN.num_iters_preciseBN=1"]:
        argv += ["-o", item]
    return argv + list(extra)


def _weights(out, epoch=1):
    return load(str(out / f"SlowFastDemo_epoch_{epoch:05d}.pdparams"))


def test_profiler_writes_the_profile_prints_the_summary_and_exits(tiny_dataset, tmp_path,
                                                                  capsys):
    profile = tmp_path / "prof" / "model.profile"
    options = f"batch_range=[1,3];state=CPU;tracer_option=Default;profile_path={profile}"
    with pytest.raises(SystemExit) as exited:
        main_script.main(_argv(tiny_dataset, tmp_path / "run", "-p", options, epochs=2))
    assert exited.value.code == 0
    trace = json.loads(profile.read_text())
    assert trace["traceEvents"], "the trace holds no events"
    out = capsys.readouterr().out
    assert "Operator Summary" in out
    assert f"Profile of iterations 1-2 written to {profile}" in out
    # exit_on_finished (PaddleVideo's default True) stopped the run inside epoch 1
    assert not (tmp_path / "run" / "SlowFastDemo_epoch_00001.pdparams").exists()


def test_profiler_lets_the_run_finish_when_asked(tiny_dataset, tmp_path):
    profile = tmp_path / "model.profile"
    options = f"batch_range=[0,2];state=All;profile_path={profile};exit_on_finished=False"
    assert main_script.main(_argv(tiny_dataset, tmp_path / "run", "-p", options)) == 0
    assert profile.is_file()
    assert (tmp_path / "run" / "SlowFastDemo_epoch_00001.pdparams").is_file()


@pytest.mark.parametrize("options, message", [
    ("batch_range=[5,2]", "batch_range must be [start,end] with 0 <= start < end"),
    ("state=TPU", "state must be one of CPU, GPU, All, got 'TPU'"),
    ("profile_pth=x", "unknown profiler option 'profile_pth'"),
])
def test_bad_profiler_options_are_one_line_before_work(tmp_path, capsys, options, message):
    code = main_script.main(["-c", str(tmp_path / "missing.yaml"), "-p", options])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_train_dali_is_refused(tmp_path, capsys):
    code = main_script.main(["-c", str(tmp_path / "missing.yaml"), "--train_dali"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.splitlines() == [err] and "DALI reader serves TSN only" in err


def test_fleet_outside_a_launcher_says_how_to_launch(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(main_script.LAUNCHER_ENV, raising=False)
    code = main_script.main(["-c", str(tmp_path / "missing.yaml"), "--fleet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "python -m paddle.distributed.launch --nproc_per_node N main.py --fleet" in err


def test_seed_flag_and_seed_override_give_the_same_run(tiny_dataset, tmp_path):
    runs = {"flag": ["--seed", "11"], "override": ["-o", "seed=11"],
            "both": ["--seed", "11", "-o", "seed=3"], "other": ["--seed", "3"]}
    weights = {}
    for name, extra in runs.items():
        out = tmp_path / name
        assert main_script.main(_argv(tiny_dataset, out, "--max_iters", "2", *extra)) == 0
        weights[name] = _weights(out)
    key = "head.projection.weight"
    np.testing.assert_array_equal(weights["flag"][key], weights["override"][key])
    np.testing.assert_array_equal(weights["flag"][key], weights["both"][key])
    assert not np.array_equal(weights["flag"][key], weights["other"][key])


def test_training_log_starts_with_environment_and_resolved_config(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    assert main_script.main(_argv(tiny_dataset, out, "--max_iters", "1", "--seed", "4")) == 0
    log = (out / "train.log").read_text().splitlines()
    assert log[0].endswith("Environment:")
    header = "\n".join(log[:12])
    assert f"  Paddle     {paddle.__version__}" in header
    assert "  Device     cpu" in header and "  Processes  1" in header
    assert "  Python     " in header and "  OS         " in header
    config_at = next(i for i, line in enumerate(log) if line == "Config:")
    assert "  model_name: SlowFastDemo" in log[config_at:]
    assert "  seed: 4" in log[config_at:]


def test_fleet_on_a_single_launched_process_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(main_script.LAUNCHER_ENV, "127.0.0.1:6170")
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "1")
    code = main_script.main(["-c", str(tmp_path / "missing.yaml"), "--fleet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == ("Error: --fleet needs 2 or more processes (--nproc_per_node 2 "
                                 "or more); with one process, train without --fleet")


def test_fleet_under_the_launcher_trains(tiny_dataset, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("CUDA_VISIBLE_DEVICES", None)  # an empty value makes the launcher expect GPUs
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
           "--log_dir", str(tmp_path / "logs"), "main.py", "--fleet", "--max_iters", "1"]
    cmd += _argv(tiny_dataset, tmp_path / "run")
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("*"))
    assert proc.returncode == 0, proc.stderr[-2000:] + logs[-3000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "  Processes  2" in log and "Training finished" in log
