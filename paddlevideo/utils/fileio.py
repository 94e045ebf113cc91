"""Writing files so that a crash never leaves a half-written one, and a failed write says which
file it was."""
from __future__ import annotations

import codecs
import os
import re
from typing import Callable, List, Type

_TEMPORARY_RE = re.compile(r"^(?P<target>.+)\.tmp(?P<pid>\d+)$")


class FileWriteError(OSError):
    """A file that could not be written (disk full, no permission, ...); the message names it.

    ``errno`` is the one of the underlying error, so ``errno.ENOSPC`` checks keep working.
    """


def temporary_path(path: str) -> str:
    """Where ``path`` is written before the rename: ``<path>.tmp<PID>`` (one per process)."""
    return f"{path}.tmp{os.getpid()}"


def write_atomic(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(temporary)`` then rename the temporary over ``path``.

    The folder is created when missing. Any ``OSError`` (e.g. ``ENOSPC``) becomes a
    :class:`FileWriteError` naming ``path``; the temporary is removed and an existing ``path``
    is left as it was.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = temporary_path(path)
    try:
        os.makedirs(folder, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except FileWriteError:
        raise
    except OSError as err:
        reason = err.strerror or str(err)
        raise FileWriteError(err.errno, f"cannot write {path}: {reason}") from err
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to a temporary file beside ``path``, then rename it over ``path``."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)

    write_atomic(path, write)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_temporaries(folder: str) -> List[str]:
    """Delete ``<name>.tmp<PID>`` files left in ``folder`` by saves that were interrupted
    (their process is gone); return the removed paths. Files of a live process, this one
    included, are kept: that save is still under way.

    Call it once at the start of a run, on the process that writes (rank 0), before the first
    save. PIDs are those of this machine, so give it a folder only this machine writes to.
    """
    removed: List[str] = []
    if not os.path.isdir(folder):
        return removed
    for name in sorted(os.listdir(folder)):
        match = _TEMPORARY_RE.match(name)
        path = os.path.join(folder, name)
        if not match or not os.path.isfile(path) or _process_alive(int(match.group("pid"))):
            continue
        try:
            os.remove(path)
        except FileNotFoundError:  # another process cleaned it first
            continue
        removed.append(path)
    return removed


def read_utf8_lines(path: str, error: Type[Exception] = ValueError) -> List[str]:
    """The lines of a UTF-8 text file (a leading byte-order mark is dropped), without their line
    ends. Bytes that are not UTF-8 raise ``error("<path>:<line>: ...")`` naming the line."""
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    lines = []
    for line_no, raw in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(raw.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as err:
            raise error(f"{path}:{line_no}: not UTF-8 text (byte {raw[err.start]:#04x} at column "
                        f"{err.start + 1}); save the file as UTF-8") from None
    if lines and lines[-1] == "":
        lines.pop()  # the end of the last line
    return lines
