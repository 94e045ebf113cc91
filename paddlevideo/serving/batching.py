"""Dynamic batching: clips that arrive within ``batch_wait`` of each other run as one batch.

Every model run of the service goes through one :class:`DynamicBatcher` thread, so the model
(one per process, shared by all requests) is only ever called from that thread, whatever the
number of clients. A request hands in its rows (``slow [R,3,T/alpha,S,S]``, ``fast
[R,3,T,S,S]``: the views of a video, or the windows of a timeline batch) and gets a
``concurrent.futures.Future`` of its probabilities ``[R, K]``. The thread takes the oldest
waiting item, then whatever else arrives within ``batch_wait`` seconds while the batch holds
fewer than ``max_rows`` rows, runs the model once on all of it and hands each item its rows.
When nothing is waiting and ``more_coming()`` says no other request is on its way (none is
being decoded), the batch runs at once: a lone client never waits for company.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np

ModelFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class BatcherStopped(RuntimeError):
    """Work handed to a batcher after :meth:`DynamicBatcher.stop`."""


@dataclass
class _Item:
    slow: np.ndarray
    fast: np.ndarray
    future: Future

    @property
    def rows(self) -> int:
        return len(self.slow)


class DynamicBatcher:
    """See the module docstring. ``run_model(slow, fast) -> probs`` is called from this
    object's thread only; ``on_run(seconds, rows)`` after each run (for metrics).
    ``max_rows=1`` or ``batch_wait=0`` with one client runs items one by one."""

    def __init__(self, run_model: ModelFn, max_rows: int = 8, batch_wait: float = 0.01,
                 on_run: Optional[Callable[[float, int], None]] = None,
                 more_coming: Optional[Callable[[], bool]] = None) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        self.run_model, self.max_rows, self.batch_wait = run_model, int(max_rows), batch_wait
        self.on_run = on_run
        self.more_coming = more_coming or (lambda: True)
        self.batch_sizes: List[int] = []  # rows per run, the latest 1000
        self._queue: queue.Queue = queue.Queue()
        self._stopping = False
        self._lock = threading.Lock()
        self._carry: Optional[_Item] = None
        self._thread = threading.Thread(target=self._loop, name="model-batcher", daemon=True)
        self._thread.start()

    def submit(self, slow: np.ndarray, fast: np.ndarray) -> Future:
        """Queue rows for the model; the future gives their probabilities ``[R, K]``."""
        future: Future = Future()
        with self._lock:
            if self._stopping:
                raise BatcherStopped("the model is shutting down")
            self._queue.put(_Item(slow, fast, future))
        return future

    def stop(self, timeout: Optional[float] = None) -> bool:
        """Run what is queued, then end the thread (work submitted later is refused); whether
        it ended within ``timeout``."""
        with self._lock:
            self._stopping = True
            self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _collect(self, first: _Item) -> List[_Item]:
        """``first`` plus the items that come within ``batch_wait`` and fit in ``max_rows``."""
        items, rows = [first], first.rows
        deadline = time.monotonic() + self.batch_wait
        while rows < self.max_rows:
            if self._queue.empty() and not self.more_coming():
                break
            left = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:  # stop: run this batch, then end
                self._queue.put(None)
                break
            if rows + item.rows > self.max_rows:
                self._carry = item  # too big for this batch: it starts the next one
                break
            items.append(item)
            rows += item.rows
        return items

    def _loop(self) -> None:
        while True:
            first = self._carry if self._carry is not None else self._queue.get()
            self._carry = None
            if first is None:
                return
            self._run(self._collect(first))

    def _run(self, items: List[_Item]) -> None:
        items = [item for item in items if item.future.set_running_or_notify_cancel()]
        if not items:
            return
        start = time.perf_counter()
        try:
            probs = self.run_model(np.concatenate([i.slow for i in items]),
                                   np.concatenate([i.fast for i in items]))
        except BaseException as err:  # every waiting request hears about it
            for item in items:
                item.future.set_exception(err)
            return
        seconds = time.perf_counter() - start
        rows = sum(item.rows for item in items)
        self.batch_sizes = (self.batch_sizes + [rows])[-1000:]
        if self.on_run is not None:
            self.on_run(seconds, rows)
        offset = 0
        for item in items:
            item.future.set_result(probs[offset:offset + item.rows])
            offset += item.rows
