"""Checkpoint units: manifest written last, only complete units resumed, finite weights only."""
import json
import os

import numpy as np
import paddle
import pytest

from paddlevideo.tasks.checkpointing import (
    CheckpointError,
    CheckpointLayout,
    SavePoint,
    file_sha256,
    find_latest_checkpoint,
    load_checkpoint_unit,
    optimizer_state_by_structured_name,
    read_manifest,
    save_training_checkpoint,
)
from paddlevideo.utils.checkpoint import NonFiniteCheckpointError, load

IDENTITY = {"config_hash": "0123456789abcdef", "seed": 7}


class TinyNet(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.fc = paddle.nn.Linear(3, 4)
        self.bn = paddle.nn.BatchNorm1D(4)

    def forward(self, x):
        return self.bn(self.fc(x))


def _trained(seed=0, steps=2, scheduler=False):
    paddle.seed(seed)
    model = TinyNet()
    lr = paddle.optimizer.lr.StepDecay(0.1, step_size=1) if scheduler else 0.1
    optimizer = paddle.optimizer.Momentum(lr, momentum=0.9, parameters=model.parameters())
    for _ in range(steps):
        model(paddle.randn([5, 3])).pow(2).mean().backward()
        optimizer.step()
        optimizer.clear_grad()
    return model, optimizer


def _save(out, epoch, iteration=0, identity=IDENTITY, seed=0):
    model, optimizer = _trained(seed)
    return save_training_checkpoint(CheckpointLayout(str(out), "Net"),
                                    SavePoint(epoch, iteration, epoch * 10 + iteration),
                                    model, optimizer, {"best_top1": 0.25},
                                    run_identity=identity)


def test_unit_files_and_manifest_content(tmp_path):
    path = _save(tmp_path, 2)
    assert path == str(tmp_path / "Net_epoch_00002.pdparams")
    mid = _save(tmp_path, 2, iteration=3)
    assert mid == str(tmp_path / "Net_epoch_00002_iter_000003.pdparams")
    assert sorted(os.listdir(tmp_path)) == sorted(
        f"Net_epoch_00002{s}{e}" for s in ("", "_iter_000003")
        for e in (".pdparams", ".pdopt", ".json"))
    manifest = json.loads((tmp_path / "Net_epoch_00002_iter_000003.json").read_text())
    assert (manifest["epoch"], manifest["iteration"], manifest["global_step"]) == (2, 3, 23)
    assert manifest["run"] == IDENTITY
    for role, suffix in (("model", ".pdparams"), ("state", ".pdopt")):
        file = tmp_path / f"Net_epoch_00002_iter_000003{suffix}"
        assert manifest["files"][role] == {"name": file.name, "bytes": file.stat().st_size,
                                           "sha256": file_sha256(str(file))}
    state = load(str(tmp_path / "Net_epoch_00002_iter_000003.pdopt"))
    assert (state["epoch"], state["iteration"], state["best_top1"]) == (2, 3, 0.25)


def test_latest_is_the_newest_complete_unit(tmp_path):
    assert find_latest_checkpoint(str(tmp_path / "absent"), "Net") is None
    _save(tmp_path, 1)
    _save(tmp_path, 1, iteration=4)
    _save(tmp_path, 2)
    _save(tmp_path, 3)
    _save(tmp_path, 4)
    os.remove(tmp_path / "Net_epoch_00004.json")  # interrupted before its manifest
    with open(tmp_path / "Net_epoch_00003.pdopt", "ab") as f:  # a file the manifest did not see
        f.write(b"x")
    latest = find_latest_checkpoint(str(tmp_path), "Net")
    assert (latest.epoch, latest.iteration) == (2, 0)
    assert latest.model_path == str(tmp_path / "Net_epoch_00002.pdparams")
    os.remove(tmp_path / "Net_epoch_00002.pdopt")
    latest = find_latest_checkpoint(str(tmp_path), "Net")
    assert (latest.epoch, latest.iteration) == (1, 4)


def test_round_trip_restores_model_and_optimizer(tmp_path):
    model, optimizer = _trained(seed=1)
    save_training_checkpoint(CheckpointLayout(str(tmp_path), "Net"), SavePoint(1), model,
                             optimizer, run_identity=IDENTITY)
    fresh, fresh_optimizer = _trained(seed=2)
    state = load_checkpoint_unit(find_latest_checkpoint(str(tmp_path), "Net"), fresh,
                                 fresh_optimizer)
    assert state["epoch"] == 1
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[key].numpy(), value.numpy(), key)
    # one more identical step on both gives identical weights: the momentum was restored
    x = paddle.randn([5, 3])
    for net, opt in ((model, optimizer), (fresh, fresh_optimizer)):
        net(x).pow(2).mean().backward()
        opt.step()
    np.testing.assert_array_equal(fresh.fc.weight.numpy(), model.fc.weight.numpy())


def test_a_file_swapped_for_one_of_the_same_size_is_not_resumed(tmp_path):
    _save(tmp_path, 2, seed=1)
    pdopt = tmp_path / "Net_epoch_00002.pdopt"
    data = bytearray(pdopt.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other content
    pdopt.write_bytes(bytes(data))
    unit = read_manifest(str(tmp_path / "Net_epoch_00002.json"))  # sizes agree
    model, optimizer = _trained()
    with pytest.raises(CheckpointError, match="Net_epoch_00002.pdopt is not the file"):
        load_checkpoint_unit(unit, model, optimizer)


def test_non_finite_weights_are_never_written(tmp_path):
    _save(tmp_path, 1)
    before = sorted(os.listdir(tmp_path))
    model, optimizer = _trained()
    model.bn._variance.set_value(paddle.to_tensor([1.0, float("inf"), 1.0, 1.0]))
    with pytest.raises(NonFiniteCheckpointError, match=r"Net_epoch_00002.*bn\._variance"):
        save_training_checkpoint(CheckpointLayout(str(tmp_path), "Net"), SavePoint(2), model,
                                 optimizer, run_identity=IDENTITY)
    assert sorted(os.listdir(tmp_path)) == before
    assert find_latest_checkpoint(str(tmp_path), "Net").epoch == 1


def test_rewriting_a_unit_removes_its_old_manifest_first(tmp_path, monkeypatch):
    _save(tmp_path, 1, seed=1)
    import paddlevideo.tasks.checkpointing as checkpointing

    calls = []

    def crash_on_pdopt(obj, path):
        calls.append(path)
        if path.endswith(".pdopt"):
            raise OSError(28, "No space left on device")
        real_save(obj, path)

    real_save = checkpointing.save
    monkeypatch.setattr(checkpointing, "save", crash_on_pdopt)
    with pytest.raises(OSError):
        _save(tmp_path, 1, seed=2)
    assert not (tmp_path / "Net_epoch_00001.json").exists()  # new .pdparams, old .pdopt
    assert find_latest_checkpoint(str(tmp_path), "Net") is None


def test_a_paddlevideo_pair_without_manifest_resumes_with_resume_epoch(tmp_path):
    from paddlevideo.tasks.resume import resolve_resume

    model, optimizer = _trained(seed=4, scheduler=True)
    optimizer._learning_rate.step()
    # PaddleVideo's train.py: the model's and the optimizer's state dicts, nothing else
    paddle.save(model.state_dict(), str(tmp_path / "Net_epoch_00003.pdparams"))
    paddle.save(optimizer.state_dict(), str(tmp_path / "Net_epoch_00003.pdopt"))
    unit = resolve_resume("auto", 3, str(tmp_path), "Net", IDENTITY).unit
    fresh, fresh_optimizer = _trained(seed=5, scheduler=True)
    state = load_checkpoint_unit(unit, fresh, fresh_optimizer)
    assert (state["epoch"], state["iteration"]) == (3, 0)
    np.testing.assert_array_equal(fresh.fc.weight.numpy(), model.fc.weight.numpy())
    assert fresh_optimizer.state_dict()["LR_Scheduler"]["last_epoch"] == 1
    # the momentum buffers, by structured name (the two models' auto names differ)
    restored = optimizer_state_by_structured_name(fresh_optimizer, fresh)
    written = optimizer_state_by_structured_name(optimizer, model)
    assert sorted(restored) == sorted(written) and "fc.weight_velocity_0" in written
    for key in written:
        if key != "LR_Scheduler":
            np.testing.assert_array_equal(restored[key].numpy(), written[key].numpy(), key)


def test_layout_names_every_file_of_a_run(tmp_path):
    layout = CheckpointLayout("out", "SlowFast")
    paths = layout.unit_paths(7)
    assert paths == {"model": os.path.join("out", "SlowFast_epoch_00007.pdparams"),
                     "state": os.path.join("out", "SlowFast_epoch_00007.pdopt"),
                     "manifest": os.path.join("out", "SlowFast_epoch_00007.json")}
    assert layout.stem(2, 3) == os.path.join("out", "SlowFast_epoch_00002_iter_000003")
    assert layout.best == os.path.join("out", "SlowFast_best.pdparams")
    layout = CheckpointLayout(str(tmp_path), "Net")
    assert layout.manifests() == [] and layout.legacy_epochs() == []
    _save(tmp_path, 1)
    _save(tmp_path, 1, iteration=2)
    (tmp_path / "Net_epoch_00003.pdparams").write_bytes(b"")  # no .pdopt: not a pair
    (tmp_path / "Net_best.pdparams").write_bytes(b"")
    (tmp_path / "Other_epoch_00001.json").write_text("{}")
    assert [os.path.basename(p) for p in layout.manifests()] == [
        "Net_epoch_00001.json", "Net_epoch_00001_iter_000002.json"]
    assert layout.legacy_epochs() == [1]
    assert layout.legacy_unit(3) is None and layout.legacy_unit(1).epoch == 1
    assert sorted(os.path.basename(p) for p in layout.run_files()) == sorted(
        [f"Net_epoch_00001{s}{e}" for s in ("", "_iter_000002")
         for e in (".pdparams", ".pdopt", ".json")]
        + ["Net_epoch_00003.pdparams", "Net_best.pdparams"])
