"""TrainMeter: the running means of an epoch, the global step, and the log lines built from them."""
import logging
import re

import pytest

from paddlevideo.tasks.progress import TrainMeter


class RecordingWriter:
    def __init__(self):
        self.calls = []

    def scalars(self, prefix, values, step):
        self.calls.append((prefix, dict(values), step))


@pytest.fixture
def meter():
    return TrainMeter(epochs=3, world_size=2, writer=RecordingWriter())


def _steps(meter, values):
    for loss, top1, top5, lr in values:
        meter.data_ready()
        meter.step_done(4, loss, top1, top5, lr)


def test_averages_are_the_means_of_the_epoch_and_restart_with_it(meter):
    meter.start_epoch(0, iters=5)
    _steps(meter, [(2.0, 0.25, 1.0, 0.1), (1.0, 0.75, 0.5, 0.2)])
    avg = meter.averages()
    assert (avg["loss"], avg["top1"], avg["top5"]) == (1.5, 0.5, 0.75)
    assert avg["batch_cost"] >= avg["reader_cost"] >= 0.0
    assert (meter.count, meter.samples, meter.lr, meter.global_step) == (2, 8, 0.2, 2)
    meter.start_epoch(1, iters=5)
    _steps(meter, [(4.0, 1.0, 1.0, 0.3)])
    assert meter.averages()["loss"] == 4.0
    assert meter.global_step == 3  # counts across epochs: the curves' x axis


def test_every_step_goes_to_the_writer_at_the_global_step(meter):
    meter.global_step = 10  # a resumed run continues its curves
    meter.start_epoch(2, iters=5)
    _steps(meter, [(2.0, 0.25, 1.0, 0.1)])
    assert meter.writer.calls == [("train", {"loss": 2.0, "top1": 0.25, "top5": 1.0,
                                             "lr": 0.1}, 11)]


def test_step_and_epoch_lines(meter, caplog):
    meter.start_epoch(0, iters=5)
    _steps(meter, [(2.0, 0.25, 1.0, 0.1), (1.0, 0.75, 0.5, 0.2)])
    with caplog.at_level(logging.INFO, logger="paddlevideo"):
        meter.log_step(2)
        meter.log_epoch(bad_videos=3)
    step_line, epoch_line = [r.getMessage() for r in caplog.records][-2:]
    assert step_line.startswith("epoch:[  1/3] train step:2    loss: 1.50000 lr: 0.200000 "
                                "top1: 0.50000 top5: 0.75000 batch_cost: ")
    assert re.search(r"ips: [0-9.]+ instance/sec, eta: \d+:\d\d:\d\d$", step_line)
    assert epoch_line.startswith("END epoch:1 train loss_avg: 1.50000 top1_avg: 0.50000 "
                                 "top5_avg: 0.75000 avg_batch_cost: ")
    assert epoch_line.endswith("instance/sec, bad videos: 3")
