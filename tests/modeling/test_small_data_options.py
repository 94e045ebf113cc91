"""Options for small data sets: label smoothing, mixup/cutmix on clips, frozen stages and BN
statistics, short videos sampled without padding."""
import numpy as np
import paddle
import pytest

from paddlevideo.loader.pipelines.decode import DecodeSampler
from paddlevideo.loader.pipelines.functional import sample_clip_indices
from paddlevideo.modeling import build_model
from paddlevideo.modeling.freezing import apply_freezing
from paddlevideo.modeling.losses import CrossEntropyLoss
from paddlevideo.modeling.mixing import MixDraw, batch_rng, draw_mix, mix_clips
from paddlevideo.utils.config import ConfigError, get_config
from tests.conftest import REPO_ROOT, frame_numbers, numbered_frames, write_video
from tests.modeling.small_model import build_small, make_inputs, small_model_cfg

SLOWFAST_YAML = str(REPO_ROOT / "configs/recognition/slowfast/slowfast.yaml")


def _log_softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def test_label_smoothing_value():
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], dtype="float32")
    labels = np.array([[0], [1]])
    log_p = _log_softmax(logits.astype("float64"))
    eps = 0.2
    expected = (1 - eps) * -log_p[[0, 1], [0, 1]].mean() + eps * -log_p.mean()
    loss = CrossEntropyLoss(label_smoothing=eps)(paddle.to_tensor(logits), paddle.to_tensor(labels))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    plain = CrossEntropyLoss()(paddle.to_tensor(logits), paddle.to_tensor(labels))
    np.testing.assert_allclose(float(plain), -log_p[[0, 1], [0, 1]].mean(), rtol=1e-5)
    with pytest.raises(ValueError, match="label_smoothing"):
        CrossEntropyLoss(label_smoothing=1.0)


def test_mixup_blends_both_pathways_with_one_weight():
    slow, fast, _ = make_inputs(batch=4)
    draw = MixDraw(0.7, np.array([2, 3, 0, 1]))
    mixed_slow, mixed_fast = mix_clips([slow, fast], draw)
    for mixed, x in ((mixed_slow, slow.numpy()), (mixed_fast, fast.numpy())):
        np.testing.assert_allclose(mixed.numpy(), 0.7 * x + 0.3 * x[[2, 3, 0, 1]], rtol=1e-5,
                                   atol=1e-6)


def test_cutmix_pastes_one_box_on_every_frame():
    rng = np.random.default_rng(4)
    draw = draw_mix(4, 64, 64, mixup_alpha=0.0, cutmix_alpha=1.0, switch_prob=0.5, rng=rng)
    top, left, h, w = draw.box
    assert h > 0 and w > 0 and draw.lam == pytest.approx(1 - h * w / 64 ** 2)
    slow, fast, _ = make_inputs(batch=4)
    mixed = mix_clips([slow, fast], draw)[1].numpy()
    x = fast.numpy()
    inside = np.zeros((64, 64), bool)
    inside[top:top + h, left:left + w] = True
    np.testing.assert_array_equal(mixed[..., inside], x[draw.partner][..., inside])
    np.testing.assert_array_equal(mixed[..., ~inside], x[..., ~inside])


def test_mixed_training_loss_weights_both_labels():
    model = build_model({**small_model_cfg(dropout_rate=0.0), "mixup_alpha": 0.4})
    model.train()
    slow, fast, labels = make_inputs(batch=4)
    paddle.seed(21)
    out = model([slow, fast, labels], mode="train")
    # the same draws again: the recognizer draws from Paddle's seeded generator
    paddle.seed(21)
    rng = batch_rng()
    assert rng.random() < 1.0  # mix_prob 1: always mixed
    draw = draw_mix(4, 64, 64, 0.4, 0.0, 0.5, rng)
    assert 0.0 < draw.lam < 1.0
    logits = model.forward_net(mix_clips([slow, fast], draw))
    log_p = _log_softmax(logits.numpy().astype("float64"))
    y = labels.numpy().ravel()
    expected = draw.lam * -log_p[np.arange(4), y].mean() + (1 - draw.lam) * -log_p[
        np.arange(4), y[draw.partner]].mean()
    np.testing.assert_allclose(float(out["loss"]), expected, rtol=1e-4)
    model.eval()  # validation is never mixed
    plain = model([slow, fast, labels], mode="valid")["loss"]
    log_p = _log_softmax(model.forward_net([slow, fast]).numpy().astype("float64"))
    np.testing.assert_allclose(float(plain), -log_p[np.arange(4), y].mean(), rtol=1e-4)


def _params(layer):
    return {k: v.numpy().copy() for k, v in layer.state_dict().items()}


def test_frozen_stages_and_bn_statistics_do_not_change_in_a_step():
    model = build_small(dropout_rate=0.0)
    optimizer = paddle.optimizer.Momentum(0.1, parameters=model.parameters(), weight_decay=1e-3)
    freeze = {"epochs": 2, "stages": 2, "bn_stats": True}
    model.train()
    note = apply_freezing(model, freeze, epoch=0)
    assert note == "freeze: stages s1..s2 and BN statistics of the backbone frozen for 2 epochs"
    before = _params(model)
    model(list(make_inputs(batch=2)), mode="train")["loss"].backward()
    optimizer.step()
    optimizer.clear_grad()
    after = _params(model)
    frozen = [k for k in before if k.startswith(("backbone.s1.", "backbone.s1_fuse.",
                                                 "backbone.s2."))]
    assert len(frozen) > 10
    for key in frozen + [k for k in before if k.endswith(("_mean", "_variance"))]:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    for key in ("backbone.s3.pathway0_res0.branch1.weight", "head.projection.weight"):
        assert not np.array_equal(after[key], before[key]), key
    # released at epoch 2: the stem trains and BN statistics move again
    model.train()
    assert "trainable again from epoch 3" in apply_freezing(model, freeze, epoch=2)
    model(list(make_inputs(batch=2)), mode="train")["loss"].backward()
    optimizer.step()
    released = _params(model)
    assert not np.array_equal(released["backbone.s1.pathway0_stem._conv.weight"],
                              after["backbone.s1.pathway0_stem._conv.weight"])
    assert not np.array_equal(released["backbone.s1.pathway0_stem._bn._mean"],
                              after["backbone.s1.pathway0_stem._bn._mean"])


def test_short_video_sampled_over_its_length_without_padding():
    padded = sample_clip_indices(30, 32, 2, 30.0, 30.0, 0.5)
    # every second frame up to 28, then the last frame 17 times: half the clip is padding
    assert padded[:15].tolist() == list(range(0, 30, 2)) and (padded == 29).sum() == 17
    fitted = sample_clip_indices(30, 32, 2, 30.0, 30.0, 0.5, fit_short=True)
    np.testing.assert_array_equal(fitted, np.round(np.linspace(0, 29, 32)).astype(np.int64))
    assert set(fitted) == set(range(30))
    # a video long enough for the span is sampled as before
    np.testing.assert_array_equal(sample_clip_indices(100, 8, 4, 30.0, 30.0, 0.25, True),
                                  sample_clip_indices(100, 8, 4, 30.0, 30.0, 0.25))


def test_decode_sampler_fit_short_decodes_the_whole_video(tmp_path):
    path = write_video(tmp_path / "short.mp4", numbered_frames(20, 32, 32))
    sampler = DecodeSampler(num_frames=8, sampling_rate=8, backend="pyav", fit_short=True)
    out = sampler({"filename": str(path)})
    expected = np.round(np.linspace(0, 19, 8)).astype(np.int64)
    np.testing.assert_array_equal(out["frame_indices"], expected)
    np.testing.assert_array_equal(frame_numbers(out["imgs"]), expected)


def test_options_are_config_keys():
    cfg = get_config(SLOWFAST_YAML, ["FREEZE.epochs=2", "FREEZE.stages=1", "MODEL.mixup_alpha=0.2",
                                     "PIPELINE.train.decode_sampler.fit_short=true",
                                     "MODEL.loss.name=CrossEntropyLoss",
                                     "MODEL.loss.label_smoothing=0.1"])
    assert cfg.FREEZE == {"epochs": 2, "stages": 1, "bn_stats": False}
    assert apply_freezing(build_small(), get_config(SLOWFAST_YAML).get("FREEZE"), 0) is None
    with pytest.raises(ConfigError, match="FREEZE.stages' must be at most 5"):
        get_config(SLOWFAST_YAML, ["FREEZE.stages=6"])
    with pytest.raises(ConfigError, match="mixup_alpa"):
        get_config(SLOWFAST_YAML, ["MODEL.mixup_alpa=0.2"])


def test_static_backbone_runs_in_dygraph_while_frozen():
    from paddlevideo.tasks.backbone_paths import backbone_path, convert_backbone

    model = build_small()
    assert convert_backbone(model, "onednn") is None and backbone_path(model) == "onednn"
    freeze = {"epochs": 1, "bn_stats": True}
    apply_freezing(model, freeze, epoch=0)
    assert backbone_path(model) == "dygraph"  # traced later, in the released state
    apply_freezing(model, freeze, epoch=1)
    assert backbone_path(model) == "onednn"
