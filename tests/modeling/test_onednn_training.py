"""cpu_fast_path: the oneDNN training path trains like dygraph; the choice falls back cleanly."""
import numpy as np
import paddle
import pytest

from paddlevideo.modeling import onednn_training
from paddlevideo.modeling.onednn_training import (
    OneDNNFallbackWarning,
    apply_cpu_training_options,
    choose_path,
    is_onednn,
)
from paddlevideo.utils import cpu_features
from paddlevideo.utils.config import ConfigError

from .small_model import build_small, make_inputs

needs_onednn = pytest.mark.skipif(
    not (cpu_features.onednn_training_kernels() and cpu_features.legacy_program_ir()),
    reason="this Paddle build has no oneDNN conv3d training kernels")


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
    assert apply_cpu_training_options(model, None, {"cpu_fast_path": "onednn"}) == "onednn"
    expected, got = train_losses(reference), train_losses(model)
    assert is_onednn(model)
    forward = model.backbone.__dict__["forward"]
    # the forward and backward programs hold the convolutions and their gradients (53 each)
    assert forward.marked[True] == 2 * len(
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
    apply_cpu_training_options(model, None, {"cpu_fast_path": "onednn"})
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
    apply_cpu_training_options(model, None, {"cpu_fast_path": "auto"})
    reference.eval()
    model.eval()
    slow, fast, _ = make_inputs(batch=2, seed=2)
    was_pir = paddle.base.framework.use_pir_api()
    with paddle.no_grad():
        expected = reference([slow, fast], mode="infer").numpy()
        got = model([slow, fast], mode="infer").numpy()
    assert got.shape == (2, 5)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert False not in model.backbone.__dict__["forward"].marked  # evaluation: dygraph
    # the ProgramDesc switch is scoped to the backbone call
    assert paddle.base.framework.use_pir_api() == was_pir


def test_auto_falls_back_when_the_kernels_are_missing(monkeypatch):
    monkeypatch.setattr(cpu_features, "onednn_training_kernels", lambda: False)
    reference, model = small(), small()
    assert apply_cpu_training_options(model, None, {"cpu_fast_path": "auto"}) == "dygraph"
    assert not is_onednn(model)
    assert train_losses(model, steps=2) == train_losses(reference, steps=2)


def test_forced_onednn_warns_and_trains_in_dygraph_when_the_kernels_are_missing(monkeypatch):
    monkeypatch.setattr(cpu_features, "onednn_training_kernels", lambda: False)
    model = small()
    with pytest.warns(OneDNNFallbackWarning, match="no oneDNN conv3d/conv3d_grad kernels"):
        assert apply_cpu_training_options(model, None, {"cpu_fast_path": "onednn"}) == "dygraph"
    assert not is_onednn(model)


def test_dygraph_false_and_absent_key_leave_the_model_in_dygraph():
    # YAML reads `cpu_fast_path: off` as false
    for cfg in ({"cpu_fast_path": "dygraph"}, {"cpu_fast_path": False}, {}):
        model = small()
        assert apply_cpu_training_options(model, None, cfg) == "dygraph"
        assert "forward" not in model.backbone.__dict__


@needs_onednn
def test_a_failing_program_falls_back_to_dygraph_with_the_reason(monkeypatch):
    def broken(programs, op_types=onednn_training.ONEDNN_OPS):
        raise RuntimeError("no kernel for conv3d_grad")

    monkeypatch.setattr(onednn_training, "mark_onednn_ops", broken)
    reference, model = small(), small()
    assert apply_cpu_training_options(model, None, {"cpu_fast_path": "onednn"}) == "onednn"
    with pytest.warns(OneDNNFallbackWarning, match="RuntimeError: no kernel for conv3d_grad"):
        got = train_losses(model, steps=2)
    assert not is_onednn(model)
    assert got == train_losses(reference, steps=2)


def test_choose_path_reasons_and_bad_value():
    assert choose_path("dygraph") == ("dygraph", "cpu_fast_path=dygraph")
    path, reason = choose_path("auto", use_amp=True)
    assert path == "dygraph" and "AMP" in reason
    path, reason = choose_path("auto", to_static=True)
    assert path == "dygraph" and "to_static=True" in reason
    assert choose_path("auto", world_size=2) == ("dygraph",
                                                 "2 processes (measured in one process only)")
    with pytest.raises(ConfigError, match=r"cpu_fast_path: must be one of auto, onednn, "
                                          r"dygraph, got 'fast'"):
        apply_cpu_training_options(small(), None, {"cpu_fast_path": "fast"})


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
    assert cpu_features.has_kernel("conv3d", "float", "PLAIN")
    assert not cpu_features.has_kernel("conv3d", "no_such_type")
    assert not cpu_features.has_kernel("no_such_op", "float")
    # Paddle 3.3 has no bfloat16 conv3d kernel: the reason no bf16 training path is offered
    assert not cpu_features.bf16_conv3d_kernel()
    assert "bf16 conv3d kernel: no" in cpu_features.describe()


@needs_onednn
def test_evaluation_between_training_steps_sees_the_current_weights():
    # validation runs between epochs: its outputs must follow the weights trained since the
    # previous validation, as the dygraph model's do
    reference, model = small(), small()
    apply_cpu_training_options(model, None, {"cpu_fast_path": "onednn"})
    slow, fast, _ = make_inputs(batch=2, seed=5)
    for _ in range(2):
        train_losses(reference, steps=2)
        train_losses(model, steps=2)
        outputs = []
        for net in (reference, model):
            net.eval()
            with paddle.no_grad():
                outputs.append(net([slow, fast], mode="infer").numpy())
            net.train()
        np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-3, atol=1e-5)
