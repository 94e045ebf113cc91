"""The process side of a clean stop: SIGTERM / SIGINT become a :class:`StopRequest` flag, and
:func:`end_child_processes` ends the loader workers within seconds.

:mod:`.stopping` installs the request, asks it at every optimizer update and, once it is set,
has the loop write a mid-epoch checkpoint, end the workers and raise ``TrainingStopped`` (exit
code ``128 + signal``: 143 for SIGTERM, 130 for SIGINT). Every loader worker also calls
``paddlevideo.loader.builder.die_with_parent`` first, so a worker ends when its trainer dies
without cleaning up (an uncaught signal, ``kill -9``). Ctrl-C in a terminal sends SIGINT to the
workers too, which then end at once: a loader error raised while ``stop.requested`` is set is
part of that stop, not a failure.
"""
from __future__ import annotations

import os
import signal
import time
from types import FrameType
from typing import Any, Dict, List, Optional, Sequence


class StopRequest:
    """Turns the first SIGTERM/SIGINT into ``requested`` (the loop finishes its iteration,
    saves and exits); a second signal of either kind stops the process at once with the default
    action. In a forked child (a loader worker inheriting the handler) a signal takes its default
    action: only the process that installed the handler defers.
    """

    def __init__(self, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)) -> None:
        self.signals = tuple(signals)
        self.signum: Optional[int] = None
        self._previous: Dict[int, Any] = {}
        self._owner = os.getpid()

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """``128 + signal number`` (the shell's convention: 143 SIGTERM, 130 SIGINT), 0 if none."""
        return 128 + self.signum if self.signum is not None else 0

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if os.getpid() != self._owner or self.signum is not None:
            signal.signal(signum, signal.SIG_DFL)  # a worker, or the second signal: now
            os.kill(os.getpid(), signum)
            return
        self.signum = signum

    def install(self) -> StopRequest:
        """Install the handlers (main thread only), remembering the previous ones."""
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        while self._previous:
            signum, handler = self._previous.popitem()
            signal.signal(signum, handler)

    def __enter__(self) -> StopRequest:
        return self.install()

    def __exit__(self, *exc: Any) -> None:
        self.restore()


def child_processes(pid: Optional[int] = None) -> List[int]:
    """PIDs whose parent is ``pid`` (default: this process), from ``/proc``; zombies left out."""
    parent = os.getpid() if pid is None else pid
    children = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="latin-1") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # after "(command name)"
        except OSError:
            continue  # ended meanwhile
        if int(fields[1]) == parent and fields[0] != "Z":
            children.append(int(name))
    return sorted(children)


def _reap(pids: List[int]) -> List[int]:
    """Collect exited children; return those still running."""
    alive = []
    for pid in pids:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue  # not ours to wait for, or already collected
        if done == 0:
            alive.append(pid)
    return alive


def end_child_processes(timeout: float = 5.0) -> List[int]:
    """SIGTERM every child of this process (the loader workers), SIGKILL those still there after
    ``timeout`` seconds, and collect them; return the PIDs that were ended."""
    pids = child_processes()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    alive = _reap(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = _reap(alive)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in alive:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    return pids
