"""Fine-tuning weights: the backbone loaded, a head that does not fit made fresh, other
mismatches named."""
import numpy as np
import paddle
import pytest

from paddlevideo.modeling import build_model
from paddlevideo.modeling.finetune import checkpoint_classes, load_finetune_weights
from paddlevideo.utils.checkpoint import CheckpointError
from tests.modeling.small_model import build_small, small_model_cfg


def _state(model):
    return {k: v.numpy() for k, v in model.state_dict().items()}


def _assert_backbone_equal(model, state):
    for key, value in model.state_dict().items():
        if key.startswith("backbone."):
            np.testing.assert_array_equal(value.numpy(), state[key], err_msg=key)


def test_eight_class_checkpoint_into_four_class_model():
    source = _state(build_small(seed=1, num_classes=8))
    model = build_small(seed=2, num_classes=4)
    fresh_head = model.head.projection.weight.numpy().copy()
    note = load_finetune_weights(model, source)
    assert note == "head: checkpoint has 8 classes, this run 4: head initialised fresh"
    _assert_backbone_equal(model, source)
    assert model.head.projection.weight.shape == [fresh_head.shape[0], 4]
    np.testing.assert_array_equal(model.head.projection.weight.numpy(), fresh_head)
    assert checkpoint_classes(source) == 8


def test_fitting_head_is_loaded_and_no_line_is_logged():
    source = _state(build_small(seed=1, num_classes=4))
    model = build_small(seed=2, num_classes=4)
    assert load_finetune_weights(model, source) is None
    np.testing.assert_array_equal(model.head.projection.weight.numpy(),
                                  source["head.projection.weight"])


def test_checkpoint_without_classifier_and_explicit_skip_head():
    source = {k: v for k, v in _state(build_small(seed=1)).items() if not k.startswith("head.")}
    model = build_small(seed=2)
    assert "checkpoint has no classifier" in load_finetune_weights(model, source)
    _assert_backbone_equal(model, source)
    full = _state(build_small(seed=1))
    model = build_small(seed=3)
    head = model.head.projection.weight.numpy().copy()
    assert "skip_head=True" in load_finetune_weights(model, full, skip_head=True)
    np.testing.assert_array_equal(model.head.projection.weight.numpy(), head)


def test_other_mismatch_stays_an_error_naming_keys():
    other_depth = _state(build_model({**small_model_cfg(num_classes=8),
                                      "backbone": {**small_model_cfg()["backbone"],
                                                   "fusion_kernel_sz": 7}}))
    with pytest.raises(CheckpointError, match=r"shape mismatch.*backbone\.") as err:
        load_finetune_weights(build_small(num_classes=4), other_depth, source="x.pdparams")
    assert "x.pdparams does not fit the model" in str(err.value)


def test_backbone_pretrained_takes_the_backbone_of_another_class_count(tmp_path):
    source = build_small(seed=1, num_classes=8)
    path = str(tmp_path / "k8.pdparams")
    paddle.save(source.state_dict(), path)
    cfg = small_model_cfg(num_classes=4)
    cfg["backbone"]["pretrained"] = path
    model = build_model(cfg)
    _assert_backbone_equal(model, _state(source))
    assert model.head.projection.weight.shape[-1] == 4
