"""Loss, accuracy metrics of the recognizer, and that BN parameters escape weight decay."""
import numpy as np
import paddle
import pytest

from paddlevideo.modeling import build_loss
from paddlevideo.modeling.backbones.resnet_slowfast import _conv3d, make_norm

LOGITS = np.array([[2.0, 1.0, 0.0, -1.0, 0.5, 0.1],
                   [0.0, 3.0, 1.0, 0.0, 0.0, 0.0],
                   [1.0, 0.5, 0.4, -2.0, 0.3, 2.0]], dtype="float32")
LABELS = np.array([[0], [2], [3]], dtype="int64")


def _reference_cross_entropy(logits, labels):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(labels)), labels[:, 0]].mean()


@pytest.mark.parametrize("weight", [1.0, 0.5])
def test_cross_entropy_matches_reference(weight):
    loss = build_loss({"name": "CrossEntropyLoss", "loss_weight": weight})
    value = loss(paddle.to_tensor(LOGITS), paddle.to_tensor(LABELS[:, 0]))  # [N] labels work too
    assert value.shape == []
    np.testing.assert_allclose(float(value), weight * _reference_cross_entropy(LOGITS, LABELS),
                               rtol=1e-5)


def test_loss_metrics_top1_top5(small_model):
    out = small_model.loss_metrics(paddle.to_tensor(LOGITS), paddle.to_tensor(LABELS))
    # row 0: label is the arg-max; row 1: label 2 ranks 2nd; row 2: label 3 ranks last (6th)
    assert float(out["top1"]) == pytest.approx(1 / 3)
    assert float(out["top5"]) == pytest.approx(2 / 3)
    np.testing.assert_allclose(float(out["loss"]), _reference_cross_entropy(LOGITS, LABELS),
                               rtol=1e-5)


def test_loss_metrics_with_fewer_than_five_classes(small_model):
    logits = paddle.to_tensor([[0.0, 1.0], [1.0, 0.0]])
    out = small_model.loss_metrics(logits, paddle.to_tensor([[0], [0]], dtype="int64"))
    assert float(out["top1"]) == pytest.approx(0.5)
    assert float(out["top5"]) == pytest.approx(1.0)


def test_optimizer_weight_decay_skips_bn_but_not_conv():
    """A global L2 decay shrinks conv weights; BN affine parameters keep their value."""
    paddle.seed(0)
    conv = _conv3d(3, 4, [1, 1, 1], [1, 1, 1], [0, 0, 0])
    norm = make_norm(4, init_weight=1.0)
    params = conv.parameters() + norm.parameters()
    optimizer = paddle.optimizer.Momentum(learning_rate=0.1, momentum=0.0, parameters=params,
                                          weight_decay=paddle.regularizer.L2Decay(1.0))
    conv_before = conv.weight.numpy().copy()
    loss = 0.0 * (conv.weight.sum() + norm.weight.sum() + norm.bias.sum())
    loss.backward()
    optimizer.step()
    np.testing.assert_allclose(conv.weight.numpy(), conv_before * (1 - 0.1), rtol=1e-5)
    np.testing.assert_array_equal(norm.weight.numpy(), 1.0)
    np.testing.assert_array_equal(norm.bias.numpy(), 0.0)
