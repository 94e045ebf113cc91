"""Remember videos that failed to decode, across DataLoader worker processes.

Each bad path becomes one small file in a temporary folder, created atomically, so the first
process that meets a bad video logs it and all processes (and the trainer) see the same list.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import weakref
from typing import Any, Callable, Dict, List, Optional

from ...utils.dist import all_gather_objects

logger = logging.getLogger("paddlevideo")


class BadVideoError(RuntimeError):
    """Too many videos could not be decoded, or a test video could not; the message lists them."""


def _remove_folder(folder: str, owner_pid: int) -> None:
    if os.getpid() == owner_pid:  # forked workers must not delete the trainer's folder
        shutil.rmtree(folder, ignore_errors=True)


class BadVideoLog:
    """A process-shared set of ``path → reason`` for videos that failed."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="paddlevideo_bad_videos_")
        weakref.finalize(self, _remove_folder, self.folder, os.getpid())

    def record(self, path: str, reason: str) -> bool:
        """Add ``path``; log a warning the first time any process records it. Returns whether
        this call was the first."""
        final = os.path.join(self.folder, hashlib.sha1(path.encode("utf-8")).hexdigest())
        if os.path.exists(final):
            return False
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"path": path, "reason": reason}, f)
        try:
            os.link(tmp, final)  # atomic and fails if another process got there first
            first = True
        except FileExistsError:
            first = False
        finally:
            os.unlink(tmp)
        if first:
            logger.warning("Bad video %s: %s", path, reason)
        return first

    def items(self) -> Dict[str, str]:
        """Every bad path recorded so far (by any process) with its reason."""
        found: Dict[str, str] = {}
        for name in sorted(os.listdir(self.folder)):
            if name.startswith(".tmp"):
                continue
            try:
                with open(os.path.join(self.folder, name), encoding="utf-8") as f:
                    entry: Dict[str, Any] = json.load(f)
            except (OSError, ValueError):
                continue
            found[entry["path"]] = entry["reason"]
        return found


def format_bad_videos(bad: Dict[str, str], limit: int = 50) -> str:
    lines = [f"  {path}: {reason}" for path, reason in sorted(bad.items())[:limit]]
    if len(bad) > limit:
        lines.append(f"  ... and {len(bad) - limit} more")
    return "\n".join(lines)


def distinct_bad_videos(local: Dict[str, str],
                        gather: Callable[[Any], List[Any]] = all_gather_objects) -> Dict[str, str]:
    """The bad videos of all processes, each path once (``path → reason``, the lowest rank's
    reason when two differ). A video that two processes both met counts once, so the total is
    the number of distinct files, not the sum of per-process counts.

    Collective: every process calls it at the same point (the end of an epoch), before
    :func:`check_bad_video_fraction` (``bad=``); on one process it returns ``local``.
    """
    merged: Dict[str, str] = {}
    for per_process in gather(dict(local)):
        for path, reason in per_process.items():
            merged.setdefault(path, reason)
    return dict(sorted(merged.items()))


def check_bad_video_fraction(dataset: Any, max_fraction: float,
                             count: Optional[int] = None,
                             bad: Optional[Dict[str, str]] = None) -> int:
    """Raise :class:`BadVideoError` listing the bad files when more than ``max_fraction`` of
    ``dataset.num_videos`` failed to decode (call it at the end of an epoch, after the epoch's
    checkpoint is saved, so stopping loses no training); return the count.

    ``bad`` is :func:`distinct_bad_videos` over all processes (default: this process's
    ``dataset.bad_videos()``); ``count`` overrides its size (kept for callers that only have a
    number).
    """
    bad = dataset.bad_videos() if bad is None else bad
    count = len(bad) if count is None else count
    total = getattr(dataset, "num_videos", None)
    total = max(int(len(dataset) if total is None else total), 1)
    if count and count / total > max_fraction:
        raise BadVideoError(
            f"{count} of {total} videos ({count / total:.1%}) could not be decoded, more "
            f"than the allowed {max_fraction:.1%}; fix or remove them (tools/check_videos.py "
            f"writes a cleaned list):\n{format_bad_videos(bad)}")
    return count
