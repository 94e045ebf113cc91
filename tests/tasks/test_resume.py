"""resume values, run identity, and the folders a run refuses to write into."""
import os

import pytest

from paddlevideo.tasks.resume import (
    OutputDirInUseError,
    resolve_resume,
    run_identity,
    set_aside_checkpoints,
)
from paddlevideo.utils.checkpoint import save
from paddlevideo.utils.config import ConfigError
from tests.tasks.test_checkpointing import IDENTITY, _save

OTHER = {"config_hash": "fedcba9876543210", "seed": 7}


def _cfg(**changes):
    cfg = {"model_name": "Net", "seed": 7, "epochs": 4, "output_dir": "out", "log_interval": 10,
           "OPTIMIZER": {"learning_rate": {"cosine_base_lr": 0.1}},
           "DATASET": {"batch_size": 8, "num_workers": 4, "test": {"file_path": "t.list"}}}
    for dotted, value in changes.items():
        node = cfg
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return cfg


def test_run_identity_ignores_keys_that_do_not_change_the_run():
    base = run_identity(_cfg())
    assert base["seed"] == 7 and len(base["config_hash"]) == 16
    for same in (dict(output_dir="elsewhere"), dict(log_interval=1), dict(resume="auto"),
                 dict(resume_epoch=3), dict(DATASET__num_workers=0),
                 dict(DATASET__test={"file_path": "other.list"}), dict(cpu_fast_path="dygraph"),
                 dict(to_static=True)):
        assert run_identity(_cfg(**same)) == base, same
    for other in (dict(seed=8), dict(epochs=5), dict(DATASET__batch_size=4),
                  dict(OPTIMIZER__learning_rate={"cosine_base_lr": 0.2})):
        assert run_identity(_cfg(**other)) != base, other


def test_auto_starts_fresh_then_continues_the_newest_unit(tmp_path):
    assert resolve_resume("auto", 0, str(tmp_path), "Net", IDENTITY).action == "fresh"
    assert resolve_resume(None, None, str(tmp_path / "absent"), "Net", IDENTITY).action == \
        "fresh"
    _save(tmp_path, 1)
    _save(tmp_path, 1, iteration=5)
    decision = resolve_resume("auto", 0, str(tmp_path), "Net", IDENTITY)
    assert decision.action == "resume"
    assert (decision.unit.epoch, decision.unit.iteration) == (1, 5)


@pytest.mark.parametrize("value", ["latest", "Auto", True, "yes", 1, "AUTO "])
def test_other_resume_values_are_config_errors_naming_the_accepted_ones(tmp_path, value):
    with pytest.raises(ConfigError) as info:
        resolve_resume(value, 0, str(tmp_path), "Net", IDENTITY)
    assert f"resume={value!r}" in str(info.value)
    assert "auto, no, false, or the path" in str(info.value)


def test_a_missing_path_and_a_bad_resume_epoch_are_config_errors(tmp_path):
    missing = str(tmp_path / "Net_epoch_00003.pdparams")
    with pytest.raises(ConfigError, match=f"resume={missing}: file not found"):
        resolve_resume(missing, 0, str(tmp_path), "Net", IDENTITY)
    for bad in (-1, "3", True, 2.5):
        with pytest.raises(ConfigError, match=rf"resume_epoch={bad!r}: expected"):
            resolve_resume("auto", bad, str(tmp_path), "Net", IDENTITY)
    with pytest.raises(ConfigError,
                       match="resume_epoch=2: .*Net_epoch_00002.pdparams does not exist"):
        resolve_resume("auto", 2, str(tmp_path), "Net", IDENTITY)
    _save(tmp_path, 2)
    with pytest.raises(ConfigError, match="give only one of them"):
        resolve_resume(False, 2, str(tmp_path), "Net", IDENTITY)


def test_another_runs_folder_is_refused_in_one_line(tmp_path):
    _save(tmp_path, 1, identity=OTHER)
    for value in ("auto", None):
        with pytest.raises(OutputDirInUseError) as info:
            resolve_resume(value, 0, str(tmp_path), "Net", IDENTITY)
        message = str(info.value)
        assert "\n" not in message and "holds checkpoints of another run" in message
        assert message.endswith("choose another output_dir, or -o resume=no to start over")
        assert "fedcba9876543210" in message and "0123456789abcdef" in message
    for value in (False, "no", "false"):
        decision = resolve_resume(value, 0, str(tmp_path), "Net", IDENTITY)
        assert decision.action == "start_over" and decision.unit is None


def test_a_path_resumes_that_unit_of_the_same_run_only(tmp_path):
    _save(tmp_path / "a", 1)
    _save(tmp_path / "a", 2)
    for path in (tmp_path / "a" / "Net_epoch_00001.json",
                 tmp_path / "a" / "Net_epoch_00001.pdparams"):
        decision = resolve_resume(str(path), 0, str(tmp_path / "new"), "Net", IDENTITY)
        assert decision.action == "resume" and decision.unit.epoch == 1
    with pytest.raises(ConfigError, match="written by another run"):
        resolve_resume(str(tmp_path / "a" / "Net_epoch_00002.json"), 0, str(tmp_path / "new"),
                       "Net", OTHER)
    bare = tmp_path / "bare.pdparams"
    save({"w": [1]}, str(bare))
    with pytest.raises(ConfigError, match="no manifest .*bare.json beside it"):
        resolve_resume(str(bare), 0, str(tmp_path), "Net", IDENTITY)


def _legacy_folder(out, epochs=(1, 2)):
    os.makedirs(out, exist_ok=True)
    for epoch in epochs:
        for suffix in (".pdparams", ".pdopt"):
            save({"epoch": epoch}, os.path.join(out, f"Net_epoch_{epoch:05d}{suffix}"))


def test_legacy_folder_needs_resume_epoch(tmp_path):
    _legacy_folder(str(tmp_path))
    with pytest.raises(OutputDirInUseError, match=r"without a manifest \(epochs 1..2.*"
                                                  r"resume_epoch=N"):
        resolve_resume("auto", 0, str(tmp_path), "Net", IDENTITY)
    decision = resolve_resume("auto", 2, str(tmp_path), "Net", IDENTITY)
    assert decision.action == "resume" and decision.unit.manifest_path is None
    assert decision.unit.state_path == str(tmp_path / "Net_epoch_00002.pdopt")


def test_epoch_files_without_manifest_beside_units_are_interrupted_saves(tmp_path):
    _save(tmp_path, 1)
    _legacy_folder(str(tmp_path), epochs=(2,))  # a save that died before its manifest
    decision = resolve_resume("auto", 0, str(tmp_path), "Net", IDENTITY)
    assert decision.unit.epoch == 1


def test_set_aside_moves_checkpoints_and_keeps_the_rest(tmp_path):
    assert set_aside_checkpoints(str(tmp_path), "Net") is None
    _save(tmp_path, 1, identity=OTHER)
    save({"w": [1]}, str(tmp_path / "Net_best.pdparams"))
    (tmp_path / "train.log").write_text("log\n")
    save({"w": [1]}, str(tmp_path / "Other_epoch_00001.pdparams"))
    folder = set_aside_checkpoints(str(tmp_path), "Net")
    assert os.path.dirname(folder) == str(tmp_path)
    assert os.path.basename(folder).startswith("replaced_")
    assert sorted(os.listdir(folder)) == ["Net_best.pdparams", "Net_epoch_00001.json",
                                          "Net_epoch_00001.pdopt", "Net_epoch_00001.pdparams"]
    assert sorted(os.listdir(tmp_path)) == sorted(["Other_epoch_00001.pdparams", "train.log",
                                                   os.path.basename(folder)])
    # the folder is now free for this run
    assert resolve_resume("auto", 0, str(tmp_path), "Net", IDENTITY).action == "fresh"
    assert set_aside_checkpoints(str(tmp_path), "Net") is None
