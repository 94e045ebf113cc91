"""How an entry point ends a failure: the exit code of each kind, the message, the log."""
import errno
import logging

import pytest

from paddlevideo.utils.checkpoint import CheckpointError
from paddlevideo.utils.config import ConfigError
from paddlevideo.utils.dist import CollectiveError
from paddlevideo.utils.entry_point import exit_code_of, message_of, run_entry_point
from paddlevideo.utils.fileio import FileWriteError
from paddlevideo.utils.logger import get_logger


class Stopped(RuntimeError):
    exit_code = 143


class Custom(RuntimeError):
    pass


@pytest.mark.parametrize("err, code", [
    (ConfigError("bad key"), 2),
    (CheckpointError("Checkpoint not found: w.pdparams"), 2),
    (FileWriteError(errno.ENOSPC, "cannot write a: No space left on device"), 1),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), 1),
    (OSError(errno.EROFS, "Read-only file system", "out/x"), 2),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "v.mp4"), 2),
    (MemoryError(), 1),
    (CollectiveError("rank 1 gone"), 1),
    (Stopped("SIGTERM"), 143),
    (KeyboardInterrupt(), 130),
    (ZeroDivisionError("bug"), None),
    (Custom("theirs"), None),
])
def test_exit_codes(err, code):
    assert exit_code_of(err) == code


def test_an_entry_points_own_types_come_first():
    assert exit_code_of(Custom("x"), {Custom: 1}) == 1
    assert exit_code_of(ConfigError("x"), {ValueError: 1}) == 1  # the caller's order wins


def test_messages_name_the_file_without_errno_noise():
    assert message_of(OSError(errno.EROFS, "Read-only file system", "out/x")) == \
        "Read-only file system: out/x"
    assert message_of(FileWriteError(errno.ENOSPC, "cannot write a: No space left on device")) \
        == "cannot write a: No space left on device"
    assert message_of(KeyboardInterrupt()) == "interrupted (Ctrl-C)"


def _fail(err):
    def work():
        raise err
    return work


def test_a_user_facing_failure_is_its_message_and_the_traceback_goes_to_the_log(tmp_path,
                                                                                capsys):
    logger = get_logger()
    handler = logging.FileHandler(tmp_path / "train.log")
    earlier, logger.handlers = logger.handlers, [handler]  # earlier tests' runs set some
    try:
        code = run_entry_point(_fail(FileWriteError(errno.ENOSPC, "cannot write x: No space "
                                                                  "left on device")))
    finally:
        logger.handlers = earlier
        handler.close()
    err = capsys.readouterr().err
    assert code == 1
    assert err == f"Error: cannot write x: No space left on device (details in " \
                  f"{tmp_path / 'train.log'})\n"
    log = (tmp_path / "train.log").read_text()
    assert "Traceback" in log and "FileWriteError" in log


def test_config_errors_keep_their_prefix_and_signals_have_none(capsys):
    assert run_entry_point(_fail(ConfigError("cfg.yaml:3: not UTF-8 text"))) == 2
    assert capsys.readouterr().err == "Config error: cfg.yaml:3: not UTF-8 text\n"
    assert run_entry_point(_fail(Stopped("SIGTERM: training stopped"))) == 143
    assert capsys.readouterr().err == "SIGTERM: training stopped\n"


def test_a_bug_keeps_its_traceback_and_asks_for_a_report(capsys):
    assert run_entry_point(_fail(ZeroDivisionError("division by zero"))) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last)")
    assert "ZeroDivisionError: division by zero" in err
    assert err.strip().splitlines()[-1].startswith(
        "Internal error (ZeroDivisionError): this is a bug, not a problem with your input; "
        "please report it")


def test_success_and_exit_pass_through():
    assert run_entry_point(lambda: 0) == 0
    with pytest.raises(SystemExit):
        run_entry_point(_fail(SystemExit(0)))
