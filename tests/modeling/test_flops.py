"""MAC counting: single layers by hand, then the published SlowFast figures."""
import paddle
import paddle.nn as nn
import pytest

from paddlevideo.modeling.builder import build_model
from paddlevideo.modeling.flops import count_macs, slowfast_inputs
from paddlevideo.utils.config import get_config

CONFIGS = "configs/recognition/slowfast/"


def test_conv3d_macs_by_hand():
    conv = nn.Conv3D(4, 6, [3, 3, 3], stride=[1, 2, 2], padding=1, groups=2)
    count = count_macs(conv, paddle.zeros([2, 4, 5, 8, 8]))
    # output [2, 6, 5, 4, 4]; each output element: 4/2 input channels × 27 taps
    assert count.total == 2 * 6 * 5 * 4 * 4 * 2 * 27
    assert count.batch_size == 2
    assert count.gmacs_per_sample == pytest.approx(6 * 5 * 4 * 4 * 2 * 27 / 1e9)


def test_linear_macs_per_output_row():
    model = nn.Sequential(nn.Linear(10, 7), nn.ReLU(), nn.Linear(7, 3))
    count = count_macs(model, paddle.zeros([4, 5, 10]))
    assert count.by_type == {"Linear": 4 * 5 * (10 * 7 + 7 * 3)}


def test_hooks_are_removed_and_mode_restored():
    model = nn.Sequential(nn.Conv2D(3, 2, 1))
    model.train()
    count_macs(model, paddle.zeros([1, 3, 4, 4]))
    assert model.training
    assert count_macs(model, paddle.zeros([1, 3, 4, 4])).total == 2 * 16 * 3


def _model(name, **backbone):
    cfg = get_config(CONFIGS + name)
    cfg.MODEL.backbone.update(backbone)
    cfg.MODEL.head.width_per_group = cfg.MODEL.backbone.width_per_group
    return build_model(cfg.MODEL), cfg.MODEL.backbone.alpha


def test_conv_macs_scale_with_crop_area():
    """Crops that are multiples of 32 keep every feature map proportional, so conv MACs scale
    exactly with S² — which lets the full-size figures below come from a 64-pixel forward."""
    model, alpha = _model("slowfast_multigrid.yaml", width_per_group=8)
    small = count_macs(model, slowfast_inputs(8, 64, alpha), mode="infer").by_type["Conv3D"]
    large = count_macs(model, slowfast_inputs(8, 128, alpha), mode="infer").by_type["Conv3D"]
    assert large == 4 * small


@pytest.mark.slow
def test_slowfast_4x16_at_256_is_36_1_gmacs():
    model, alpha = _model("slowfast.yaml")
    at_256 = count_macs(model, slowfast_inputs(32, 256, alpha), mode="infer")
    assert at_256.gmacs_per_sample == pytest.approx(36.1, rel=0.02)
    at_64 = count_macs(model, slowfast_inputs(32, 64, alpha), mode="infer")
    assert at_256.by_type["Conv3D"] == 16 * at_64.by_type["Conv3D"]


def test_slowfast_8x8_at_256_is_65_7_gmacs():
    # full width at 64 pixels, scaled by (256/64)² as justified above
    model, alpha = _model("slowfast_multigrid.yaml")
    conv_at_64 = count_macs(model, slowfast_inputs(32, 64, alpha), mode="infer").by_type["Conv3D"]
    assert 16 * conv_at_64 / 1e9 == pytest.approx(65.7, rel=0.02)
