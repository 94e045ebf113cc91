"""Training logs: per-interval lines with throughput and ETA, epoch summaries, VisualDL."""
from __future__ import annotations

import datetime
import sys
import time
from typing import Dict, Iterable, Optional

import numpy as np
from tqdm import tqdm

from ..utils.dist import all_reduce_sum, get_rank
from ..utils.logger import get_logger

logger = get_logger()


def progress(iterable: Iterable, desc: str, total: Optional[int] = None) -> Iterable:
    """A tqdm bar on rank 0 (on stderr, only when it is a terminal or forced), plain elsewhere."""
    if get_rank() != 0:
        return iterable
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True,
                disable=not sys.stderr.isatty())


class MetricWriter:
    """VisualDL scalars under ``logdir`` (nothing when ``logdir`` is None: other ranks)."""

    def __init__(self, logdir: Optional[str]) -> None:
        self._writer = None
        if logdir:
            from visualdl import LogWriter

            self._writer = LogWriter(logdir=logdir)

    def scalars(self, prefix: str, values: Dict[str, float], step: int) -> None:
        if self._writer is None:
            return
        for name, value in values.items():
            self._writer.add_scalar(tag=f"{prefix}/{name}", value=float(value), step=step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class TrainMeter:
    """Running averages of one epoch and the log lines built from them."""

    def __init__(self, epochs: int, world_size: int, writer: MetricWriter) -> None:
        self.epochs = epochs
        self.world_size = world_size  # ips counts the clips of every process
        self.writer = writer
        self.global_step = 0

    def start_epoch(self, epoch: int, iters: int) -> None:
        self.epoch, self.iters = epoch, iters
        self.sums = {"loss": 0.0, "top1": 0.0, "top5": 0.0, "batch_cost": 0.0,
                     "reader_cost": 0.0}
        self.count, self.samples = 0, 0
        self.epoch_start = self._tick = time.perf_counter()
        self.lr = 0.0

    def data_ready(self) -> None:
        now = time.perf_counter()
        self._reader_cost = now - self._tick

    def step_done(self, batch_size: int, loss: float, top1: float, top5: float,
                  lr: float) -> None:
        now = time.perf_counter()
        for key, value in (("loss", loss), ("top1", top1), ("top5", top5),
                           ("batch_cost", now - self._tick), ("reader_cost", self._reader_cost)):
            self.sums[key] += value
        self._tick = now
        self.count += 1
        self.samples += batch_size
        self.lr = lr
        self.global_step += 1
        self.writer.scalars("train", {"loss": loss, "top1": top1, "top5": top5, "lr": lr},
                            self.global_step)

    def averages(self) -> Dict[str, float]:
        """Means since the epoch started. Loss and accuracies are over every process's
        iterations (an all-reduce: every rank logs at the same steps), so the logged curve is
        the global batch's, the same on any topology; times are this process's."""
        avg = {k: v / max(self.count, 1) for k, v in self.sums.items()}
        if self.world_size > 1:
            totals = all_reduce_sum(np.array([self.sums["loss"], self.sums["top1"],
                                              self.sums["top5"], self.count], dtype=np.float64))
            for i, key in enumerate(("loss", "top1", "top5")):
                avg[key] = float(totals[i] / max(totals[3], 1))
        return avg

    def log_step(self, step: int) -> None:
        avg = self.averages()
        remaining = (self.iters - step) + (self.epochs - self.epoch - 1) * self.iters
        eta = datetime.timedelta(seconds=int(remaining * avg["batch_cost"]))
        ips = self.samples * self.world_size / max(self.sums["batch_cost"], 1e-9)
        logger.info("epoch:[%3d/%d] train step:%-4d loss: %.5f lr: %.6f top1: %.5f top5: %.5f "
                    "batch_cost: %.3f sec, reader_cost: %.3f sec, ips: %.2f instance/sec, "
                    "eta: %s", self.epoch + 1, self.epochs, step, avg["loss"], self.lr,
                    avg["top1"], avg["top5"], avg["batch_cost"], avg["reader_cost"], ips, eta)

    def log_epoch(self, bad_videos: int = 0) -> None:
        avg = self.averages()
        elapsed = time.perf_counter() - self.epoch_start
        logger.info("END epoch:%d train loss_avg: %.5f top1_avg: %.5f top5_avg: %.5f "
                    "avg_batch_cost: %.3f sec, avg_reader_cost: %.3f sec, epoch_time: %.1f sec, "
                    "ips: %.2f instance/sec, bad videos: %d", self.epoch + 1, avg["loss"],
                    avg["top1"], avg["top5"], avg["batch_cost"], avg["reader_cost"], elapsed,
                    self.samples * self.world_size / max(elapsed, 1e-9), bad_videos)
