"""``DynamicBatcher``: items arriving within the wait share one model run, each gets its own
rows back, the row cap holds, errors reach every waiting item, stop runs what was queued."""
import threading
import time

import numpy as np
import pytest

from paddlevideo.serving.batching import BatcherStopped, DynamicBatcher


class RecordingModel:
    """probs row = the slow input's first value, in both columns; records batch sizes and the
    thread it runs on."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.sizes, self.threads, self.delay, self.fail = [], set(), delay, fail

    def __call__(self, slow, fast):
        self.threads.add(threading.get_ident())
        self.sizes.append(len(slow))
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("model broke")
        return np.repeat(slow[:, :1], 2, axis=1) + fast[:, :1]


def item(value: float, rows: int = 1):
    return np.full((rows, 3), value, np.float32), np.zeros((rows, 3), np.float32)


def test_items_within_the_wait_run_together_and_get_their_own_rows():
    model = RecordingModel()
    batcher = DynamicBatcher(model, max_rows=16, batch_wait=0.5)
    futures = [batcher.submit(*item(v, rows)) for v, rows in ((1, 1), (2, 3), (3, 2))]
    results = [f.result(timeout=10) for f in futures]
    assert model.sizes == [6]
    assert [r.shape for r in results] == [(1, 2), (3, 2), (2, 2)]
    assert [float(r[0, 0]) for r in results] == [1.0, 2.0, 3.0]
    assert model.threads == {batcher._thread.ident}
    batcher.stop()


def test_row_cap_splits_batches_in_arrival_order():
    model = RecordingModel()
    batcher = DynamicBatcher(model, max_rows=4, batch_wait=0.5)
    futures = [batcher.submit(*item(v, 2)) for v in range(5)]
    assert [float(f.result(timeout=10)[0, 0]) for f in futures] == [0, 1, 2, 3, 4]
    assert model.sizes == [4, 4, 2]
    batcher.stop()


def test_one_row_batches_when_batching_is_off():
    model = RecordingModel()
    batcher = DynamicBatcher(model, max_rows=1, batch_wait=0.5)
    futures = [batcher.submit(*item(v)) for v in range(3)]
    [f.result(timeout=10) for f in futures]
    assert model.sizes == [1, 1, 1]
    batcher.stop()


def test_a_model_error_reaches_every_item_of_the_batch():
    batcher = DynamicBatcher(RecordingModel(fail=True), max_rows=8, batch_wait=0.3)
    futures = [batcher.submit(*item(v)) for v in range(3)]
    for future in futures:
        with pytest.raises(RuntimeError, match="model broke"):
            future.result(timeout=10)
    batcher.stop()


def test_stop_runs_the_queued_items_then_refuses_new_ones():
    model = RecordingModel(delay=0.05)
    batcher = DynamicBatcher(model, max_rows=1, batch_wait=0.0)
    futures = [batcher.submit(*item(v)) for v in range(4)]
    batcher.stop(timeout=10)
    assert all(f.done() and f.exception() is None for f in futures)
    with pytest.raises(BatcherStopped):
        batcher.submit(*item(9))


def test_a_lone_item_runs_at_once_when_nothing_more_is_coming():
    # a 60 s wait would hold the lone item for a minute; with nothing being decoded it runs now
    model = RecordingModel()
    coming = threading.Event()
    batcher = DynamicBatcher(model, max_rows=8, batch_wait=60, more_coming=coming.is_set)
    assert float(batcher.submit(*item(7)).result(timeout=10)[0, 0]) == 7.0
    assert model.sizes == [1]
    # while another request is on its way, the batch waits for it and they run together
    coming.set()
    first = batcher.submit(*item(1))
    time.sleep(0.3)
    assert not first.done()
    second = batcher.submit(*item(2, rows=7))  # fills the batch: it runs without the wait
    assert float(first.result(timeout=10)[0, 0]) == 1.0
    assert second.result(timeout=10).shape == (7, 2)
    assert model.sizes == [1, 8]
    batcher.stop()
