"""Full-width R50 SlowFast models: PaddleVideo's state-dict layout, parameter counts and init.

These models are only built (never run forward on CPU: that is what benchmarks/ is for).
"""
import math
import os

import numpy as np
import pytest

from paddlevideo.modeling import build_model
from paddlevideo.utils.config import get_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REFERENCE = os.path.join(os.path.dirname(REPO), "shared", "reference")
VARIANTS = {
    "4x16": ("slowfast.yaml", 34_480_216),
    "8x8": ("slowfast_multigrid.yaml", 34_566_488),
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request):
    config_name, count = VARIANTS[request.param]
    cfg = get_config(os.path.join(REPO, "configs", "recognition", "slowfast", config_name))
    return request.param, build_model(cfg.MODEL), count


def _state_dict_lines(model):
    lines = []
    for name, value in model.state_dict().items():
        dtype = str(value.dtype).replace("paddle.", "")
        lines.append(f"{name} {list(value.shape)} {dtype}")
    return lines


def test_state_dict_equals_paddlevideo_reference(variant):
    name, model, _ = variant
    with open(os.path.join(REFERENCE, f"slowfast_{name}_state_dict.txt")) as f:
        reference = f.read().splitlines()
    lines = _state_dict_lines(model)
    assert len(lines) == len(reference) == 552
    for i, (got, want) in enumerate(zip(lines, reference)):
        assert got == want, f"line {i + 1}"


def test_trainable_parameter_count(variant):
    _, model, count = variant
    trainable = sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)
    assert trainable == count


def _norm_layers(model):
    return [(n, layer) for n, layer in model.named_sublayers()
            if hasattr(layer, "_mean") and hasattr(layer, "weight")]


def test_bn_parameters_have_no_weight_decay_and_convs_do(variant):
    _, model, _ = variant
    norms = _norm_layers(model)
    # 552 entries = 110 convs + 110 BNs × 4 (weight, bias, _mean, _variance) + linear weight, bias
    assert len(norms) == 110
    for name, layer in norms:
        for param in (layer.weight, layer.bias):
            reg = param.regularizer
            assert reg is not None and reg._coeff == 0.0, f"{name}: {reg}"
    for name, param in model.named_parameters():
        if name.endswith(".weight") and len(param.shape) in (2, 5):  # Linear and Conv3D
            assert param.regularizer is None, name


def test_bn_init_and_zero_init_of_last_bn_in_each_block(variant):
    _, model, _ = variant
    zero_init = 0
    for name, layer in _norm_layers(model):
        weight = layer.weight.numpy()
        expected = 0.0 if name.endswith("branch2.c_bn") else 1.0
        zero_init += expected == 0.0
        np.testing.assert_array_equal(weight, np.full_like(weight, expected), err_msg=name)
        np.testing.assert_array_equal(layer.bias.numpy(), 0.0, err_msg=name)
        np.testing.assert_array_equal(layer._mean.numpy(), 0.0, err_msg=name)
        np.testing.assert_array_equal(layer._variance.numpy(), 1.0, err_msg=name)
    assert zero_init == 2 * (3 + 4 + 6 + 3)  # one per bottleneck block, two pathways


def test_head_projection_init(variant):
    _, model, _ = variant
    weight = model.head.projection.weight.numpy()
    assert weight.shape == (2304, 400)
    assert abs(weight.std() - 0.01) < 0.0003
    assert abs(weight.mean()) < 0.0003
    np.testing.assert_array_equal(model.head.projection.bias.numpy(), 0.0)


def test_conv_init_is_kaiming_normal_fan_out(variant):
    _, model, _ = variant
    for name in ("s5.pathway0_res0.branch2.b", "s4.pathway0_res1.branch2.c",
                 "s1.pathway0_stem._conv"):
        weight = model.backbone
        for part in name.split("."):
            weight = getattr(weight, part)
        weight = weight.weight.numpy()
        fan_out = weight.shape[0] * int(np.prod(weight.shape[2:]))
        expected = math.sqrt(2.0 / fan_out)
        assert abs(weight.std() / expected - 1) < 0.05, name
        assert abs(weight.mean()) < 0.05 * expected, name
