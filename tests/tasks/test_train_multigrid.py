"""A scaled-down multigrid run: two long-cycle shapes, short cycles, resume, normal test."""
import shutil

import numpy as np
import pytest

import main as main_script
from paddlevideo.tasks import test_model as run_test
from paddlevideo.utils import get_config
from paddlevideo.utils.checkpoint import load
from tests.tasks.conftest import DEMO_CONFIG, tiny_overrides

# base shape T=8, crop 32, batch 2; long cycle (4, 32) with batch ×2 then (8, 32); epochs 5:
# phases 1-2 | 3 | 4-5 (the last one is the fine-tuning phase); evaluations after 2, 3 and 5
MULTIGRID = [
    "MULTIGRID.LONG_CYCLE=True", "MULTIGRID.SHORT_CYCLE=True", "MULTIGRID.EVAL_FREQ=1",
    "MULTIGRID.epoch_factor=1.0", "MULTIGRID.bn_base_size=2",
    "MULTIGRID.long_cycle_factors=[[0.5, 1], [1, 1]]",
    "MULTIGRID.short_cycle_factors=[0.5, 0.7071]", "MODEL.head.multigrid_short=True",
    "OPTIMIZER.learning_rate.name=CustomWarmupPiecewiseDecay",
    "OPTIMIZER.learning_rate.steps=[0, 3]", "OPTIMIZER.learning_rate.lrs=[1, 0.1]",
    "OPTIMIZER.learning_rate.step_base_lr=0.01", "OPTIMIZER.learning_rate.max_epoch=5",
]


def _args(tiny_dataset, out, extra=()):
    args = ["--multigrid", "--validate", "-c", DEMO_CONFIG, "--seed", "5"]
    for item in tiny_overrides(tiny_dataset, out, epochs=5) + MULTIGRID + list(extra):
        args += ["-o", item]
    return args


@pytest.fixture(scope="module")
def multigrid_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("multigrid")
    assert main_script.main(_args(tiny_dataset, out)) == 0
    return out


def test_run_goes_through_the_phases(multigrid_run):
    log = (multigrid_run / "train.log").read_text()
    assert "Multigrid schedule: 5 epochs" in log
    assert "1-2    4    32        16/8/4       2" in log  # the printed table
    assert "Multigrid phase 2 from epoch 3: T 8, crop 32, batch 8/4/2" in log
    assert "Multigrid phase 3 from epoch 4" in log
    validated = [line.split("[VALID] epoch ")[1].split(":")[0] for line in log.splitlines()
                 if "[VALID] epoch" in line]
    assert validated == ["2", "3", "5"]
    # short cycle: 8 videos in batches of 16 (4 frames, crop 16) — one iteration an epoch
    assert "epoch:[  1/5] train step:1 " in log
    for epoch in range(1, 6):
        assert (multigrid_run / f"SlowFastDemo_epoch_{epoch:05d}.pdparams").is_file()
    resolved = get_config(str(multigrid_run / "config.yaml"))
    assert resolved.OPTIMIZER.learning_rate.steps == [0, 2, 3, 4]
    assert resolved.OPTIMIZER.learning_rate.lrs == [2.0, 1.0, 1.0, 0.1]


def test_checkpoints_have_plain_bn_names_and_test_with_the_normal_config(
        multigrid_run, tiny_dataset, tmp_path):
    # epoch 2 was trained with sub-batch BN (2 splits): its file still has the plain names
    state = load(str(multigrid_run / "SlowFastDemo_epoch_00002.pdparams"))
    assert "backbone.s1.pathway0_stem._bn._mean" in state
    assert not [k for k in state if "split" in k]
    cfg = get_config(DEMO_CONFIG, tiny_overrides(tiny_dataset, tmp_path))
    result = run_test(cfg, str(multigrid_run / "SlowFastDemo_epoch_00005.pdparams"),
                      parallel=False)
    assert result["num_videos"] == 5 and 0.0 <= result["top1"] <= 1.0


def test_resume_mid_run_reaches_the_same_weights(multigrid_run, tiny_dataset, tmp_path):
    # the run stopped after epoch 1, in the middle of phase 1 (sub-batch BN, short cycle)
    for suffix in ("pdparams", "pdopt", "json"):  # one checkpoint unit
        shutil.copy(multigrid_run / f"SlowFastDemo_epoch_00001.{suffix}", tmp_path)
    assert main_script.main(_args(tiny_dataset, tmp_path, ["resume=auto"])) == 0
    expected = load(str(multigrid_run / "SlowFastDemo_epoch_00005.pdparams"))
    resumed = load(str(tmp_path / "SlowFastDemo_epoch_00005.pdparams"))
    for key in expected:
        np.testing.assert_allclose(resumed[key], expected[key], rtol=1e-6, atol=1e-7,
                                   err_msg=key)


def test_multigrid_honours_gradient_accumulation_and_to_static(tiny_dataset, tmp_path,
                                                               monkeypatch):
    import math
    import re

    import paddle

    calls = []
    original = paddle.optimizer.AdamW.step
    monkeypatch.setattr(paddle.optimizer.AdamW, "step",
                        lambda self: calls.append(1) or original(self))
    # base batch 2 × 1 process, global batch 4: two iterations per update in every phase
    extra = ["GRADIENT_ACCUMULATION.global_batch_size=4", "to_static=True",
             "MULTIGRID.SHORT_CYCLE=False", "log_interval=1"]
    assert main_script.main(_args(tiny_dataset, tmp_path, extra)) == 0
    log = (tmp_path / "train.log").read_text()
    iters = {}
    for epoch, step in re.findall(r"epoch:\[\s*(\d+)/5\] train step:(\d+)", log):
        iters[int(epoch)] = max(iters.get(int(epoch), 0), int(step))
    assert sorted(iters) == [1, 2, 3, 4, 5] and max(iters.values()) > 1
    assert len(calls) == sum(math.ceil(n / 2) for n in iters.values()) < sum(iters.values())
    # every phase's model (3 phases) runs its backbone as a static graph
    assert log.count("to_static=True: ResNetSlowFast runs as a static graph") == 3
    assert "to_static failed" not in log
