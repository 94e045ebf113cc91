"""resume=auto after a unit was damaged: set aside, the unit before resumed, nothing lost."""
import json
import os

import numpy as np
import pytest

from paddlevideo.tasks.resume import newest_verified_unit, resolve_resume
from paddlevideo.tasks.train import train_model
from paddlevideo.utils import get_config
from paddlevideo.utils.checkpoint import load
from paddlevideo.utils.config import ConfigError
from tests.tasks.conftest import DEMO_CONFIG, tiny_overrides
from tests.tasks.test_checkpointing import IDENTITY, _save


def _flip_a_byte(path):
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF  # same size: only the SHA-256 tells
    open(path, "wb").write(bytes(data))


@pytest.mark.slow
def test_a_corrupt_newest_unit_is_set_aside_and_the_run_ends_as_an_undisturbed_one(
        tiny_dataset, tmp_path):
    out = tmp_path / "out"
    cfg = get_config(DEMO_CONFIG, tiny_overrides(tiny_dataset, out, epochs=2))
    train_model(cfg, validate=False, parallel=False, seed=4)
    reference = load(str(out / "SlowFastDemo_epoch_00002.pdparams"))
    _flip_a_byte(out / "SlowFastDemo_epoch_00002.pdparams")

    result = train_model(get_config(DEMO_CONFIG, tiny_overrides(tiny_dataset, out, epochs=2)),
                         validate=False, parallel=False, seed=4)
    log = (out / "train.log").read_text()
    [warning] = [line for line in log.splitlines() if "set aside" in line]
    assert "WARNING: resume=auto: set aside SlowFastDemo_epoch_00002.json" in warning
    assert "SHA-256 differs" in warning
    [aside] = [p for p in out.iterdir() if p.name.startswith("corrupt_")]
    assert sorted(p.name for p in aside.iterdir()) == [
        "SlowFastDemo_epoch_00002.json", "SlowFastDemo_epoch_00002.pdopt",
        "SlowFastDemo_epoch_00002.pdparams"]
    assert "Resumed from " + str(out / "SlowFastDemo_epoch_00001.pdparams") in log
    assert result["last_checkpoint"] == str(out / "SlowFastDemo_epoch_00002.pdparams")
    got = load(result["last_checkpoint"])
    assert got.keys() == reference.keys()
    for key in reference:
        np.testing.assert_array_equal(got[key], reference[key], err_msg=key)


def test_units_are_checked_newest_first_and_only_the_failing_ones_move(tmp_path):
    for epoch, iteration in ((1, 0), (2, 0), (2, 3)):
        _save(tmp_path, epoch, iteration=iteration)
    _flip_a_byte(tmp_path / "Net_epoch_00002_iter_000003.pdopt")
    (tmp_path / "Net_epoch_00002.json").write_text("{ torn")
    unit, notes = newest_verified_unit(str(tmp_path), "Net", set_aside=False)
    assert notes == []
    assert (unit.epoch, unit.iteration) == (1, 0)
    assert (tmp_path / "Net_epoch_00002.json").exists()  # only the writer moves files
    decision = resolve_resume("auto", 0, str(tmp_path), "Net", IDENTITY)
    assert (decision.unit.epoch, decision.unit.iteration) == (1, 0)
    assert [note.split(" (moved")[0] for note in decision.set_aside] == [
        "resume=auto: set aside Net_epoch_00002_iter_000003.json",
        "resume=auto: set aside Net_epoch_00002.json"]
    assert "not a checkpoint manifest" in decision.set_aside[1]
    moved = sorted(p.name for folder in tmp_path.glob("corrupt_*") for p in folder.iterdir())
    assert moved == ["Net_epoch_00002.json", "Net_epoch_00002.pdopt", "Net_epoch_00002.pdparams",
                     "Net_epoch_00002_iter_000003.json", "Net_epoch_00002_iter_000003.pdopt",
                     "Net_epoch_00002_iter_000003.pdparams"]
    assert sorted(p.name for p in tmp_path.glob("Net_*")) == [
        "Net_epoch_00001.json", "Net_epoch_00001.pdopt", "Net_epoch_00001.pdparams"]


def test_none_verifying_is_one_line_and_moves_nothing(tmp_path):
    _save(tmp_path, 1)
    _flip_a_byte(tmp_path / "Net_epoch_00001.pdparams")
    with pytest.raises(ConfigError) as info:
        resolve_resume("auto", 0, str(tmp_path), "Net", IDENTITY)
    message = str(info.value)
    assert "none of the 1 checkpoints" in message and "-o resume=no starts over" in message
    assert "\n" not in message
    assert sorted(os.listdir(tmp_path)) == ["Net_epoch_00001.json", "Net_epoch_00001.pdopt",
                                            "Net_epoch_00001.pdparams"]


def test_an_explicit_epoch_that_fails_is_one_line_without_fallback(tmp_path):
    _save(tmp_path, 1)
    _save(tmp_path, 2)
    _flip_a_byte(tmp_path / "Net_epoch_00002.pdopt")
    with pytest.raises(ConfigError) as info:
        resolve_resume("auto", 2, str(tmp_path), "Net", IDENTITY)
    assert str(info.value).startswith("resume_epoch=2: ")
    assert "SHA-256 differs" in str(info.value) and "choose another epoch" in str(info.value)
    (tmp_path / "Net_epoch_00001.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ConfigError, match="resume_epoch=1: .*not a checkpoint manifest"):
        resolve_resume("auto", 1, str(tmp_path), "Net", IDENTITY)
    assert not list(tmp_path.glob("corrupt_*"))
