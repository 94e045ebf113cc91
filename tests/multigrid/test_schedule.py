"""The multigrid schedule of the shipped 8x8 config equals the published figures."""
import copy

import pytest

from paddlevideo.multigrid import build_multigrid_schedule
from paddlevideo.multigrid.schedule import (
    long_cycle_shapes,
    read_multigrid_settings,
    short_cycle_batch_factors,
    sub_bn_splits,
)
from paddlevideo.utils.config import ConfigError, get_config

CONFIG = "configs/recognition/slowfast/slowfast_multigrid.yaml"

PHASE_ENDS = [73, 110, 142, 158, 205, 228, 248, 259, 291, 308, 322, 329, 358]
LR_STEPS = [0, 73, 110, 142, 158, 205, 228, 248, 259, 291, 308, 322, 329, 343]
LR_FACTORS = [8, 4, 2, 1, 0.8, 0.4, 0.2, 0.1, 0.08, 0.04, 0.02, 0.01, 0.01, 0.001]
EVAL_EPOCHS = [23, 48, 73, 84, 97, 110, 120, 131, 142, 146, 152, 158, 173, 189, 205, 212, 220,
               228, 234, 241, 248, 251, 255, 259, 269, 280, 291, 296, 302, 308, 312, 317, 322,
               323, 326, 329, 338, 348, 358]


@pytest.fixture(scope="module")
def cfg():
    return get_config(CONFIG)


@pytest.fixture(scope="module")
def schedule(cfg):
    return build_multigrid_schedule(cfg)


def test_defaults_come_from_the_rest_of_the_config(cfg):
    settings = read_multigrid_settings(cfg)
    assert (settings.batch_size, settings.num_frames, settings.crop_size) == (8, 32, 224)
    assert settings.sampling_rate == 2 and settings.min_size == 256
    assert settings.epochs == 239 and settings.epoch_factor == 1.5


def test_long_cycle_shapes_and_batch_factors(cfg):
    shapes = long_cycle_shapes(read_multigrid_settings(cfg))
    assert [(s.num_frames, s.crop_size, s.batch_factor) for s in shapes] == [
        (8, 158, 8), (16, 158, 4), (16, 224, 2), (32, 224, 1)]


def test_phase_ends_and_shapes(schedule):
    assert [p.end_epoch for p in schedule.phases] == PHASE_ENDS
    assert schedule.total_epochs == 358
    assert [p.start_epoch for p in schedule.phases] == [0] + PHASE_ENDS[:-1]
    assert [p.lr_interval for p in schedule.phases] == [0] * 4 + [1] * 4 + [2] * 4 + [3]
    assert [p.shape.num_frames for p in schedule.phases] == [8, 16, 16, 32] * 3 + [32]
    assert [p.shape.crop_size for p in schedule.phases] == [158, 158, 224, 224] * 3 + [224]


def test_lr_rewrite(schedule):
    lr = schedule.lr_params
    assert lr["steps"] == LR_STEPS
    assert lr["lrs"] == pytest.approx(LR_FACTORS, rel=1e-12)
    assert lr["max_epoch"] == 358
    assert (lr["warmup_epochs"], lr["warmup_start_lr"], lr["step_base_lr"]) == (34, 0.01, 0.1)
    assert schedule.lr_at(0) == pytest.approx(0.8)
    assert schedule.lr_at(343) == pytest.approx(0.0001)


def test_shape_at_epoch(schedule):
    first = schedule.shape_at(0)
    assert (first.num_frames, first.crop_size, first.batch_size) == (8, 158, 64)
    assert first.sampling_rate == 8 and first.bn_num_splits == 8
    assert first.bn_norm_type == "sub_batchnorm"
    second = schedule.shape_at(73)     # first epoch of phase 2
    assert (second.num_frames, second.crop_size, second.batch_size) == (16, 158, 32)
    assert second.sampling_rate == 4 and second.bn_num_splits == 4
    third = schedule.shape_at(110)
    assert (third.batch_size, third.bn_num_splits, third.sampling_rate) == (16, 2, 4)
    last = schedule.shape_at(357)
    assert (last.num_frames, last.crop_size, last.batch_size) == (32, 224, 8)
    assert last.bn_norm_type == "batchnorm" and last.sampling_rate == 2
    assert schedule.shape_at(72).phase_index == 0 and schedule.shape_at(73).phase_index == 1
    assert schedule.shape_changes(73) and not schedule.shape_changes(72)
    assert not schedule.shape_changes(0)


def test_short_cycle_batch_sizes(schedule):
    assert short_cycle_batch_factors(224, 224, [0.5, 0.7071]) == [4, 2, 1]
    assert short_cycle_batch_factors(158, 224, [0.5, 0.7071]) == [2, 1, 1]
    assert schedule.shape_at(0).short_cycle_batch_sizes == (128, 64, 64)
    assert schedule.shape_at(73).short_cycle_batch_sizes == (64, 32, 32)
    assert schedule.shape_at(110).short_cycle_batch_sizes == (64, 32, 16)
    assert schedule.shape_at(142).short_cycle_batch_sizes == (32, 16, 8)
    # short crops are fractions of the base crop, jitter scales shrink with them
    assert schedule.shape_at(142).short_cycle_crop_sizes == (112, 158, 224)
    assert schedule.shape_at(142).short_cycle_min_sizes == (128, 181, 256)
    assert schedule.shape_at(0).short_cycle_crop_sizes == (112, 158, 158)


def test_evaluation_epochs(schedule):
    assert schedule.eval_epochs() == EVAL_EPOCHS
    assert schedule.is_eval_epoch(72) and not schedule.is_eval_epoch(71)


def test_table_lists_every_phase(schedule):
    lines = schedule.table().splitlines()
    assert "358 epochs" in lines[0] and "warm-up 34 epochs" in lines[0]
    rows = lines[2:]
    assert len(rows) == 13
    assert rows[0].split()[:7] == ["1", "1-73", "8", "158", "128/64/64", "8", "0.8"]
    assert rows[12].split()[:6] == ["13", "330-358", "32", "224", "32/16/8", "1"]
    assert "0.0001 from 344" in rows[12]


def test_sub_bn_splits_divide_the_batch():
    assert sub_bn_splits(64, 8) == 8
    assert sub_bn_splits(8, 8) == 1
    assert sub_bn_splits(4, 8) == 1
    assert sub_bn_splits(24, 8) == 3
    assert sub_bn_splits(20, 8) == 2    # 20 / 8 = 2.5 → 2 splits of 10


def _modified(cfg, **multigrid):
    cfg = copy.deepcopy(cfg)
    cfg["MULTIGRID"].update(multigrid)
    return cfg


def test_short_cycle_only_stretches_the_original_schedule(cfg):
    schedule = build_multigrid_schedule(_modified(cfg, LONG_CYCLE=False))
    assert schedule.phases == []
    assert schedule.lr_params["steps"] == [0, 141, 231, 294]
    assert schedule.lr_params["max_epoch"] == 358 and schedule.total_epochs == 358
    assert schedule.lr_params["lrs"] == [1, 0.1, 0.01, 0.001, 0.0001, 0.00001]
    shape = schedule.shape_at(100)
    assert shape.short_cycle_batch_sizes == (32, 16, 8) and shape.batch_size == 8
    assert schedule.eval_epochs()[-1] == 358


def test_long_cycle_only(cfg):
    schedule = build_multigrid_schedule(_modified(cfg, SHORT_CYCLE=False))
    ends = [p.end_epoch for p in schedule.phases]
    assert ends[-1] == 358 and len(ends) == 13 and ends == sorted(ends)
    # without short cycles, the average batch factor is the long one: 8, 4, 2, 1
    first_interval = ends[3]
    assert ends[0] / first_interval == pytest.approx(8 / 15, abs=0.02)
    assert schedule.shape_at(0).short_cycle_batch_sizes == (64,)
    assert schedule.lr_params["lrs"][:4] == [8, 4, 2, 1]


def test_multigrid_off_keeps_the_config(cfg):
    schedule = build_multigrid_schedule(_modified(cfg, LONG_CYCLE=False, SHORT_CYCLE=False))
    assert schedule.total_epochs == 239
    assert schedule.lr_params["steps"] == [0, 94, 154, 196]
    # val_interval: 20, as in PaddleVideo's slowfast_multigrid.yaml
    assert schedule.eval_epochs() == list(range(20, 221, 20)) + [239]


def test_plain_list_long_cycle_factors(cfg):
    factors = [[0.25, 0.7071], [0.5, 0.7071], [0.5, 1], [1, 1]]
    schedule = build_multigrid_schedule(_modified(cfg, long_cycle_factors=factors))
    assert [p.end_epoch for p in schedule.phases] == PHASE_ENDS


def test_explicit_defaults_override_the_config(cfg):
    schedule = build_multigrid_schedule(_modified(cfg, default_batch_size=4))
    assert schedule.shape_at(0).short_cycle_batch_sizes == (64, 32, 32)


def test_bad_long_cycle_factor_names_the_key(cfg):
    with pytest.raises(ConfigError, match=r"long_cycle_factors\[1\]"):
        build_multigrid_schedule(_modified(cfg, long_cycle_factors=[[0.25, 0.7], [0.5]]))


def test_long_cycle_needs_piecewise_steps(cfg):
    bad = copy.deepcopy(cfg)
    del bad["OPTIMIZER"]["learning_rate"]["steps"]
    with pytest.raises(ConfigError, match="learning_rate.steps"):
        build_multigrid_schedule(bad)
