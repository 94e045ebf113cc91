import os
import shutil

import numpy as np
import pytest

from paddlevideo.tasks.train import TrainingDivergedError, train_model
from paddlevideo.utils import get_config
from paddlevideo.utils.checkpoint import load
from paddlevideo.utils.config import ConfigError
from tests.tasks.conftest import DEMO_CONFIG, tiny_overrides


def _train(tiny_dataset, out, extra=(), epochs=2, **kwargs):
    cfg = get_config(DEMO_CONFIG, tiny_overrides(tiny_dataset, out, epochs) + list(extra))
    return train_model(cfg, validate=True, parallel=False, seed=7, **kwargs)


@pytest.fixture(scope="module")
def two_epoch_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = _train(tiny_dataset, out)
    return out, result


def test_run_writes_checkpoints_logs_visualdl_and_best(two_epoch_run):
    out, result = two_epoch_run
    files = set(os.listdir(out))
    for name in ("SlowFastDemo_epoch_00001.pdparams", "SlowFastDemo_epoch_00001.pdopt",
                 "SlowFastDemo_epoch_00002.pdparams", "SlowFastDemo_epoch_00002.pdopt",
                 "SlowFastDemo_best.pdparams", "train.log", "config.yaml"):
        assert name in files
    assert not [f for f in files if ".tmp" in f]
    assert os.listdir(out / "vdl"), "VisualDL wrote no event file"
    log = (out / "train.log").read_text()
    assert "epoch:[  1/2] train step:2" in log and "ips:" in log and "eta:" in log
    assert "END epoch:2" in log and "[VALID] epoch 2" in log and "Precise BN" in log
    state = load(str(out / "SlowFastDemo_epoch_00002.pdopt"))
    assert state["epoch"] == 2 and "optimizer" in state
    resolved = get_config(str(out / "config.yaml"))
    assert resolved.MODEL.head.num_classes == 2 and resolved.seed == 7
    assert 0.0 <= result["best_top1"] <= 1.0


def test_resume_reaches_the_uninterrupted_weights(two_epoch_run, tiny_dataset, tmp_path):
    out, _ = two_epoch_run
    # a run that stopped after epoch 1: only the first checkpoint exists
    for suffix in ("pdparams", "pdopt", "json"):  # one checkpoint unit
        shutil.copy(out / f"SlowFastDemo_epoch_00001.{suffix}", tmp_path)
    _train(tiny_dataset, tmp_path, extra=["resume=auto"])
    expected = load(str(out / "SlowFastDemo_epoch_00002.pdparams"))
    resumed = load(str(tmp_path / "SlowFastDemo_epoch_00002.pdparams"))
    assert expected.keys() == resumed.keys()
    for key in expected:
        np.testing.assert_array_equal(resumed[key], expected[key], err_msg=key)
    assert "Resumed from" in (tmp_path / "train.log").read_text()


def test_resume_epoch_that_does_not_exist_is_named(tiny_dataset, tmp_path):
    with pytest.raises(ConfigError, match="SlowFastDemo_epoch_00003.pdparams does not exist"):
        _train(tiny_dataset, tmp_path, extra=["resume_epoch=3"])


def test_non_finite_loss_stops_with_iteration_lr_and_checkpoint(tiny_dataset, tmp_path):
    huge = ["OPTIMIZER.learning_rate.warmup_start_lr=1.0e+30",
            "OPTIMIZER.learning_rate.cosine_base_lr=1.0e+30"]
    with pytest.raises(TrainingDivergedError) as info:
        _train(tiny_dataset, tmp_path, extra=huge)
    message = str(info.value)
    # iteration 1 (lr 1e30) blows the weights up; iteration 2 is the first non-finite loss,
    # its lr on the warm-up line from 1e30 towards the cosine value at epoch 1 (5e29)
    assert "at epoch 1, iteration 2 (lr 8.75e+29)" in message
    assert "Last good checkpoint: none written yet" in message


def test_label_outside_the_model_classes_is_named_before_training(tiny_dataset, tmp_path):
    rows = (tiny_dataset / "train.list").read_text().splitlines()
    path, _ = rows[2].rsplit(maxsplit=1)
    rows[2] = f"{path} 5"  # the tiny model has 2 classes
    bad_list = tmp_path / "bad.list"
    bad_list.write_text("\n".join(rows) + "\n")
    with pytest.raises(ConfigError, match=r"bad.list:3.*5") as info:
        _train(tiny_dataset, tmp_path / "out", extra=[f"DATASET.train.file_path={bad_list}"])
    assert not (tmp_path / "out" / "SlowFastDemo_epoch_00001.pdparams").exists()
    assert "num_classes" in str(info.value) or "[0, 2)" in str(info.value)


def test_gradient_accumulation_steps():
    from paddlevideo.tasks.run import gradient_accumulation_steps
    from paddlevideo.utils.config import ConfigError

    assert gradient_accumulation_steps({}, batch_size=8, world_size=2) == 1
    cfg = {"GRADIENT_ACCUMULATION": {"global_batch_size": 64}}
    assert gradient_accumulation_steps(cfg, batch_size=8, world_size=2) == 4
    with pytest.raises(ConfigError, match="multiple of batch_size"):
        gradient_accumulation_steps({"GRADIENT_ACCUMULATION": {"global_batch_size": 20}}, 8, 1)


def test_accumulated_steps_update_the_weights_every_second_iteration(tiny_dataset, tmp_path,
                                                                    monkeypatch):
    import paddle

    calls = []
    original = paddle.optimizer.AdamW.step
    monkeypatch.setattr(paddle.optimizer.AdamW, "step",
                        lambda self: calls.append(1) or original(self))
    # batch 2, global batch 4: iterations 1+2 make one update, 3+4 the next
    _train(tiny_dataset, tmp_path, epochs=1, max_iters=4,
           extra=["GRADIENT_ACCUMULATION.global_batch_size=4"])
    assert len(calls) == 2
