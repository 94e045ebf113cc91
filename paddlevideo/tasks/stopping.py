"""Stopping a training run on SIGTERM/SIGINT at a point it can resume from exactly.

The first signal sets a flag (:class:`~.stop_signals.StopRequest`); the loop asks
:func:`stop_requested` at every optimizer update (so no accumulated gradient is lost) and during
validation. With several processes the flag is all-reduced, so every rank stops at the same
iteration. The loop then writes a mid-epoch checkpoint, ends the loader workers and raises
:class:`TrainingStopped`, which ``main.py`` turns into the exit code ``128 + signal``.
"""
from __future__ import annotations

import threading
from typing import Optional

import numpy as np

from ..utils.dist import all_reduce_max
from .stop_signals import StopRequest, end_child_processes


class TrainingStopped(RuntimeError):
    """Training stopped on a signal; ``checkpoint`` is the unit it can resume from."""

    def __init__(self, signal_name: str, exit_code: int, checkpoint: Optional[str]) -> None:
        super().__init__(f"{signal_name}: training stopped; it resumes from {checkpoint} when "
                         f"the same command is run again (resume=auto)")
        self.signal_name, self.exit_code, self.checkpoint = signal_name, exit_code, checkpoint


class Interrupted(Exception):
    """Raised inside the loop at a resumable point: ``iteration`` iterations of the epoch after
    ``epochs_done`` completed ones (``iteration`` = the epoch's length when only its end-of-epoch
    steps were left)."""

    def __init__(self, epochs_done: int, iteration: int) -> None:
        super().__init__(f"stopped after {epochs_done} epochs and {iteration} iterations")
        self.epochs_done, self.iteration = epochs_done, iteration


def install_stop_request() -> Optional[StopRequest]:
    """Handlers for SIGTERM and SIGINT (only the main thread can install them)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return StopRequest().install()


def stop_requested(request: Optional[StopRequest], world_size: int) -> bool:
    """Whether any process got a stop signal. Collective when ``world_size > 1``: every rank
    calls it at the same points."""
    local = bool(request is not None and request.requested)
    if world_size <= 1:
        return local
    return bool(all_reduce_max(np.array([int(local)], dtype=np.int64))[0])


def finish_stop(request: Optional[StopRequest], checkpoint: Optional[str]) -> TrainingStopped:
    """End the loader workers and the handlers; the exception the loop raises."""
    end_child_processes()
    name = request.signal_name if request is not None and request.requested else "SIGTERM"
    code = request.exit_code if request is not None and request.requested else 143
    if request is not None:
        request.restore()
    return TrainingStopped(name, code, checkpoint)
