"""Stops that lose nothing: SIGTERM mid-epoch, non-finite weights, another run's folder."""
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import paddle
import pytest

from paddlevideo.tasks.train import TrainingDivergedError, train_model
from paddlevideo.utils import get_config
from paddlevideo.utils.checkpoint import load, non_finite_entries
from tests.conftest import REPO_ROOT
from tests.tasks.conftest import DEMO_CONFIG, tiny_overrides

# Runs main.py; with STOP_AT=n the process sends itself SIGTERM during its n-th training
# iteration (the handler only sets a flag, so the iteration completes) and records the loader
# workers alive at that moment.
SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    sys.path.insert(0, os.environ["REPO"])
    import main
    from paddlevideo.modeling.framework.recognizers.recognizer3d import Recognizer3D
    from paddlevideo.tasks.stop_signals import child_processes

    stop_at, calls = int(os.environ.get("STOP_AT", "0")), [0]
    forward = Recognizer3D.forward

    def counting_forward(self, batch, mode="infer"):
        if mode == "train" and stop_at:
            calls[0] += 1
            if calls[0] == stop_at:
                with open(os.environ["WORKERS_FILE"], "w") as f:
                    json.dump(child_processes(), f)
                os.kill(os.getpid(), signal.SIGTERM)
        return forward(self, batch, mode)

    Recognizer3D.forward = counting_forward
    sys.exit(main.main(sys.argv[1:]))
""")


def _run(tmp_path, out, data, stop_at=0, extra=()):
    script = tmp_path / "run_main.py"
    script.write_text(SCRIPT)
    args = ["-c", DEMO_CONFIG, "--validate", "--seed", "11"]
    for item in tiny_overrides(data, out, epochs=2) + ["DATASET.num_workers=2",
                                                       "DATASET.batch_size=1", *extra]:
        args += ["-o", item]
    env = dict(os.environ, REPO=str(REPO_ROOT), STOP_AT=str(stop_at),
               WORKERS_FILE=str(tmp_path / "workers.json"))
    return subprocess.run([sys.executable, str(script), *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
def test_sigterm_mid_epoch_ends_the_workers_and_resume_reaches_the_same_weights(tiny_dataset,
                                                                              tmp_path):
    whole = _run(tmp_path, tmp_path / "whole", tiny_dataset)
    assert whole.returncode == 0, whole.stderr[-3000:]
    # 8 iterations an epoch (batch 1), then 2 precise-BN batches: the 13th training-mode
    # forward is iteration 3 of epoch 2
    stopped = _run(tmp_path, tmp_path / "stopped", tiny_dataset, stop_at=13)
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert "SIGTERM: training stopped" in stopped.stderr
    workers = json.loads((tmp_path / "workers.json").read_text())
    assert len(workers) >= 2
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in workers if _alive(p)]
    out = tmp_path / "stopped"
    assert (out / "SlowFastDemo_epoch_00001_iter_000003.json").is_file()
    assert not (out / "SlowFastDemo_epoch_00002.pdparams").exists()
    # the same command again continues from the mid-epoch unit
    resumed = _run(tmp_path, out, tiny_dataset)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "epoch 1, iteration 3" in (out / "train.log").read_text()
    expected = load(str(tmp_path / "whole" / "SlowFastDemo_epoch_00002.pdparams"))
    got = load(str(out / "SlowFastDemo_epoch_00002.pdparams"))
    assert expected.keys() == got.keys()
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=0, atol=1e-6, err_msg=key)


def _cfg(data, out, *extra):
    return get_config(DEMO_CONFIG, tiny_overrides(data, out) + list(extra))


def test_non_finite_weights_are_never_saved_and_the_last_good_unit_resumes(tiny_dataset,
                                                                          tmp_path,
                                                                          monkeypatch):
    import paddlevideo.tasks.train as train

    original = train.sync_bn_buffers
    epochs = []

    def poison_after_epoch_2(model):
        original(model)
        epochs.append(1)
        if len(epochs) == 2:  # BN statistics blow up in epoch 2, the loss stays finite
            bn = model.backbone.s1.pathway0_stem._bn
            paddle.assign(paddle.full_like(bn._variance, float("inf")), bn._variance)

    monkeypatch.setattr(train, "sync_bn_buffers", poison_after_epoch_2)
    with pytest.raises(TrainingDivergedError) as info:
        train_model(_cfg(tiny_dataset, tmp_path), validate=False, parallel=False, seed=2)
    message = str(info.value)
    good = str(tmp_path / "SlowFastDemo_epoch_00001.pdparams")
    assert "hold NaN or infinity" in message and "_variance" in message
    assert f"Last good checkpoint: {good}" in message
    written = sorted(p for p in os.listdir(tmp_path) if p.endswith(".pdparams"))
    assert written == ["SlowFastDemo_epoch_00001.pdparams"]
    assert non_finite_entries(load(good)) == []
    monkeypatch.setattr(train, "sync_bn_buffers", original)
    result = train_model(_cfg(tiny_dataset, tmp_path, f"resume={good}"), validate=False,
                         parallel=False, seed=2)
    assert result["last_checkpoint"].endswith("SlowFastDemo_epoch_00002.pdparams")


def test_a_non_finite_validation_loss_stops_training(tiny_dataset, tmp_path, monkeypatch):
    import paddlevideo.tasks.train as train

    monkeypatch.setattr(train, "run_validation", lambda *a, **k: {
        "loss": float("nan"), "top1": 0.0, "top5": 0.0, "samples": 5})
    with pytest.raises(TrainingDivergedError, match="Validation loss is nan after epoch 1"):
        train_model(_cfg(tiny_dataset, tmp_path), validate=True, parallel=False, seed=2)
    assert not (tmp_path / "SlowFastDemo_best.pdparams").exists()
    assert not (tmp_path / "SlowFastDemo_epoch_00001.pdparams").exists()


def test_rerun_continues_and_another_run_is_refused_before_writing(tiny_dataset, tmp_path):
    train_model(_cfg(tiny_dataset, tmp_path, "epochs=1", "OPTIMIZER.learning_rate.max_epoch=1"),
                validate=False, parallel=False, seed=2)
    config_before = (tmp_path / "config.yaml").read_text()
    log_before = (tmp_path / "train.log").read_text()
    # another seed is another run: refused in one line, nothing in the folder touched
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "main.py"), "-c", DEMO_CONFIG, "--seed", "3",
         *[a for item in tiny_overrides(tiny_dataset, tmp_path, epochs=1)
           + ["OPTIMIZER.learning_rate.max_epoch=1"] for a in ("-o", item)]],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Config error")]
    assert len(errors) == 1 and "holds checkpoints of another run" in errors[0]
    assert "resume=no" in errors[0]
    assert (tmp_path / "config.yaml").read_text() == config_before
    assert (tmp_path / "train.log").read_text() == log_before
    # the same run again: continues (nothing left to train), no retraining
    again = train_model(_cfg(tiny_dataset, tmp_path, "epochs=1",
                             "OPTIMIZER.learning_rate.max_epoch=1"),
                        validate=False, parallel=False, seed=2)
    assert again["last_checkpoint"].endswith("SlowFastDemo_epoch_00001.pdparams")
    assert "Resumed from" in (tmp_path / "train.log").read_text()


def test_too_many_bad_videos_stop_after_the_epoch_is_saved(tiny_dataset, tmp_path):
    rows = (tiny_dataset / "train.list").read_text().splitlines()
    rows[1] = f"{tmp_path}/gone.mp4 1"
    rows[3] = f"{tmp_path}/gone_too.mp4 1"
    bad_list = tmp_path / "bad.list"
    bad_list.write_text("\n".join(rows) + "\n")
    from paddlevideo.loader import BadVideoError

    out = tmp_path / "out"
    with pytest.raises(BadVideoError, match="gone.mp4"):
        train_model(_cfg(tiny_dataset, out, f"DATASET.train.file_path={bad_list}",
                         "DATASET.train.num_retries=20", "bad_video_max_fraction=0.1",
                         "save_interval=5"),
                    validate=False, parallel=False, seed=2)
    # save_interval 5 would not have saved epoch 1: it was saved because training stopped
    assert (out / "SlowFastDemo_epoch_00001.json").is_file()
