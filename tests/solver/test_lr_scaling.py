"""Linear LR scaling by global batch / reference batch, and the keys' place in the schema."""
import pytest

from paddlevideo.solver import build_lr
from paddlevideo.solver.lr_scaling import (
    apply_lr_scaling,
    global_batch_size,
    scale_learning_rate,
    strip_scaling_keys,
)
from paddlevideo.utils.config import ConfigError
from paddlevideo.utils.schema import check_and_fill

COSINE = {"name": "CustomWarmupCosineDecay", "iter_step": True, "warmup_start_lr": 0.01,
          "warmup_epochs": 34, "cosine_base_lr": 0.1, "max_epoch": 196}


def test_linear_scales_base_and_warmup_rates():
    scaled, message = scale_learning_rate(
        dict(COSINE, scale_with="linear", reference_batch_size=64), global_batch=16)
    assert scaled["cosine_base_lr"] == pytest.approx(0.025)
    assert scaled["warmup_start_lr"] == pytest.approx(0.0025)
    assert scaled["max_epoch"] == 196 and "scale_with" not in scaled
    assert "reference_batch_size" not in scaled
    assert message == ("LR scaled linearly: global batch 16 / reference 64 → ×0.25: "
                       "cosine_base_lr 0.1 → 0.025, warmup_start_lr 0.01 → 0.0025")


def test_linear_scales_piecewise_base_rate_as_text_number():
    cfg = {"name": "CustomWarmupPiecewiseDecay", "step_base_lr": "1e-1", "warmup_start_lr": 0.01,
           "scale_with": "linear", "reference_batch_size": 8}
    scaled, _ = scale_learning_rate(cfg, global_batch=32)
    assert scaled["step_base_lr"] == pytest.approx(0.4)
    assert scaled["warmup_start_lr"] == pytest.approx(0.04)


def test_none_keeps_rates_and_says_so():
    scaled, message = scale_learning_rate(dict(COSINE, scale_with="none"), global_batch=16)
    assert scaled == COSINE
    assert message == ("LR not scaled (scale_with: none): global batch 16, reference 64; "
                       "cosine_base_lr 0.1, warmup_start_lr 0.01")


def test_global_batch_counts_processes_and_accumulation():
    cfg = {"DATASET": {"batch_size": 8}, "GRADIENT_ACCUMULATION": {"global_batch_size": None}}
    assert global_batch_size(cfg, world_size=4) == 32
    cfg["GRADIENT_ACCUMULATION"]["global_batch_size"] = 128  # 8 × 4 × 4 steps
    assert global_batch_size(cfg, world_size=4) == 128


def test_apply_rewrites_config_once():
    cfg = {"DATASET": {"batch_size": 2},
           "OPTIMIZER": {"learning_rate": dict(COSINE, scale_with="linear",
                                               reference_batch_size=64)}}
    message = apply_lr_scaling(cfg, world_size=2)
    assert "global batch 4 / reference 64" in message
    assert cfg["OPTIMIZER"]["learning_rate"]["cosine_base_lr"] == pytest.approx(0.1 / 16)
    # a second call finds no rule left: the rates are not scaled twice
    apply_lr_scaling(cfg, world_size=2)
    assert cfg["OPTIMIZER"]["learning_rate"]["cosine_base_lr"] == pytest.approx(0.1 / 16)


def test_build_lr_strips_none_and_refuses_unapplied_linear():
    scheduler = build_lr(dict(COSINE, scale_with="none", reference_batch_size=64), 10)
    scheduler.step(0)
    assert scheduler() == pytest.approx(0.01)
    with pytest.raises(ConfigError, match="scale_with='linear' reached the schedule builder"):
        strip_scaling_keys(dict(COSINE, scale_with="linear"))


def _config(lr):
    return {"DATASET": {"batch_size": 2}, "OPTIMIZER": {"name": "Momentum", "learning_rate": lr}}


def test_schema_fills_defaults_and_checks_choices():
    cfg = _config(dict(COSINE))
    check_and_fill(cfg, "cfg.yaml")
    assert cfg["OPTIMIZER"]["learning_rate"]["scale_with"] == "none"
    assert cfg["OPTIMIZER"]["learning_rate"]["reference_batch_size"] == 64
    with pytest.raises(ConfigError, match=r"cfg.yaml: 'OPTIMIZER.learning_rate.scale_with' "
                                          r"must be one of none, linear, got 'sqrt'"):
        check_and_fill(_config(dict(COSINE, scale_with="sqrt")), "cfg.yaml")
    with pytest.raises(ConfigError, match="reference_batch_size' must be at least 1"):
        check_and_fill(_config(dict(COSINE, reference_batch_size=0)), "cfg.yaml")
