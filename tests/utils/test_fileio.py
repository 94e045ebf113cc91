"""Atomic writes: a failed write names its file; leftovers of interrupted saves are removed."""
import errno
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from paddlevideo.utils import fileio
from paddlevideo.utils.checkpoint import save
from paddlevideo.utils.fileio import (
    FileWriteError,
    remove_stale_temporaries,
    temporary_path,
    write_text_atomic,
)


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_on_a_text_save_names_the_file(tmp_path, monkeypatch):
    target = tmp_path / "config.yaml"
    target.write_text("old\n")
    monkeypatch.setattr(fileio, "open", _disk_full, raising=False)
    with pytest.raises(FileWriteError) as info:
        write_text_atomic(str(target), "new\n")
    assert info.value.errno == errno.ENOSPC
    assert str(target) in str(info.value) and "No space left" in str(info.value)
    assert target.read_text() == "old\n"  # the previous file is kept
    assert os.listdir(tmp_path) == ["config.yaml"]


def test_disk_full_on_a_checkpoint_save_names_the_file(tmp_path, monkeypatch):
    target = tmp_path / "m.pdparams"
    monkeypatch.setattr(paddle, "save", _disk_full)
    with pytest.raises(OSError) as info:
        save({"w": np.ones(2)}, str(target))
    assert isinstance(info.value, FileWriteError) and info.value.errno == errno.ENOSPC
    assert f"cannot write {target}" in str(info.value)
    assert os.listdir(tmp_path) == []


def test_permission_error_names_the_file(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    target = tmp_path / "a.csv"
    with pytest.raises(FileWriteError, match=f"cannot write {target}: Permission denied"):
        write_text_atomic(str(target), "x")
    assert os.listdir(tmp_path) == []


def _dead_pid():
    """The PID of a process that has exited (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_remove_stale_temporaries_keeps_files_of_live_processes(tmp_path):
    dead = _dead_pid()
    stale = [tmp_path / f"SlowFast_epoch_00002.pdparams.tmp{dead}",
             tmp_path / f"config.yaml.tmp{dead}"]
    live = [tmp_path / f"SlowFast_epoch_00003.pdopt.tmp{os.getppid()}",
            tmp_path / os.path.basename(temporary_path("SlowFast_best.pdparams"))]
    kept = [tmp_path / "SlowFast_epoch_00002.pdparams", tmp_path / "notes.tmp",
            tmp_path / "a.tmpx12"]
    for path in stale + live + kept:
        path.write_bytes(b"x")
    removed = remove_stale_temporaries(str(tmp_path))
    assert sorted(removed) == sorted(str(p) for p in stale)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in live + kept)
    assert remove_stale_temporaries(str(tmp_path / "absent")) == []
