import numpy as np
import paddle
import pytest

from paddlevideo.modeling import build_model
from paddlevideo.solver import build_lr, build_optimizer
from paddlevideo.utils.config import ConfigError

SMALL = {"framework": "Recognizer3D",
         "backbone": {"name": "ResNetSlowFast", "alpha": 4, "beta": 4, "width_per_group": 8},
         "head": {"name": "SlowFastHead", "alpha": 4, "beta": 4, "width_per_group": 8,
                  "num_classes": 3, "num_frames": 8, "crop_size": 32, "dropout_rate": 0.0}}
OPT = {"name": "Momentum", "momentum": 0.9, "use_nesterov": True,
       "weight_decay": {"name": "L2", "value": "1e-4"}}  # a string, as YAML reads 1e-4


def _lr():
    return build_lr({"name": "CustomWarmupCosineDecay", "warmup_start_lr": 0.1,
                     "warmup_epochs": 0.0001, "cosine_base_lr": 0.1, "max_epoch": 1000}, 1)


def test_bn_parameters_are_not_decayed():
    paddle.seed(0)
    model = build_model(SMALL)
    optimizer = build_optimizer(OPT, _lr(), model)
    assert isinstance(optimizer, paddle.optimizer.Momentum)
    bn = model.backbone.s1.pathway0_stem._bn
    conv = model.backbone.s1.pathway0_stem._conv
    # zero gradients: only weight decay moves a parameter
    before_bn, before_conv = bn.weight.numpy().copy(), conv.weight.numpy().copy()
    for p in model.parameters():
        p.clear_gradient(False)
        p._set_grad_ivar(paddle.zeros_like(p))
    optimizer.step()
    np.testing.assert_array_equal(bn.weight.numpy(), before_bn)
    assert not np.allclose(conv.weight.numpy(), before_conv)
    # Momentum with L2: w -= lr * (wd * w) on the first step (nesterov adds momentum * that)
    expected = before_conv - 0.1 * 1e-4 * before_conv * (1 + 0.9)
    np.testing.assert_allclose(conv.weight.numpy(), expected, rtol=1e-4, atol=1e-10)


def test_bad_weight_decay_value_names_the_key():
    model = build_model(SMALL)
    with pytest.raises(ConfigError, match="OPTIMIZER.weight_decay.value"):
        build_optimizer(dict(OPT, weight_decay={"name": "L2", "value": "abc"}), _lr(), model)


def test_unknown_optimizer_is_named():
    model = build_model(SMALL)
    with pytest.raises(ConfigError, match="Adagrad"):
        build_optimizer(dict(OPT, name="Adagrad"), _lr(), model)


def test_adamw_decays_conv_weights_but_not_bn():
    paddle.seed(0)
    model = build_model(SMALL)
    optimizer = build_optimizer({"name": "AdamW", "weight_decay": {"name": "L2", "value": 0.5}},
                                _lr(), model)
    assert isinstance(optimizer, paddle.optimizer.AdamW)
    bn = model.backbone.s1.pathway0_stem._bn
    conv = model.backbone.s1.pathway0_stem._conv
    before_bn, before_conv = bn.weight.numpy().copy(), conv.weight.numpy().copy()
    for p in model.parameters():
        p._set_grad_ivar(paddle.zeros_like(p))
    optimizer.step()
    np.testing.assert_array_equal(bn.weight.numpy(), before_bn)
    # decoupled decay: w ← w · (1 − lr · coeff) when the gradient is zero
    np.testing.assert_allclose(conv.weight.numpy(), before_conv * (1 - 0.1 * 0.5), rtol=1e-5)
