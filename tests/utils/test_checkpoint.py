"""Checkpoints: atomic save, exact reload, and loads that name what does not fit."""
import os
import pickle

import numpy as np
import paddle
import pytest

from paddlevideo.modeling import build_model
from paddlevideo.utils.checkpoint import (
    CheckpointError,
    NonFiniteCheckpointError,
    load,
    load_pretrained,
    load_weights,
    non_finite_entries,
    save,
    save_finite_weights,
)
from tests.modeling.small_model import build_small, make_inputs, small_model_cfg


def _eval_probs(model, inputs):
    model.eval()
    with paddle.no_grad():
        return model(list(inputs[:2]), mode="infer").numpy()


def _trained_a_little(seed=0):
    """A small model with non-trivial weights and BN statistics (one SGD step in train mode)."""
    model = build_small(seed=seed)
    model.train()
    optimizer = paddle.optimizer.SGD(learning_rate=0.5, parameters=model.parameters())
    model(make_inputs(seed=seed), mode="train")["loss"].backward()
    optimizer.step()
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(model, path of its saved state dict, eval probabilities on a fixed batch)."""
    model = _trained_a_little()
    path = str(tmp_path_factory.mktemp("ckpt") / "SlowFast_epoch_00001.pdparams")
    save(model.state_dict(), path)
    inputs = make_inputs(seed=1)
    return model, path, inputs, _eval_probs(model, inputs)


def test_save_then_load_reproduces_eval_outputs_exactly(saved):
    _, path, inputs, expected = saved
    fresh = build_small(seed=123)
    assert not np.allclose(_eval_probs(fresh, inputs), expected)
    load_weights(fresh, path)
    np.testing.assert_array_equal(_eval_probs(fresh, inputs), expected)


def test_loaded_state_includes_bn_running_statistics(saved):
    model, path, _, _ = saved
    fresh = build_small(seed=5)
    load_weights(fresh, path)
    bn = model.backbone.s1.pathway0_stem._bn
    assert not np.allclose(bn._mean.numpy(), 0.0)  # the train step moved the statistics
    np.testing.assert_array_equal(fresh.backbone.s1.pathway0_stem._bn._mean.numpy(),
                                  bn._mean.numpy())


def test_load_returns_numpy_dict_with_model_names(saved):
    model, path, _, _ = saved
    state = load(path)
    assert list(state) == list(model.state_dict())
    assert isinstance(state["head.projection.weight"], np.ndarray)


def test_load_weights_from_a_state_dict(saved):
    model, _, inputs, expected = saved
    fresh = build_small(seed=7)
    load_weights(fresh, {k: v.numpy() for k, v in model.state_dict().items()})
    np.testing.assert_array_equal(_eval_probs(fresh, inputs), expected)


def test_float64_checkpoint_is_cast_to_the_model_dtype(saved):
    model, _, inputs, expected = saved
    state64 = {k: v.numpy().astype("float64") for k, v in model.state_dict().items()}
    fresh = build_small(seed=8)
    load_weights(fresh, state64)
    assert fresh.head.projection.weight.dtype == paddle.float32
    np.testing.assert_array_equal(_eval_probs(fresh, inputs), expected)


def test_integer_entry_for_a_float_parameter_is_named(saved):
    model, _, _, _ = saved
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    key = "head.projection.bias"
    state[key] = state[key].astype("int64")
    with pytest.raises(CheckpointError, match=rf"{key}: checkpoint dtype int64"):
        load_weights(build_small(), state)


def test_checkpoint_loads_into_a_sub_batchnorm_model(saved):
    """Multigrid's sub-batch BN keeps the plain BN names, so checkpoints move both ways."""
    _, path, inputs, expected = saved
    split = build_small(seed=9, bn_norm_type="sub_batchnorm", bn_num_splits=2)
    load_weights(split, path)
    np.testing.assert_allclose(_eval_probs(split, inputs), expected, rtol=1e-6, atol=1e-7)


def _mismatch_message(saved, edit):
    _, path, _, _ = saved
    state = load(path)
    edit(state)
    with pytest.raises(CheckpointError) as info:
        load_weights(build_small(), state)
    return str(info.value)


def test_missing_key_is_named(saved):
    key = "backbone.s3.pathway1_res2.branch2.b_bn._variance"
    message = _mismatch_message(saved, lambda s: s.pop(key))
    assert "missing (1)" in message and key in message


def test_unexpected_key_is_named(saved):
    message = _mismatch_message(saved, lambda s: s.update({"backbone.extra.weight": np.ones(3)}))
    assert "unexpected (1)" in message and "backbone.extra.weight" in message


def test_wrong_shape_is_named_with_both_shapes(saved):
    key = "backbone.s1.pathway0_stem._conv.weight"
    message = _mismatch_message(saved, lambda s: s.update({key: np.zeros((8, 3, 3, 7, 7))}))
    assert "shape mismatch (1)" in message
    assert f"{key}: checkpoint [8, 3, 3, 7, 7] vs model [8, 3, 1, 7, 7]" in message


def test_mismatch_leaves_the_model_untouched(saved):
    _, path, inputs, _ = saved
    state = load(path)
    state.pop("head.projection.bias")
    fresh = build_small(seed=11)
    before = _eval_probs(fresh, inputs)
    with pytest.raises(CheckpointError):
        load_weights(fresh, state)
    np.testing.assert_array_equal(_eval_probs(fresh, inputs), before)


def test_other_class_count_is_refused_unless_skip_head(saved):
    model, path, _, _ = saved
    seven = build_model(small_model_cfg(num_classes=7))
    with pytest.raises(CheckpointError) as info:
        load_weights(seven, path)
    message = str(info.value)
    assert "head.projection.weight" in message and "head.projection.bias" in message
    assert "skip_head" in message
    head_before = seven.head.projection.weight.numpy().copy()

    load_weights(seven, path, skip_head=True)
    for name, value in seven.state_dict().items():
        if name.startswith("head."):
            continue
        np.testing.assert_array_equal(value.numpy(), model.state_dict()[name].numpy(), name)
    np.testing.assert_array_equal(seven.head.projection.weight.numpy(), head_before)
    assert seven.head.projection.weight.shape[1] == 7


def test_skip_head_still_checks_the_backbone(saved):
    _, path, _, _ = saved
    state = load(path)
    state.pop("backbone.s5.pathway0_res2.branch2.c_bn.weight")
    with pytest.raises(CheckpointError, match=r"backbone\.s5\.pathway0_res2\.branch2\.c_bn"):
        load_weights(build_small(), state, skip_head=True)


def test_corrupt_file_is_an_error_naming_it(tmp_path, saved):
    _, path, _, _ = saved
    garbage = tmp_path / "garbage.pdparams"
    garbage.write_bytes(b"\x00\x01not a checkpoint" * 50)
    truncated = tmp_path / "truncated.pdparams"
    with open(path, "rb") as f:
        truncated.write_bytes(f.read()[:1000])
    for bad in (garbage, truncated):
        with pytest.raises(CheckpointError, match=str(bad)):
            load_weights(build_small(), str(bad))


def test_missing_file_is_an_error_naming_it(tmp_path):
    missing = str(tmp_path / "nope.pdparams")
    with pytest.raises(CheckpointError, match="not found.*nope.pdparams"):
        load(missing)


def test_file_holding_a_non_dict_is_refused(tmp_path):
    path = str(tmp_path / "list.pdparams")
    paddle.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="list.pdparams.*not a dict"):
        load(path)


def test_atomic_save_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "deep" / "m.pdparams"
    save({"w": paddle.ones([2, 2])}, str(target))
    save({"w": paddle.zeros([2, 2])}, str(target))  # overwrite in place
    assert os.listdir(target.parent) == ["m.pdparams"]
    np.testing.assert_array_equal(load(str(target))["w"], 0.0)


def test_failed_save_keeps_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "m.pdparams"
    save({"w": paddle.ones([2])}, str(target))
    # a function cannot be pickled (a local one: AttributeError; a global one: PicklingError)
    with pytest.raises((pickle.PicklingError, AttributeError), match="pickle"):
        save({"w": lambda: 0}, str(target))
    assert os.listdir(tmp_path) == ["m.pdparams"]
    np.testing.assert_array_equal(load(str(target))["w"], 1.0)


def test_load_pretrained_accepts_whole_model_keys(saved):
    model, path, _, _ = saved
    fresh = build_small(seed=21)
    load_pretrained(fresh.backbone, path, prefix="backbone.")
    for name, value in fresh.backbone.state_dict().items():
        np.testing.assert_array_equal(value.numpy(),
                                      model.backbone.state_dict()[name].numpy(), name)


def test_build_model_loads_backbone_pretrained(saved, tmp_path):
    model, _, _, _ = saved
    path = str(tmp_path / "backbone.pdparams")
    save(model.backbone.state_dict(), path)
    built = build_model(small_model_cfg(pretrained=path))
    key = "s2.pathway0_res0.branch2.a.weight"
    np.testing.assert_array_equal(built.backbone.state_dict()[key].numpy(),
                                  model.backbone.state_dict()[key].numpy())


def test_non_finite_entries_names_parameters_and_bn_buffers(saved):
    model, _, _, _ = saved
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    assert non_finite_entries(state) == []
    state["backbone.s1.pathway0_stem._bn._variance"][0] = np.inf  # a BN buffer
    state["head.projection.weight"][0, 0] = np.nan
    tensors = {k: paddle.to_tensor(v) for k, v in state.items()}
    expected = ["backbone.s1.pathway0_stem._bn._variance", "head.projection.weight"]
    assert non_finite_entries(state) == expected
    assert non_finite_entries(tensors) == expected
    assert non_finite_entries({"opt": {"lr": float("nan"), "step": 3}}) == ["opt.lr"]


def test_save_finite_weights_refuses_nan_and_keeps_the_previous_file(tmp_path):
    target = tmp_path / "SlowFast_best.pdparams"
    save_finite_weights({"w": paddle.ones([2])}, str(target))
    state = {f"layer{i}.weight": paddle.full([2], float("nan")) for i in range(12)}
    state["ok"] = paddle.ones([2])
    with pytest.raises(NonFiniteCheckpointError) as info:
        save_finite_weights(state, str(target))
    message = str(info.value)
    assert str(target) in message and "12 entries" in message
    assert "layer0.weight" in message and "layer9.weight" in message
    assert "layer10.weight" not in message and "and 2 more" in message
    assert info.value.keys == [f"layer{i}.weight" for i in range(12)]
    np.testing.assert_array_equal(load(str(target))["w"], 1.0)
    assert os.listdir(tmp_path) == ["SlowFast_best.pdparams"]
