"""One training run per output folder: an exclusive lock file, ``{output_dir}/run.lock``.

The file holds who has the folder (host, PID, start time, command, as JSON) and is locked with
``flock``, so the lock ends with its process, however the process ends (a crash, ``kill -9``,
a node lost): the kernel (or, on a shared file system, its lock manager) releases it. A clean end
removes the file. A second run into the folder finds the lock taken and stops before writing
anything with one line naming the holder (:class:`RunLockedError`, exit code 2: the command
asks for a folder in use). A file whose lock is free was left by a run that ended without
removing it; the next run takes it over with a warning naming that run.

With several processes, the process that writes checkpoints (rank 0) holds the lock; the
others learn from one all-reduce whether it was taken, and stop with it.

On a file system without ``flock`` (some shared file systems mount without it), the file alone
decides: a file naming a live process on this host, or any process on another host, refuses
the run (delete the file once that run is known to be over).
"""
from __future__ import annotations

import atexit
import errno
import fcntl
import functools
import json
import os
import shlex
import socket
import sys
import time
from typing import Any, Callable, Dict, List, Optional

from ..utils.config import ConfigError
from ..utils.fileio import FileWriteError
from ..utils.logger import get_logger

logger = get_logger()

LOCK_NAME = "run.lock"
# errors of flock on a file system that does not support it (NFS without a lock manager,
# Lustre mounted without -o flock)
_NO_FLOCK = (errno.ENOLCK, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP)


class RunLockedError(ConfigError):
    """The output folder is in use by another run (the message names it)."""

    cli_prefix = "Error"  # not a mistake in the config


def _describe_holder(holder: Dict[str, Any]) -> str:
    if not holder:  # it has locked the file and not yet written it
        return "a run that is starting (the lock file is still empty)"
    return (f"PID {holder.get('pid')} on {holder.get('host')}, started "
            f"{holder.get('started')}: {holder.get('command')}")


def _read_holder(fd: int) -> Dict[str, Any]:
    """The JSON a lock file holds, read through ``fd`` (the holder's own process must never
    open the file a second time: closing that would drop a POSIX lock)."""
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    try:
        holder = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (UnicodeDecodeError, ValueError):
        return {"command": "(an unreadable lock file)"}
    return holder if isinstance(holder, dict) else {}


def _process_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """An acquired lock on ``path``; :meth:`release` removes the file and unlocks it."""

    def __init__(self, path: str, fd: int, holder: Dict[str, Any]) -> None:
        self.path, self.fd, self.holder = path, fd, holder

    def release(self) -> None:
        """Remove the lock file (while still holding it, so no other run sees it half gone),
        then unlock. Idempotent."""
        if self.fd < 0:
            return
        try:
            if _same_file(self.fd, self.path):
                os.remove(self.path)
        except OSError:
            pass  # a read-only or vanished folder: the lock still ends with the descriptor
        os.close(self.fd)
        self.fd = -1
        _HELD.pop(self.path, None)


_HELD: Dict[str, RunLock] = {}  # path → lock held by this process


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def _open_lock_file(path: str) -> int:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:  # a read-only or full file system: its errno decides the exit code
        raise FileWriteError(err.errno, f"output_dir {os.path.dirname(path)}: cannot create "
                                        f"the run lock {path}: {err.strerror or err}") from None


def _lock_or_refuse(fd: int, path: str) -> Optional[str]:
    """Take the OS lock on ``fd``; None on success, else the reason another run holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return f"is in use by another run: {_describe_holder(_read_holder(fd))}"
    except OSError as err:
        if err.errno not in _NO_FLOCK:
            raise
    # no flock here: the file decides
    holder = _read_holder(fd)
    if not holder:
        return None
    if holder.get("host") != socket.gethostname():
        return (f"is recorded as in use by a run on another host ({_describe_holder(holder)}) "
                f"and this file system has no flock to tell whether it still runs; delete "
                f"{path} once that run is over")
    if _process_alive(holder.get("pid")) and int(holder.get("pid")) != os.getpid():
        return f"is in use by another run: {_describe_holder(holder)}"
    return None


def acquire_run_lock(output_dir: str, command: Optional[List[str]] = None) -> RunLock:
    """Lock ``output_dir`` for this process; :class:`RunLockedError` naming the holder when
    another run has it, a :class:`FileWriteError` when the lock file cannot be written. A lock
    file left by a run that has ended is taken over with a warning. A lock this process already
    holds on the folder (an earlier call that failed before releasing) is released and taken
    again."""
    path = os.path.join(os.path.abspath(output_dir), LOCK_NAME)
    if path in _HELD:
        _HELD[path].release()
    while True:
        fd = _open_lock_file(path)
        try:
            refusal = _lock_or_refuse(fd, path)
        except BaseException:
            os.close(fd)
            raise
        if refusal is not None:
            os.close(fd)
            raise RunLockedError(f"output_dir {output_dir} {refusal}; wait for it to end, or "
                                 f"choose another output_dir", key="output_dir")
        if _same_file(fd, path):
            break
        os.close(fd)  # the holder removed the file as we locked it: lock the new one
    previous = _read_holder(fd)
    if previous:
        logger.warning("Taking over the run lock %s: the run that held it (%s) has ended "
                       "without releasing it", path, _describe_holder(previous))
    holder = {"host": socket.gethostname(), "pid": os.getpid(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "command": shlex.join(command if command is not None else sys.argv)}
    try:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(holder) + "\n").encode("utf-8"))
        os.fsync(fd)
    except OSError as err:
        os.close(fd)
        raise FileWriteError(err.errno, f"output_dir {output_dir}: cannot write the run lock "
                                        f"{path}: {err.strerror or err}") from None
    lock = RunLock(path, fd, holder)
    _HELD[path] = lock
    return lock


def take_run_lock(output_dir: str, rank: int, world_size: int) -> Optional[RunLock]:
    """The lock of ``output_dir`` on rank 0 (None on the others). Collective when
    ``world_size > 1``: every rank stops when rank 0 could not take it."""
    lock, error = None, None
    if rank == 0:
        try:
            lock = acquire_run_lock(output_dir)
        except (ConfigError, OSError) as err:
            error = err
    if world_size > 1:
        import numpy as np

        from ..utils.dist import all_reduce_max

        failed = all_reduce_max(np.array([int(error is not None)], dtype=np.int64),
                                "all_reduce(run lock taken)")[0]
        if failed and error is None:
            error = RunLockedError(f"rank 0 could not lock output_dir {output_dir} (its log "
                                   f"says why)", key="output_dir")
    if error is not None:
        raise error
    return lock


def releases_run_lock(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for a training entry point: a run lock taken during the call (by
    :func:`take_run_lock`) is released when it returns or raises."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        before = set(_HELD)
        try:
            return func(*args, **kwargs)
        finally:
            for path in set(_HELD) - before:
                _HELD[path].release()
    return wrapper


@atexit.register
def _release_all() -> None:
    for lock in list(_HELD.values()):
        if lock.holder.get("pid") == os.getpid():  # not in a forked child
            lock.release()
