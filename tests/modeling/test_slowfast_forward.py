"""Forward/backward of a narrow SlowFast on small clips: shapes, values, gradients, pooling."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from .small_model import CROP, NUM_CLASSES, NUM_FRAMES, WIDTH, build_small, make_inputs

VARIANTS = [(4, 4), (8, 8)]  # (alpha, beta)


@pytest.mark.parametrize("alpha, beta", VARIANTS)
def test_backbone_output_shapes_per_pathway(alpha, beta):
    model = build_small(alpha=alpha, beta=beta)
    slow, fast, _ = make_inputs(batch=2, alpha=alpha)
    model.eval()
    with paddle.no_grad():
        out_slow, out_fast = model.backbone([slow, fast])
    spatial = CROP // 32
    assert out_slow.shape == [2, 32 * WIDTH, NUM_FRAMES // alpha, spatial, spatial]
    assert out_fast.shape == [2, 32 * WIDTH // beta, NUM_FRAMES, spatial, spatial]
    assert model.backbone.out_channels == [32 * WIDTH, 32 * WIDTH // beta]


def test_intermediate_stage_shapes_include_fused_channels(small_model, small_inputs):
    """Lateral fusion doubles the fast channels and appends them to the slow ones."""
    backbone = small_model.backbone
    small_model.eval()
    slow, fast, _ = small_inputs
    with paddle.no_grad():
        x = backbone.s1([slow, fast])
        assert x[0].shape == [2, WIDTH, 4, CROP // 4, CROP // 4]
        assert x[1].shape == [2, WIDTH // 4, 16, CROP // 4, CROP // 4]
        x = backbone.s1_fuse(x)
        assert x[0].shape == [2, WIDTH + 2 * WIDTH // 4, 4, CROP // 4, CROP // 4]
        x = backbone.s2_fuse(backbone.s2(x))
        assert x[0].shape == [2, 4 * WIDTH + 2 * 4 * WIDTH // 4, 4, CROP // 4, CROP // 4]
        assert x[1].shape == [2, 4 * WIDTH // 4, 16, CROP // 4, CROP // 4]


@pytest.mark.parametrize("alpha, beta", VARIANTS)
def test_train_mode_returns_scalar_loss_and_accuracies(alpha, beta):
    model = build_small(alpha=alpha, beta=beta)
    model.train()
    batch = make_inputs(batch=3, alpha=alpha)
    out = model(batch, mode="train")
    assert set(out) == {"loss", "top1", "top5"}
    for key, value in out.items():
        assert value.shape == [], key
        assert np.isfinite(float(value)), key
    assert 0.0 <= float(out["top1"]) <= float(out["top5"]) <= 1.0
    # with 5 classes top-5 accuracy is always 1
    assert float(out["top5"]) == 1.0
    # a freshly initialised head gives logits near zero: loss ≈ log(K)
    assert abs(float(out["loss"]) - np.log(NUM_CLASSES)) < 0.5


def test_valid_mode_in_eval_is_deterministic_dict(small_model, small_inputs):
    small_model.eval()
    with paddle.no_grad():
        first = small_model(small_inputs, mode="valid")
        second = small_model(small_inputs, mode="valid")
    assert set(first) == {"loss", "top1", "top5"}
    assert float(first["loss"]) == float(second["loss"])


@pytest.mark.parametrize("alpha, beta", VARIANTS)
def test_eval_probabilities_sum_to_one(alpha, beta):
    model = build_small(alpha=alpha, beta=beta)
    model.eval()
    slow, fast, label = make_inputs(batch=2, alpha=alpha)
    clip_index = paddle.to_tensor([[0], [1]], dtype="int64")
    with paddle.no_grad():
        infer = model([slow, fast], mode="infer")
        test = model((slow, fast, label, clip_index), mode="test")
    assert infer.shape == [2, NUM_CLASSES]
    probs = infer.numpy()
    assert np.all(np.isfinite(probs)) and np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(test.numpy(), probs)


def test_infer_equals_softmax_of_train_logits_in_eval(small_model, small_inputs):
    """At the training crop the head pools to one position: probs = softmax(logits)."""
    small_model.eval()
    slow, fast, _ = small_inputs
    with paddle.no_grad():
        logits = small_model.forward_net([slow, fast])
        probs = small_model([slow, fast], mode="infer")
    np.testing.assert_allclose(probs.numpy(), F.softmax(logits, axis=-1).numpy(), rtol=1e-5,
                               atol=1e-7)


def test_paddlevideo_step_methods(small_model, small_inputs):
    small_model.eval()
    slow, fast, label = small_inputs
    with paddle.no_grad():
        probs = small_model.test_step((slow, fast, label)).numpy()
        np.testing.assert_array_equal(small_model.infer_step([slow, fast]).numpy(), probs)
        metrics = small_model.val_step((slow, fast, label))
    assert set(metrics) == {"loss", "top1", "top5"}
    expected_top1 = np.mean(probs.argmax(axis=1) == label.numpy()[:, 0])
    assert float(metrics["top1"]) == pytest.approx(expected_top1)


def test_unknown_mode_is_an_error(small_model, small_inputs):
    with pytest.raises(ValueError, match="'predict'"):
        small_model(small_inputs, mode="predict")


def test_dropout_only_in_train_mode(small_inputs):
    model = build_small(dropout_rate=0.9)
    slow, fast, _ = small_inputs
    model.eval()
    with paddle.no_grad():
        a = model.forward_net([slow, fast]).numpy()
        b = model.forward_net([slow, fast]).numpy()
    np.testing.assert_array_equal(a, b)
    model.train()
    model.head.dropout.train()
    feats = [f.detach() for f in model.backbone([slow, fast])]
    c = model.head(feats).numpy()
    d = model.head(feats).numpy()
    assert not np.allclose(c, d)


@pytest.mark.parametrize("alpha, beta", VARIANTS)
def test_backward_gives_a_finite_gradient_on_every_trainable_parameter(alpha, beta):
    model = build_small(alpha=alpha, beta=beta)
    model.train()
    out = model(make_inputs(batch=2, alpha=alpha), mode="train")
    out["loss"].backward()
    trainable = [(n, p) for n, p in model.named_parameters() if not p.stop_gradient]
    assert len(trainable) == 2 * 110 + 110 + 2  # BN weight+bias, conv weights, linear w+b
    zero_grad = []
    for name, param in trainable:
        assert param.grad is not None, name
        grad = param.grad.numpy()
        assert grad.shape == tuple(param.shape), name
        assert np.all(np.isfinite(grad)), name
        if not np.any(grad != 0):
            zero_grad.append(name)
    # Each block's last BN starts at weight 0, so at initialisation nothing flows back into the
    # residual branch before it (convs a, b, c and BNs a, b). Everything else gets a signal:
    # stems, lateral connections, shortcuts, the last BNs' affine and the head.
    inside_branch = ("branch2.a.", "branch2.a_bn.", "branch2.b.", "branch2.b_bn.", "branch2.c.")
    assert zero_grad == [n for n, _ in trainable if any(part in n for part in inside_branch)]
    assert len(trainable) - len(zero_grad) == 6 + 12 + 24 + 64 + 2


def _head_probs_by_hand(model, feats, pool):
    """Softmax over classes at each pooled position, averaged over positions."""
    pooled = [pool(x, p) for p, x in enumerate(feats)]
    x = paddle.concat(pooled, axis=1).transpose([0, 2, 3, 4, 1])
    scores = F.softmax(model.head.projection(x), axis=-1)
    return scores.reshape([x.shape[0], -1, NUM_CLASSES]).mean(axis=1).numpy(), scores.shape


def test_fully_convolutional_test_pools_to_several_positions():
    model = build_small(crop_size=CROP)
    model.eval()
    # larger classifier weights, so averaging probabilities and averaging logits differ clearly
    weight = model.head.projection.weight
    weight.set_value(weight * 300.0)
    slow, fast, _ = make_inputs(batch=2, crop=96)
    with paddle.no_grad():
        feats = model.backbone([slow, fast])
        logits = model.forward_net([slow, fast])
        assert feats[0].shape[-2:] == [3, 3]
        probs = model([slow, fast], mode="infer").numpy()
        kernels = model.head.pool_size

        def pool(x, p):
            return F.avg_pool3d(x, kernel_size=kernels[p], stride=1)

        expected, score_shape = _head_probs_by_hand(model, feats, pool)
    assert score_shape[1:4] == [1, 2, 2]  # 3x3 features, 2x2 kernel → 4 positions
    assert probs.shape == (2, NUM_CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)
    assert not np.allclose(probs, F.softmax(logits, axis=-1).numpy(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("crop", [64, 96, 32])
def test_multigrid_short_pools_adaptively_for_any_crop(crop):
    model = build_small(crop_size=CROP, multigrid_short=True)
    model.eval()
    slow, fast, _ = make_inputs(batch=2, crop=crop, frames=8)
    with paddle.no_grad():
        feats = model.backbone([slow, fast])
        probs = model([slow, fast], mode="infer").numpy()
        expected, score_shape = _head_probs_by_hand(
            model, feats, lambda x, p: x.mean(axis=[2, 3, 4], keepdim=True))
    assert score_shape[1:4] == [1, 1, 1]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)


def test_sub_batchnorm_backbone_has_plain_state_dict_names():
    plain = build_small()
    split = build_small(bn_norm_type="sub_batchnorm", bn_num_splits=2)
    assert [(k, v.shape) for k, v in plain.state_dict().items()] == \
        [(k, v.shape) for k, v in split.state_dict().items()]


def test_bad_backbone_arguments_are_errors():
    with pytest.raises(ValueError, match="depth"):
        build_small(depth=34)
    with pytest.raises(ValueError, match="bn_norm_type"):
        build_small(bn_norm_type="groupnorm")
    with pytest.raises(TypeError, match="ResNetSlowFast"):
        build_small(widht_per_group=8)
