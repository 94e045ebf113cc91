import math

import pytest

from paddlevideo.solver import build_lr

COSINE = {"name": "CustomWarmupCosineDecay", "iter_step": True, "warmup_start_lr": 0.01,
          "warmup_epochs": 34, "cosine_base_lr": 0.1, "max_epoch": 196}
PIECEWISE = {"name": "CustomWarmupPiecewiseDecay", "iter_step": True, "warmup_start_lr": 0.01,
             "warmup_epochs": 34, "step_base_lr": 0.1, "lrs": [1, 0.1, 0.01, 0.001, 0.0001],
             "gamma": 0.1, "steps": [0, 94, 154, 196], "max_epoch": 239}
ITERS = 100  # iterations per epoch


def lr_at_step(cfg, step):
    scheduler = build_lr(cfg, ITERS)
    scheduler.step(step)
    return scheduler()


def cosine(epoch):
    return 0.1 * (math.cos(math.pi * epoch / 196) + 1) / 2


@pytest.mark.parametrize("step, expected", [
    (0, 0.01),                                            # warm-up start
    (1700, 0.01 + (cosine(34) - 0.01) * 17 / 34),         # middle of warm-up
    (3399, 0.01 + (cosine(34) - 0.01) * 33.99 / 34),      # last warm-up iteration
    (3400, cosine(34)),                                   # warm-up end = cosine value there
    (9850, cosine(98.5)),                                 # fractional epoch
    (19599, cosine(195.99)),                              # last iteration
])
def test_warmup_cosine_values(step, expected):
    assert lr_at_step(COSINE, step) == pytest.approx(expected, rel=1e-9)


def test_cosine_hand_values():
    # cos(pi/2) = 0 at half the schedule: half the base LR
    assert lr_at_step(COSINE, 9800) == pytest.approx(0.05, rel=1e-9)
    assert lr_at_step(COSINE, 3400) == pytest.approx(0.0927571, rel=1e-5)  # 0.05·(1+cos(34π/196))


@pytest.mark.parametrize("step, expected", [
    (0, 0.01),
    (1700, 0.01 + (0.1 - 0.01) * 0.5),   # warm-up towards lrs[0] * base = 0.1
    (3400, 0.1),
    (9399, 0.1),                          # last iteration before the step at epoch 94
    (9400, 0.01),
    (15400, 0.001),
    (19600, 0.0001),
    (23899, 0.0001),
])
def test_warmup_piecewise_values(step, expected):
    assert lr_at_step(PIECEWISE, step) == pytest.approx(expected, rel=1e-9)


def test_schedule_is_a_function_of_the_step_not_of_history():
    scheduler = build_lr(COSINE, ITERS)
    for step in (5000, 10, 5000):
        scheduler.step(step)
    assert scheduler() == pytest.approx(lr_at_step(COSINE, 5000))
    state = scheduler.state_dict()
    restored = build_lr(COSINE, ITERS)
    restored.set_state_dict(state)
    assert restored() == pytest.approx(scheduler())


def test_epoch_step_mode_counts_whole_epochs():
    cfg = dict(COSINE, iter_step=False)
    # the loop passes global iterations: 98 epochs of 100 iterations, and a bit more
    assert lr_at_step(cfg, 9800) == pytest.approx(0.05)
    assert lr_at_step(cfg, 9899) == pytest.approx(0.05)
    assert lr_at_step(cfg, 9900) == pytest.approx(cosine(99))


def test_unknown_schedule_is_named():
    with pytest.raises(KeyError, match="CustomWarmupCosineDecay"):
        build_lr({"name": "Cosine"}, ITERS)
