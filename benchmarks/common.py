"""What the benchmarks share: the repository root on ``sys.path``, in-memory batches, a trainer
built from a config, the training step as ``paddlevideo.tasks.train`` runs it, medians and
tables. Import it first in a benchmark (``from common import ...``): it makes ``paddlevideo``
importable when the script runs from a checkout."""
from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any, Iterable, List

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import paddle  # noqa: E402

from paddlevideo.modeling import build_model  # noqa: E402
from paddlevideo.solver import build_lr, build_optimizer  # noqa: E402
from paddlevideo.tasks.amp import AmpContext  # noqa: E402
from paddlevideo.tasks.train import train_step as loop_train_step  # noqa: E402

CONFIG_DIR = os.path.join(ROOT, "configs", "recognition", "slowfast")
FLOAT32 = AmpContext(False)  # the benchmarks train in float32, as the CPU paths do


def memory_batch(cfg, batch: int = 2, crop: int = 224, seed: int = 0) -> List[Any]:
    """``[slow [N,3,T/alpha,crop,crop], fast [N,3,T,crop,crop], labels [N,1]]`` of random data."""
    frames = cfg.PIPELINE.train.decode_sampler.num_frames
    alpha = cfg.MODEL.backbone.alpha
    rng = np.random.default_rng(seed)
    fast = rng.standard_normal((batch, 3, frames, crop, crop), dtype=np.float32)
    labels = rng.integers(0, cfg.MODEL.head.num_classes, (batch, 1))
    return [paddle.to_tensor(fast[:, :, ::alpha].copy()), paddle.to_tensor(fast),
            paddle.to_tensor(labels.astype("int64"))]


def build_trainer(cfg, seed: int = 0, iters_per_epoch: int = 100):
    """``(model, optimizer, lr)``: the config's model in training mode with its optimizer and
    LR schedule."""
    paddle.seed(seed)
    model = build_model(cfg.MODEL)
    model.train()
    lr = build_lr(cfg.OPTIMIZER.learning_rate, iters_per_epoch)
    return model, build_optimizer(cfg.OPTIMIZER, lr, model), lr


def train_step(model, optimizer, lr, batch, step: int) -> float:
    """One training iteration through the training loop's own step; returns the loss (which
    waits for it)."""
    lr.step(step)
    return loop_train_step(model, optimizer, batch, FLOAT32)["loss"].item()


def timed_steps(model, optimizer, lr, batch, steps: int, first_step: int = 0) -> List[float]:
    """Seconds of each of ``steps`` training steps on the same in-memory batch."""
    times = []
    for i in range(steps):
        start = time.perf_counter()
        train_step(model, optimizer, lr, batch, first_step + i)
        times.append(time.perf_counter() - start)
    return times


def median_of_rounds(rounds: Iterable[List[float]]) -> float:
    """The median over rounds of each round's mean."""
    return statistics.median(statistics.fmean(times) for times in rounds)


def print_table(title: str, header: List[str], rows: List[List[str]]) -> None:
    """A titled plain-text table, first column left-aligned, the others right-aligned."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print(f"\n{title}")
    for row in [header, ["-" * w for w in widths]] + rows:
        print("  ".join(str(x).rjust(w) if i else str(x).ljust(w)
                        for i, (x, w) in enumerate(zip(row, widths))))
