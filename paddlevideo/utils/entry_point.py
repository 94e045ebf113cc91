"""How every command-line entry point ends a failure: one line, or a traceback for a bug.

A failure a user can cause or meet (a config, a file, the disk, a peer process, a signal) ends
with its message on stderr (one line, or a line and the list it names: missing keys, say)
and an exit code: 2 for bad input, 1 for a run that failed, 128 + N for
signal N. The traceback of such a failure goes only to the run's log file, when it has one.
Anything else is a bug: its traceback is printed, followed by a line asking for a report.

    return run_entry_point(lambda: work(args), {VideoDecodeError: 1, ListFileError: 2})

Which errors are whose (beside the types an entry point passes in):

- ``ConfigError`` (every config, flag and folder-choice error): 2, printed as ``Config error:``;
- ``CheckpointError`` (a weights file that is missing, unreadable, unsafe or does not fit): 2;
- ``OSError``: 1 when the machine failed the run (no space left, quota, I/O error, file too
  large, out of memory), 2 otherwise (a path that is missing, a folder, read-only, forbidden);
- ``MemoryError`` and ``CollectiveError`` (a peer process died or hung): 1;
- an exception with an integer ``exit_code`` attribute (a training stopped by a signal: 128+N);
- ``KeyboardInterrupt``: 130.
"""
from __future__ import annotations

import errno
import logging
import os
import sys
import traceback
from typing import Callable, Mapping, Optional

from .errors import ConfigError
from .logger import get_logger

BAD_INPUT, FAILED_RUN, INTERRUPTED = 2, 1, 130
# the machine, not the input: the same command may work elsewhere or later
_FAILED_RUN_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.ENOMEM)
DEBUG_ENV = "PADDLEVIDEO_TRACEBACK"  # set to 1: print the traceback of every failure too


def exit_code_of(err: BaseException,
                 known: Optional[Mapping[type, int]] = None) -> Optional[int]:
    """The exit code of a user-facing failure, or None for a bug (see the module's list)."""
    for kind, code in (known or {}).items():
        if isinstance(err, kind):
            return code
    code = getattr(err, "exit_code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    if isinstance(err, ConfigError):
        return BAD_INPUT
    if isinstance(err, OSError):
        return FAILED_RUN if err.errno in _FAILED_RUN_ERRNOS else BAD_INPUT
    if isinstance(err, MemoryError):
        return FAILED_RUN
    if isinstance(err, KeyboardInterrupt):
        return INTERRUPTED
    # these modules import paddle: only looked at once a failure happened
    from .checkpoint import CheckpointError
    from .dist import CollectiveError

    if isinstance(err, CheckpointError):
        return BAD_INPUT
    if isinstance(err, CollectiveError):
        return FAILED_RUN
    return None


def message_of(err: BaseException) -> str:
    """What to print for ``err``: its message (an OSError's without ``[Errno N]``, with the
    file it names)."""
    if isinstance(err, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    if isinstance(err, OSError) and err.strerror:
        text = err.strerror
        if err.filename is not None and str(err.filename) not in text:
            text += f": {err.filename}"
        return text
    return str(err).strip() or type(err).__name__


def _log_files() -> list:
    return [h for h in get_logger().handlers if isinstance(h, logging.FileHandler)]


def _log_details(err: BaseException) -> Optional[str]:
    """Write the traceback of ``err`` to the log files only; return the first one's path."""
    files = _log_files()
    if not files:
        return None
    record = get_logger().makeRecord(get_logger().name, logging.ERROR, __file__, 0,
                                     "The run failed: %s", (message_of(err),),
                                     (type(err), err, err.__traceback__))
    for handler in files:
        handler.handle(record)
    return files[0].baseFilename


def run_entry_point(work: Callable[[], int],
                    known: Optional[Mapping[type, int]] = None) -> int:
    """Call ``work()`` and return its exit status; a failure is reported as the module says.
    ``known`` maps an entry point's own user-facing error types to their exit codes."""
    # a full disk under the log file must not print a traceback for every log line
    logging.raiseExceptions = False
    try:
        return work()
    except SystemExit:
        raise
    except BaseException as err:  # noqa: BLE001 - every failure is reported once, here
        code = exit_code_of(err, known)
        # a stop on a signal is no failure: the loop has logged where it resumes from
        log = _log_details(err) if code is None or code < 128 else None
        if code is None or os.environ.get(DEBUG_ENV) == "1":
            traceback.print_exc()
        if code is None:
            where = f", the traceback above and {log}" if log else " and the traceback above"
            print(f"Internal error ({type(err).__name__}): this is a bug, not a problem with "
                  f"your input; please report it with the command{where}", file=sys.stderr)
            return FAILED_RUN
        print(_prefix(err, code) + message_of(err)
              + (f" (details in {log})" if log and not isinstance(err, ConfigError) else ""),
              file=sys.stderr, flush=True)
        return code


def _prefix(err: BaseException, code: int) -> str:
    """``Config error: `` for a config mistake, nothing for a signal, else ``Error: ``; an
    error type may name its own (``cli_prefix``)."""
    prefix = getattr(err, "cli_prefix", None)
    if prefix is not None:
        return f"{prefix}: "
    if isinstance(err, ConfigError):
        return "Config error: "
    return "" if code > 128 else "Error: "
