"""Process-group helpers that also work on a single process without an initialised group, and
collectives that fail with a message instead of hanging.

Paddle's own limits on a collective that waits for a dead or stuck peer differ by backend: on CPU
(gloo) a collective raises after gloo's fixed 30 s (``TIMEOUT ... pair_rank = -1``) or at once when
the peer's socket closes (``Connection reset by peer``); on GPU (NCCL) the process group's timeout
is ``PADDLE_PG_TIMEOUT`` (milliseconds, read when the group is created; 30 min by default); the
rendezvous store waits up to 900 s for peers. None of these messages names the rank, the node or
the collective. :func:`collective` does: it turns those errors into :class:`CollectiveError`, and a
watchdog thread ends the process with the same kind of line when a collective outlasts
``dist_timeout`` seconds (the thread runs while the main thread waits, because Paddle releases the
GIL inside a collective).
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np
import paddle
import paddle.distributed as dist

DEFAULT_TIMEOUT = 1800.0  # seconds; the ``dist_timeout`` config key
HANG_EXIT_CODE = 124      # as timeout(1): the launcher reports it and stops the other ranks
# substrings of the errors gloo/NCCL raise when a peer is gone or silent
_PEER_ERRORS = ("TIMEOUT", "Connection reset", "Connection closed", "Broken pipe", "timed out",
                "NCCL", "Socket", "Read error", "Write error")


class CollectiveError(RuntimeError):
    """A collective that failed or timed out because a peer process is dead or stuck."""


def get_rank() -> int:
    return dist.get_rank() if dist.is_initialized() else int(paddle.distributed.ParallelEnv().rank)


def get_world_size() -> int:
    if dist.is_initialized():
        return dist.get_world_size()
    return int(paddle.distributed.ParallelEnv().world_size)


def describe_process() -> str:
    """``rank R/W on node N/NN (host, endpoint)``: what a message about a rank should name."""
    env = os.environ
    world = get_world_size()
    local_size = int(env.get("PADDLE_LOCAL_SIZE") or 0) or world
    nodes = env.get("PADDLE_NNODES") or "1"
    rank = get_rank()
    endpoint = env.get("PADDLE_CURRENT_ENDPOINT", "")
    where = f"{socket.gethostname()}, {endpoint}" if endpoint else socket.gethostname()
    return f"rank {rank}/{world} on node {rank // local_size}/{nodes} ({where})"


class CollectiveWatchdog:
    """One daemon thread; :meth:`guard` arms a deadline for a named wait and disarms it on exit.
    ``on_expire(message)`` is called once when a deadline passes (by default: print the message
    to stderr and end the process with :data:`HANG_EXIT_CODE`)."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, poll: float = 1.0,
                 on_expire: Optional[Callable[[str], None]] = None) -> None:
        self.timeout = float(timeout)
        self.poll = poll
        self.on_expire = on_expire or _exit_hung
        self._waits: Dict[int, tuple] = {}  # id → (name, start, deadline, limit)
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    @contextmanager
    def guard(self, name: str, timeout: Optional[float] = None) -> Iterator[None]:
        limit = self.timeout if timeout is None else float(timeout)
        start = time.monotonic()
        key = id(object())
        with self._lock:
            self._waits[key] = (name, start, start + limit, limit)
            self._ensure_thread()
        try:
            yield
        finally:
            with self._lock:
                self._waits.pop(key, None)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._watch, name="collective-watchdog",
                                            daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        while True:
            time.sleep(self.poll)
            now = time.monotonic()
            with self._lock:
                expired = [(k, w) for k, w in self._waits.items() if now > w[2]]
                for key, _ in expired:
                    self._waits.pop(key)
            for _, (name, start, _, limit) in expired:
                self.on_expire(hang_message(name, now - start, limit))


def hang_message(name: str, waited: float, limit: float, reason: str = "") -> str:
    """The one line a rank prints when collective ``name`` did not complete."""
    cause = f" ({reason})" if reason else ""
    return (f"{describe_process()}: collective '{name}' did not complete after {waited:.0f} s "
            f"(dist_timeout {limit:g} s){cause}: a peer process is dead or stuck; the first "
            f"error in the other ranks' logs names it")


def _exit_hung(message: str) -> None:
    logging.getLogger("paddlevideo").error(message)  # into train.log too, on rank 0
    print(f"ERROR: {message}", file=sys.stderr, flush=True)
    os._exit(HANG_EXIT_CODE)


_WATCHDOG = CollectiveWatchdog()


def set_collective_timeout(seconds: float) -> None:
    """Use ``seconds`` (the ``dist_timeout`` config key) for every guarded collective, and as
    NCCL's process-group timeout when the group is created after this call."""
    _WATCHDOG.timeout = float(seconds)
    os.environ["PADDLE_PG_TIMEOUT"] = str(int(float(seconds) * 1000))


def _is_peer_error(err: BaseException) -> bool:
    text = str(err)
    return any(marker in text for marker in _PEER_ERRORS)


@contextmanager
def collective(name: str, timeout: Optional[float] = None) -> Iterator[None]:
    """Run a collective (or a step containing one, such as a backward pass with a gradient
    all-reduce) under the watchdog; a backend error about a peer becomes a
    :class:`CollectiveError` naming this rank, its node and ``name``."""
    start = time.monotonic()
    with _WATCHDOG.guard(name, timeout):
        try:
            yield
        except RuntimeError as err:
            if isinstance(err, CollectiveError) or not _is_peer_error(err):
                raise
            reason = str(err).strip().splitlines()[0].split("] ")[-1][:200]
            limit = _WATCHDOG.timeout if timeout is None else timeout
            raise CollectiveError(hang_message(name, time.monotonic() - start, limit,
                                               reason)) from err


def init_distributed(timeout: Optional[float] = None) -> int:
    """Initialise the process group when launched with several processes; return world size.
    ``timeout`` (seconds) bounds the rendezvous and, from then on, every guarded collective."""
    if timeout is not None:
        set_collective_timeout(timeout)
    world = int(paddle.distributed.ParallelEnv().world_size)
    if world > 1 and not dist.is_initialized():
        with collective("init_parallel_env (rendezvous of all ranks)"):
            dist.init_parallel_env()
    return world


def _all_reduce_numpy(array: np.ndarray, op: Any, name: str) -> np.ndarray:
    if get_world_size() == 1 or not dist.is_initialized():
        return array
    tensor = paddle.to_tensor(np.ascontiguousarray(array))
    with collective(name):
        dist.all_reduce(tensor, op=op)
    return tensor.numpy()


def all_reduce_sum(array: np.ndarray, name: str = "all_reduce(sum)") -> np.ndarray:
    """Sum a NumPy array over all processes (identity on one process)."""
    return _all_reduce_numpy(array, dist.ReduceOp.SUM, name)


def all_reduce_max(array: np.ndarray, name: str = "all_reduce(max)") -> np.ndarray:
    """Element-wise maximum of a NumPy array over all processes."""
    return _all_reduce_numpy(array, dist.ReduceOp.MAX, name)


def all_gather_rows(row: np.ndarray, name: str = "all_gather") -> np.ndarray:
    """``[world, *row.shape]``: every process's ``row``, in rank order, on every process
    (an all-reduce sum of a zero array holding this rank's row; rows must be the same shape)."""
    table = np.zeros((get_world_size(),) + row.shape, dtype=row.dtype)
    table[get_rank()] = row
    return all_reduce_sum(table, name)


def all_reduce_mean_(tensor: paddle.Tensor) -> None:
    """Average a tensor over all processes, in place."""
    if get_world_size() == 1 or not dist.is_initialized():
        return
    with collective("all_reduce(mean)"):
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    paddle.assign(tensor / get_world_size(), tensor)


def all_gather_objects(obj: Any, name: str = "all_gather_object") -> List[Any]:
    """Every process's ``obj`` (picklable), in rank order; ``[obj]`` on one process."""
    if get_world_size() == 1 or not dist.is_initialized():
        return [obj]
    gathered: List[Any] = []
    with collective(name):
        dist.all_gather_object(gathered, obj)
    return gathered
