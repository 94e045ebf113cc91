"""SubBatchNorm3D behaves like plain BatchNorm3D on each sub-batch and saves plain BN names."""
import numpy as np
import paddle
import paddle.nn as nn
import pytest

from paddlevideo.modeling.builder import build_model
from paddlevideo.modeling.layers import SubBatchNorm3D, aggregate_sub_bn_stats, reset_sub_bn_stats
from paddlevideo.utils.config import get_config

C, K = 3, 4


def _input(n=8, seed=0):
    rng = np.random.default_rng(seed)
    # a different offset and scale per sample, so the splits really have different statistics
    x = rng.standard_normal((n, C, 2, 3, 3)) * rng.uniform(0.5, 3, (n, 1, 1, 1, 1))
    return paddle.to_tensor((x + rng.uniform(-2, 2, (n, 1, 1, 1, 1))).astype("float32"))


def _sub_bn():
    layer = SubBatchNorm3D(C, K)
    with paddle.no_grad():
        layer.weight.set_value(paddle.to_tensor([0.5, 2.0, -1.0]))
        layer.bias.set_value(paddle.to_tensor([0.1, -0.3, 0.7]))
    return layer


def _plain_bn(sub):
    plain = nn.BatchNorm3D(C, momentum=0.9, epsilon=1e-5)
    plain.set_state_dict(sub.state_dict())
    return plain


def test_training_matches_plain_bn_on_each_split():
    sub = _sub_bn()
    x = _input()
    out = sub(x).numpy()
    split_means = sub._split_mean.numpy().reshape(K, C)
    split_vars = sub._split_variance.numpy().reshape(K, C)
    for split in range(K):
        # sub-batch ``split`` holds samples split, split + K, ... (the [N/K, C·K] view)
        plain = _plain_bn(_sub_bn())
        plain.train()
        expected = plain(x[split::K]).numpy()
        np.testing.assert_allclose(out[split::K], expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(split_means[split], plain._mean.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(split_vars[split], plain._variance.numpy(), rtol=1e-5)
    assert not np.allclose(split_means[0], split_means[1])


def test_eval_uses_the_plain_statistics():
    sub = _sub_bn()
    with paddle.no_grad():
        sub._mean.set_value(paddle.to_tensor([1.0, -1.0, 0.5]))
        sub._variance.set_value(paddle.to_tensor([4.0, 0.25, 1.0]))
    sub(_input())                     # a training step changes only the split statistics
    np.testing.assert_allclose(sub._mean.numpy(), [1.0, -1.0, 0.5])
    sub.eval()
    plain = _plain_bn(sub)
    plain.eval()
    x = _input(n=2, seed=1)           # eval works on any batch size
    np.testing.assert_allclose(sub(x).numpy(), plain(x).numpy(), rtol=1e-6, atol=1e-6)


def test_aggregate_is_mean_and_total_variance():
    sub = _sub_bn()
    for seed in range(3):
        sub(_input(seed=seed))
    means = sub._split_mean.numpy().reshape(K, C)
    variances = sub._split_variance.numpy().reshape(K, C)
    model = nn.Sequential(nn.Conv3D(C, C, 1), sub)
    assert aggregate_sub_bn_stats(model) == 1
    np.testing.assert_allclose(sub._mean.numpy(), means.mean(0), rtol=1e-6)
    expected_var = variances.mean(0) + ((means - means.mean(0)) ** 2).mean(0)
    np.testing.assert_allclose(sub._variance.numpy(), expected_var, rtol=1e-6)
    assert np.all(sub._variance.numpy() > variances.mean(0))


def test_reset_copies_plain_statistics_into_every_split():
    sub = _sub_bn()
    with paddle.no_grad():
        sub._mean.set_value(paddle.to_tensor([1.0, 2.0, 3.0]))
    reset_sub_bn_stats(sub)
    np.testing.assert_allclose(sub._split_mean.numpy(), [1.0, 2.0, 3.0] * K)


def test_state_dict_names_equal_plain_batchnorm():
    sub_keys = {k: tuple(v.shape) for k, v in SubBatchNorm3D(C, K).state_dict().items()}
    plain_keys = {k: tuple(v.shape) for k, v in nn.BatchNorm3D(C).state_dict().items()}
    assert sub_keys == plain_keys


def test_indivisible_batch_is_a_clear_error():
    with pytest.raises(ValueError, match="batch size 6 is not divisible by num_splits 4"):
        _sub_bn()(_input(n=6))


def _small_model(**backbone):
    cfg = get_config("configs/recognition/slowfast/slowfast_multigrid.yaml")
    cfg.MODEL.backbone.update(width_per_group=8, **backbone)
    cfg.MODEL.head.update(width_per_group=8, num_classes=5)
    paddle.seed(0)
    return build_model(cfg.MODEL)


def test_model_with_sub_batchnorm_loads_the_plain_checkpoint():
    plain = _small_model()
    sub = _small_model(bn_norm_type="sub_batchnorm", bn_num_splits=2)
    assert any(isinstance(layer, SubBatchNorm3D) for layer in sub.sublayers())
    plain_state = plain.state_dict()
    sub_state = sub.state_dict()
    assert list(sub_state) == list(plain_state)
    assert all(sub_state[k].shape == plain_state[k].shape for k in plain_state)

    sub.set_state_dict(plain_state)
    plain.eval()
    sub.eval()
    fast = paddle.randn([2, 3, 8, 32, 32])
    inputs = [fast[:, :, ::4], fast]
    np.testing.assert_allclose(sub(inputs, mode="infer").numpy(),
                               plain(inputs, mode="infer").numpy(), rtol=1e-5, atol=1e-6)
    # a training step on sub-batches, aggregated, loads back into the plain model
    sub.train()
    loss = sub([inputs[0], inputs[1], paddle.to_tensor([[1], [3]])], mode="train")["loss"]
    loss.backward()
    stem_bn = sub.backbone.s1.pathway0_stem._bn
    assert stem_bn.weight.grad is not None
    split_means = stem_bn._split_mean.numpy().reshape(2, -1)
    aggregate_sub_bn_stats(sub)
    plain.set_state_dict(sub.state_dict())
    np.testing.assert_allclose(plain.backbone.s1.pathway0_stem._bn._mean.numpy(),
                               split_means.mean(0), rtol=1e-6)
