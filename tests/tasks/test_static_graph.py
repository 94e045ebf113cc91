"""``apply_to_static``: same training as dygraph through a static backbone, and the fallback."""
import numpy as np
import paddle
import paddle.nn as nn
import pytest

from paddlevideo.modeling.framework import Recognizer3D
from paddlevideo.modeling.heads import SlowFastHead
from paddlevideo.tasks.static_graph import (
    ToStaticFallbackWarning,
    apply_to_static,
    convert_info,
    is_static,
)
from tests.modeling.small_model import build_small, make_inputs

CROP = 32  # the backbone's program does not depend on the crop; a small one keeps steps quick


def _train_three_steps(to_static: bool):
    """3 Momentum steps of the narrow model (same seed, same batches); losses, model, probs."""
    model = build_small(seed=3, crop_size=CROP)
    model = apply_to_static(model, to_static)
    optimizer = paddle.optimizer.Momentum(0.05, momentum=0.9, parameters=model.parameters())
    paddle.seed(11)  # the head's dropout draws the same masks in both runs
    model.train()
    losses, grad_norms = [], []
    for step in range(3):
        outputs = model(make_inputs(batch=2, crop=CROP, seed=step), mode="train")
        outputs["loss"].backward()
        stem_grad = model.backbone.s1.pathway0_stem._conv.weight.grad
        grad_norms.append(float(paddle.linalg.norm(stem_grad)))
        optimizer.step()
        optimizer.clear_grad()
        losses.append(float(outputs["loss"]))
    model.eval()
    with paddle.no_grad():  # 3 clips: a batch size the program has not seen
        probs = model(make_inputs(batch=3, crop=CROP, seed=9), mode="test").numpy()
    return losses, grad_norms, model, probs


def test_static_training_matches_dygraph():
    dy_losses, dy_grads, dy_model, dy_probs = _train_three_steps(False)
    st_losses, st_grads, st_model, st_probs = _train_three_steps(True)
    assert convert_info(dy_model) == "dygraph" and not is_static(dy_model)
    assert convert_info(st_model) == "static"
    np.testing.assert_allclose(st_losses, dy_losses, rtol=1e-5, atol=1e-6)
    # gradients reach the first convolution through the static program
    assert all(g > 0 for g in st_grads)
    np.testing.assert_allclose(st_grads, dy_grads, rtol=1e-4)
    dy_state, st_state = dy_model.state_dict(), st_model.state_dict()
    assert list(st_state) == list(dy_state)  # the checkpoint layout is unchanged
    initial = build_small(seed=3, crop_size=CROP).state_dict()
    moved = [k for k in st_state if not np.allclose(st_state[k].numpy(), initial[k].numpy())]
    assert len(moved) > len(st_state) // 2  # parameters and BN statistics were updated
    for key in dy_state:
        np.testing.assert_allclose(st_state[key].numpy(), dy_state[key].numpy(), rtol=1e-4,
                                   atol=1e-6, err_msg=key)
    assert st_probs.shape == (3, 5)
    np.testing.assert_allclose(st_probs, dy_probs, rtol=1e-4, atol=1e-6)


class NumpyBackbone(nn.Layer):
    """A backbone that reads a tensor value in Python, which a full static graph cannot do."""

    def __init__(self) -> None:
        super().__init__()
        # the channel counts SlowFastHead(width_per_group=1, beta=4) expects: 32 and 8
        self.slow_proj = nn.Conv3D(3, 32, 1)
        self.fast_proj = nn.Conv3D(3, 8, 1)

    def forward(self, inputs):
        slow, fast = inputs
        # getattr keeps dy2static from rewriting the call: the tensor's value is read in Python
        scale = 1.0 + 0.0 * float(np.mean(getattr(slow, "numpy")()))  # noqa: B009
        return [self.slow_proj(slow) * scale, self.fast_proj(fast)]


def test_unconvertible_backbone_falls_back_to_dygraph_with_reason():
    paddle.seed(0)
    head = SlowFastHead(width_per_group=1, alpha=4, beta=4, num_classes=5, num_frames=8,
                        crop_size=32, dropout_rate=0.0)
    model = Recognizer3D(NumpyBackbone(), head)
    slow, fast, label = make_inputs(batch=2, crop=8, frames=8, seed=1)
    model.eval()
    with paddle.no_grad():
        expected = model([slow, fast], mode="infer").numpy()
    apply_to_static(model, True)
    assert convert_info(model) == "pending"
    reason = (r"to_static failed \(AssertionError: 'numpy' only can be called by `paddle.Tensor` "
              r"in dynamic graph mode.* at test_static_graph.py:\d+ in forward\); training in "
              r"dygraph")
    with pytest.warns(ToStaticFallbackWarning, match=reason):
        with paddle.no_grad():
            first = model([slow, fast], mode="infer").numpy()
    assert convert_info(model) == "dygraph"
    np.testing.assert_allclose(first, expected, rtol=1e-6)
    model.train()
    outputs = model([slow, fast, label], mode="train")  # later calls: plain dygraph, no warning
    outputs["loss"].backward()
    assert model.backbone.slow_proj.weight.grad is not None


def test_disabled_leaves_model_untouched():
    model = build_small(seed=0, crop_size=CROP)
    assert apply_to_static(model, False) is model
    assert "forward" not in model.backbone.__dict__ and convert_info(model) == "dygraph"
    with pytest.raises(TypeError, match="no backbone layer"):
        apply_to_static(nn.Linear(2, 2), True)


def test_precise_bn_under_to_static_measures_the_batch_statistics():
    # the program keeps the momentum it was traced with: precise BN (momentum 0) must not run it
    from paddlevideo.tasks.precise_bn import bn_layers, do_preciseBN

    reference, model = build_small(seed=0, dropout_rate=0.0), build_small(seed=0, dropout_rate=0.0)
    apply_to_static(model, True)
    for net in (reference, model):
        net.train()
        net(list(make_inputs(batch=2, seed=1)), mode="train")  # traces the training program
    batches = [list(make_inputs(batch=2, seed=s)) for s in (3, 4)]
    assert do_preciseBN(reference, batches) == do_preciseBN(model, batches) == 2
    for got, expected in zip(bn_layers(model), bn_layers(reference)):
        np.testing.assert_allclose(got._mean.numpy(), expected._mean.numpy(), rtol=1e-4,
                                   atol=1e-5)
        np.testing.assert_allclose(got._variance.numpy(), expected._variance.numpy(),
                                   rtol=1e-4, atol=1e-5)
    assert convert_info(model) == "static"  # training goes on in the program
