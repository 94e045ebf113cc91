"""How the backbone runs: the choice of path (``resolve_backbone_path``), the ``to_static`` and
``onednn`` programs training like dygraph, and the fallbacks to dygraph with a reason."""
import numpy as np
import paddle
import paddle.nn as nn
import pytest

from paddlevideo.modeling.framework import Recognizer3D
from paddlevideo.modeling.heads import SlowFastHead
from paddlevideo.tasks import backbone_paths, training_kernels
from paddlevideo.tasks.amp import AmpContext
from paddlevideo.tasks.backbone_paths import (
    OneDNNFallbackWarning,
    ToStaticFallbackWarning,
    apply_backbone_path,
    backbone_path,
    convert_backbone,
    convert_info,
    explain_backbone_path,
    program_of,
    resolve_backbone_path,
)
from paddlevideo.tasks.train import run_validation
from paddlevideo.utils import cpu_features
from paddlevideo.utils.config import ConfigError
from tests.modeling.small_model import build_small, make_inputs

needs_onednn = pytest.mark.skipif(
    not (training_kernels.onednn_training_kernels() and training_kernels.legacy_program_ir()),
    reason="this Paddle build has no oneDNN conv3d training kernels")

CROP = 32  # the backbone's program does not depend on the crop; a small one keeps steps quick


def _train_three_steps(to_static: bool):
    """3 Momentum steps of the narrow model (same seed, same batches); losses, model, probs."""
    model = build_small(seed=3, crop_size=CROP)
    if to_static:
        assert convert_backbone(model, "to_static") is None
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
    assert convert_info(dy_model) == "dygraph" and backbone_path(dy_model) == "dygraph"
    assert convert_info(st_model) == "static" and backbone_path(st_model) == "to_static"
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
    convert_backbone(model, "to_static")
    assert convert_info(model) == "pending"
    reason = (r"to_static failed \(AssertionError: 'numpy' only can be called by `paddle.Tensor` "
              r"in dynamic graph mode.* at test_backbone_paths.py:\d+ in forward\); training in "
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
    assert convert_backbone(model, "dygraph") is None
    assert "forward" not in model.backbone.__dict__ and convert_info(model) == "dygraph"
    with pytest.raises(TypeError, match="no backbone layer"):
        convert_backbone(nn.Linear(2, 2), "to_static")


def test_precise_bn_under_to_static_measures_the_batch_statistics():
    # the program keeps the momentum it was traced with: precise BN (momentum 0) must not run it
    from paddlevideo.tasks.precise_bn import bn_layers, do_preciseBN

    reference, model = build_small(seed=0, dropout_rate=0.0), build_small(seed=0, dropout_rate=0.0)
    convert_backbone(model, "to_static")
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


def train_losses(model, steps=3, lr=0.05):
    """Losses of ``steps`` Momentum steps on one fixed small batch; the model is changed."""
    optimizer = paddle.optimizer.Momentum(lr, 0.9, parameters=model.parameters())
    batch = list(make_inputs(batch=2, seed=1))
    losses = []
    for _ in range(steps):
        loss = model(batch, mode="train")["loss"]
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(loss.item())
    return losses


def small(seed=0):
    # dropout off: the losses then depend on the weights only
    model = build_small(seed=seed, dropout_rate=0.0)
    model.train()
    return model


@needs_onednn
def test_onednn_path_trains_to_the_same_losses_weights_and_state_dict():
    reference, model = small(), small()
    assert apply_backbone_path(model, {"cpu_fast_path": "onednn"}) == "onednn"
    expected, got = train_losses(reference), train_losses(model)
    assert backbone_path(model) == "onednn"
    # the forward and backward programs hold the convolutions and their gradients (53 each)
    assert program_of(model).builder.marked[True] == 2 * len(
        [layer for layer in model.backbone.sublayers() if isinstance(layer, paddle.nn.Conv3D)])
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    assert got[-1] < got[0]  # it learned, rather than repeating one value
    # same names and shapes: checkpoints of either path load into the other
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {
        k: tuple(v.shape) for k, v in reference.state_dict().items()}
    weights = dict(reference.named_parameters())
    for name, param in model.named_parameters():
        np.testing.assert_allclose(param.numpy(), weights[name].numpy(), rtol=1e-3, atol=1e-5,
                                   err_msg=name)


@needs_onednn
def test_precise_bn_sees_the_batch_statistics():
    from paddlevideo.tasks.precise_bn import bn_layers, do_preciseBN

    reference, model = small(), small()
    apply_backbone_path(model, {"cpu_fast_path": "onednn"})
    train_losses(model, steps=1)  # the training program exists, traced with momentum 0.9
    train_losses(reference, steps=1)
    batches = [list(make_inputs(batch=2, seed=s)) for s in (3, 4)]
    assert do_preciseBN(model, batches) == do_preciseBN(reference, batches) == 2
    for got, expected in zip(bn_layers(model), bn_layers(reference)):
        np.testing.assert_allclose(got._variance.numpy(), expected._variance.numpy(),
                                   rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(got._mean.numpy(), expected._mean.numpy(),
                                   rtol=1e-3, atol=1e-5)
    assert bn_layers(model)[0]._momentum == 0.9  # restored: training goes back to the program


@needs_onednn
def test_onednn_eval_forward_matches_dygraph_and_keeps_pir():
    reference, model = small(), small()
    apply_backbone_path(model, {"cpu_fast_path": "auto"})
    reference.eval()
    model.eval()
    slow, fast, _ = make_inputs(batch=2, seed=2)
    was_pir = paddle.base.framework.use_pir_api()
    with paddle.no_grad():
        expected = reference([slow, fast], mode="infer").numpy()
        got = model([slow, fast], mode="infer").numpy()
    assert got.shape == (2, 5)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert program_of(model).builder.marked[False] > 0  # the eval program's conv3d on oneDNN
    # the ProgramDesc switch is scoped to the backbone call
    assert paddle.base.framework.use_pir_api() == was_pir


def test_auto_falls_back_when_the_kernels_are_missing(monkeypatch):
    monkeypatch.setattr(training_kernels, "onednn_training_kernels", lambda: False)
    reference, model = small(), small()
    assert apply_backbone_path(model, {"cpu_fast_path": "auto"}) == "dygraph"
    assert backbone_path(model) == "dygraph"
    assert train_losses(model, steps=2) == train_losses(reference, steps=2)


def test_forced_onednn_warns_and_trains_in_dygraph_when_the_kernels_are_missing(monkeypatch):
    monkeypatch.setattr(training_kernels, "onednn_training_kernels", lambda: False)
    model = small()
    with pytest.warns(OneDNNFallbackWarning, match="no oneDNN conv3d/conv3d_grad kernels"):
        assert apply_backbone_path(model, {"cpu_fast_path": "onednn"}) == "dygraph"
    assert backbone_path(model) == "dygraph"


def test_dygraph_and_false_leave_the_model_in_dygraph():
    # YAML reads `cpu_fast_path: off` as false
    for cfg in ({"cpu_fast_path": "dygraph"}, {"cpu_fast_path": False}):
        model = small()
        assert apply_backbone_path(model, cfg) == "dygraph"
        assert "forward" not in model.backbone.__dict__
    assert backbone_paths.requested_path({}) == "auto"  # the default when the key is absent


@pytest.mark.parametrize("cfg, options", [
    ({}, {"device": "gpu:0"}),                                   # a GPU
    ({"cpu_fast_path": "onednn"}, {"device": "gpu:0"}),
    ({}, {"amp": True, "device": "cpu"}),                        # AMP
    ({"cpu_fast_path": "auto"}, {"world_size": 4, "device": "cpu"}),  # several processes
    ({"cpu_fast_path": "dygraph"}, {"device": "cpu"}),           # oneDNN switched off
    ({"cpu_fast_path": False}, {"device": "cpu"}),
], ids=["gpu", "gpu-forced", "amp", "processes", "dygraph", "false"])
def test_resolve_backbone_path_is_dygraph_where_onednn_was_not_measured_faster(cfg, options):
    assert resolve_backbone_path(cfg, **options) == "dygraph"


def test_resolve_backbone_path_without_onednn_kernels_is_dygraph(monkeypatch):
    monkeypatch.setattr(training_kernels, "onednn_training_kernels", lambda: False)
    assert resolve_backbone_path({}, device="cpu") == "dygraph"
    assert resolve_backbone_path({"cpu_fast_path": "onednn"}, device="cpu") == "dygraph"


@needs_onednn
def test_resolve_backbone_path_on_one_cpu_process_is_onednn():
    assert resolve_backbone_path({}, amp=False, world_size=1, device="cpu") == "onednn"
    assert resolve_backbone_path({"cpu_fast_path": "auto"}, device="cpu") == "onednn"
    # forced, it runs on several processes too (auto only where measured)
    assert resolve_backbone_path({"cpu_fast_path": "onednn"}, world_size=2,
                                 device="cpu") == "onednn"
    # to_static converts the backbone itself, whatever cpu_fast_path says
    assert resolve_backbone_path({"to_static": True}, device="cpu") == "to_static"
    with pytest.raises(ConfigError, match="cpu_fast_path: must be one of"):
        resolve_backbone_path({"cpu_fast_path": "fast"}, device="cpu")


@needs_onednn
def test_a_failing_program_falls_back_to_dygraph_with_the_reason(monkeypatch):
    def broken(programs, op_types=backbone_paths.ONEDNN_OPS):
        raise RuntimeError("no kernel for conv3d_grad")

    monkeypatch.setattr(backbone_paths, "mark_onednn_ops", broken)
    reference, model = small(), small()
    assert apply_backbone_path(model, {"cpu_fast_path": "onednn"}) == "onednn"
    with pytest.warns(OneDNNFallbackWarning, match="RuntimeError: no kernel for conv3d_grad"):
        got = train_losses(model, steps=2)
    assert backbone_path(model) == "dygraph"
    assert got == train_losses(reference, steps=2)


def test_explain_backbone_path_reasons_and_bad_value():
    cpu = "cpu"
    assert explain_backbone_path({"cpu_fast_path": "dygraph"}, device=cpu) == (
        "dygraph", "cpu_fast_path=dygraph")
    path, reason = explain_backbone_path({}, amp=True, device=cpu)
    assert path == "dygraph" and "AMP" in reason
    path, reason = explain_backbone_path({"to_static": True}, device=cpu)
    assert path == "to_static" and "to_static=True" in reason
    assert explain_backbone_path({"cpu_fast_path": "auto"}, world_size=2, device=cpu) == (
        "dygraph", "2 processes (measured in one process only)")
    with pytest.raises(ConfigError, match=r"cpu_fast_path: must be one of auto, onednn, "
                                          r"dygraph, got 'fast'"):
        apply_backbone_path(small(), {"cpu_fast_path": "fast"})


def test_cpu_flags_and_bf16_detection(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n\nflags\t: other\n")
    flags = cpu_features.cpu_flags(str(cpuinfo))
    assert flags == frozenset({"fpu", "sse", "avx2", "avx512f"})
    assert not cpu_features.has_bf16_instructions(flags)
    assert cpu_features.has_bf16_instructions(flags | {"avx512_bf16"})
    assert cpu_features.has_bf16_instructions(frozenset({"amx_bf16"}))
    assert cpu_features.cpu_flags(str(tmp_path / "missing")) == frozenset()


def test_kernel_queries_on_this_build():
    assert training_kernels.has_kernel("conv3d", "float", "PLAIN")
    assert not training_kernels.has_kernel("conv3d", "no_such_type")
    assert not training_kernels.has_kernel("no_such_op", "float")
    # Paddle 3.3 has no bfloat16 conv3d kernel: the reason no bf16 training path is offered
    assert not training_kernels.bf16_conv3d_kernel()
    assert "bf16 conv3d kernel: no" in training_kernels.describe()


@needs_onednn
def test_evaluation_between_training_steps_sees_the_current_weights():
    # validation runs between epochs: its outputs must follow the weights trained since the
    # previous validation. An eval program keeps the values it first ran with (stale by ~7e-4
    # after two more steps of this model), so each evaluation traces its own
    model = small()
    apply_backbone_path(model, {"cpu_fast_path": "onednn"})
    program = program_of(model)
    slow, fast, _ = make_inputs(batch=2, seed=5)
    for evaluation in range(1, 4):
        train_losses(model, steps=2)
        model.eval()
        with paddle.no_grad():
            got = [model([s, f], mode="infer").numpy() for s, f in
                   ((slow, fast), (slow[:1], fast[:1]))]  # a short last batch: same program
            expected = model.head(program.dygraph_fn([slow, fast]), probs=True).numpy()
        model.train()
        assert program.builder.evaluations == evaluation
        np.testing.assert_allclose(got[0], expected, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(got[1], expected[:1], rtol=1e-4, atol=1e-6)


@needs_onednn
def test_validation_on_the_onednn_path_scores_as_the_dygraph_path():
    # the same views through run_validation: the same top-1/top-5 and the loss to float rounding
    model = small(seed=4)
    train_losses(model, steps=1)  # weights and BN statistics away from their initial values
    batches = []
    for seed, size in ((20, 3), (21, 3), (22, 2)):  # a short last batch
        slow, fast, _ = make_inputs(batch=size, seed=seed)
        model.eval()
        with paddle.no_grad():
            predicted = model([slow, fast], mode="infer").numpy().argmax(axis=1)
        # half the labels are the predicted class, half another: top-1 is not trivially 0 or 1
        labels = np.where(np.arange(size) % 2 == 0, predicted, (predicted + 1) % 5)
        batches.append([slow, fast, paddle.to_tensor(labels.reshape(-1, 1).astype("int64"))])
    model.train()
    dygraph = run_validation(model, batches, 1, AmpContext())
    apply_backbone_path(model, {"cpu_fast_path": "onednn"})
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    onednn = run_validation(model, batches, 1, AmpContext())
    for key, value in model.state_dict().items():  # evaluation changes no weight or statistic
        np.testing.assert_array_equal(value.numpy(), before[key], err_msg=key)
    assert program_of(model).builder.evaluations == 1 and program_of(model).verified
    assert dygraph["samples"] == onednn["samples"] == 8
    assert dygraph["top1"] == pytest.approx(5 / 8)  # clips 0 and 2 of 3, 0 of 2
    assert onednn["top1"] == dygraph["top1"] and onednn["top5"] == dygraph["top5"]
    assert onednn["loss"] == pytest.approx(dygraph["loss"], rel=1e-5)
    assert model.training  # run_validation hands the model back in training mode
