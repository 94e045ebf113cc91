"""Safe loading: Paddle's own files load exactly; a pickle that names code is refused unrun."""
import builtins
import collections
import io
import os
import pickle

import numpy as np
import paddle
import pytest

from paddlevideo.utils.checkpoint import CheckpointError, load, load_weights
from paddlevideo.utils.safe_pickle import load_paddle_pickle
from tests.modeling.small_model import build_small


def _assert_same(loaded, expected, where="state"):
    """``loaded`` equals ``expected`` (tensors compared as arrays), container types included."""
    if isinstance(expected, paddle.Tensor):
        expected = expected.numpy()
    if isinstance(expected, dict):
        assert type(loaded) is type(expected), where
        assert list(loaded) == list(expected), where
        for key in expected:
            _assert_same(loaded[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert type(loaded) is type(expected) and len(loaded) == len(expected), where
        for i, (a, b) in enumerate(zip(loaded, expected)):
            _assert_same(a, b, f"{where}[{i}]")
    elif isinstance(expected, np.ndarray):
        assert isinstance(loaded, np.ndarray), where
        assert loaded.dtype == expected.dtype and loaded.shape == expected.shape, where
        np.testing.assert_array_equal(loaded, expected, err_msg=where)
    else:
        assert type(loaded) is type(expected) and loaded == expected, where


def _layer():
    paddle.seed(3)
    return paddle.nn.Sequential(paddle.nn.Conv3D(2, 3, 1), paddle.nn.BatchNorm3D(3),
                                paddle.nn.Flatten(), paddle.nn.Linear(3, 2))


def _stepped_optimizer(kind):
    """A model and an optimizer with accumulators and LR scheduler state after two steps."""
    model = _layer()
    scheduler = paddle.optimizer.lr.CosineAnnealingDecay(0.1, T_max=10)
    if kind == "momentum":
        optimizer = paddle.optimizer.Momentum(scheduler, momentum=0.9, weight_decay=1e-4,
                                              parameters=model.parameters())
    else:
        optimizer = paddle.optimizer.AdamW(scheduler, parameters=model.parameters())
    for _ in range(2):
        model(paddle.randn([2, 2, 1, 1, 1])).mean().backward()
        optimizer.step()
        optimizer.clear_grad()
        scheduler.step()
    return model, optimizer


@pytest.mark.parametrize("protocol", [2, 4])
def test_model_state_saved_by_paddle_loads_equal(tmp_path, protocol):
    state = _layer().state_dict()
    path = str(tmp_path / "m.pdparams")
    paddle.save(state, path, protocol=protocol)
    loaded = load(path)
    assert list(loaded) == list(state)  # no StructuredToParameterName@@ table
    for key, tensor in state.items():
        assert isinstance(loaded[key], np.ndarray), key
        np.testing.assert_array_equal(loaded[key], tensor.numpy(), err_msg=key)
    _assert_same(loaded, paddle.load(path, return_numpy=True))


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("kind", ["momentum", "adamw"])
def test_optimizer_state_with_lr_scheduler_round_trips(tmp_path, protocol, kind):
    _, optimizer = _stepped_optimizer(kind)
    nested = {"optimizer": optimizer.state_dict(), "epoch": 3, "best_top1": 0.5,
              "scaler": None, "position": (2, [1, 2.5, "x"]), "seed_array": np.arange(4),
              "scalar": np.float32(1.5), "ordered": collections.OrderedDict(a=np.ones(2)),
              "tags": {1, 2}, "complex": 1 + 2j}
    path = str(tmp_path / "m.pdopt")
    paddle.save(nested, path, protocol=protocol)
    loaded = load(path)
    assert loaded["optimizer"]["LR_Scheduler"] == optimizer.state_dict()["LR_Scheduler"]
    _assert_same(loaded, nested)


def test_file_written_with_numpy_1_names_loads(tmp_path):
    """Paddle 2.x with NumPy 1 (PaddleVideo's released files) names ``numpy.core.multiarray``."""
    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3),
             "StructuredToParameterName@@": {"w": "linear_0.w_0"}}
    data = pickle.dumps(state, protocol=2)
    assert b"numpy._core.multiarray" in data
    path = tmp_path / "legacy.pdparams"
    path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    loaded = load(str(path))
    assert list(loaded) == ["w"]
    np.testing.assert_array_equal(loaded["w"], state["w"])


def test_big_arrays_split_by_protocol_2_are_joined():
    """``paddle.save`` splits arrays over 1 GiB into ``key@@.i`` parts with protocol 2/3."""
    whole = np.arange(10, dtype=np.float32).reshape(2, 5)
    flat = whole.reshape(-1)
    saved = {"w@@.0": flat[:6], "w@@.1": flat[6:], "b": np.ones(1),
             "UnpackBigParamInfor@@": {"w": {"OriginShape": (2, 5), "slices": ["w@@.0",
                                                                              "w@@.1"]}}}
    loaded = load_paddle_pickle(io.BytesIO(pickle.dumps(saved, protocol=2)))
    assert sorted(loaded) == ["b", "w"]
    np.testing.assert_array_equal(loaded["w"], whole)


class _WritesAFile:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (builtins.exec, (f"open({self.target!r}, 'w').write('owned')",))


class _RunsAShell:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize("payload, refused, protocol", [
    (_RunsAShell, "posix.system", 2), (_WritesAFile, "builtins.exec", 4),
    (_WritesAFile, "__builtin__.exec", 2)])
def test_crafted_payload_is_refused_and_leaves_no_trace(tmp_path, payload, refused, protocol):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pdparams"
    # hidden among real arrays, as a poisoned copy of a real checkpoint would be
    with open(path, "wb") as f:
        pickle.dump({"backbone.w": np.ones(3, np.float32), "x": payload(str(marker))}, f,
                    protocol=protocol)
    with pytest.raises(CheckpointError) as info:
        load(str(path))
    assert str(path) in str(info.value) and refused in str(info.value)
    with pytest.raises(CheckpointError, match=refused):
        load_weights(build_small(), str(path))
    assert not marker.exists()
    assert os.listdir(tmp_path) == ["evil.pdparams"]


def test_eval_reducer_and_object_arrays_are_refused(tmp_path):
    evil_eval = tmp_path / "eval.pdparams"
    with open(evil_eval, "wb") as f:
        pickle.dump({"w": _EvalPayload()}, f, protocol=4)
    with pytest.raises(CheckpointError, match="builtins.eval"):
        load(str(evil_eval))
    objects = tmp_path / "objects.pdparams"
    with open(objects, "wb") as f:
        pickle.dump({"w": np.array([1, "a"], dtype=object)}, f, protocol=4)
    with pytest.raises(CheckpointError, match="objects.pdparams.*object arrays"):
        load(str(objects))


class _EvalPayload:
    def __reduce__(self):
        return (builtins.eval, ("__import__('os').getcwd()",))
