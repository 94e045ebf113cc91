"""Learning-rate schedules stepped per iteration, with the epoch counted fractionally.

The schedule keeps no clock of its own: the training loop tells it the global iteration
(``scheduler.step(global_iter)``); the LR is a pure function of ``global_iter / num_iters``.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Sequence

from paddle.optimizer.lr import LRScheduler

from ..utils.logger import get_logger
from ..utils.registry import accepted_arguments, build_from_config
from .lr_scaling import strip_scaling_keys
from .registry import LRS

logger = get_logger()


def _warmup(epoch: float, warmup_epochs: float, warmup_start_lr: float,
            lr_at_warmup_end: float) -> float:
    """Linear from ``warmup_start_lr`` at epoch 0 to ``lr_at_warmup_end`` at ``warmup_epochs``."""
    slope = (lr_at_warmup_end - warmup_start_lr) / warmup_epochs
    return warmup_start_lr + slope * epoch


class _EpochScheduler(LRScheduler):
    """An LRScheduler whose ``last_epoch`` counts iterations; subclasses define ``lr_at(epoch)``."""

    def __init__(self, num_iters: int, iter_step: bool = True, last_epoch: int = -1) -> None:
        if num_iters < 1:
            raise ValueError(f"num_iters (iterations per epoch) must be >= 1, got {num_iters}")
        self.num_iters = num_iters
        self.iter_step = iter_step
        super().__init__(learning_rate=1.0, last_epoch=last_epoch)

    def epoch_of(self, step: int) -> float:
        """The epoch of global iteration ``step``: fractional with ``iter_step``, else the
        whole epochs completed (the LR then changes once an epoch)."""
        step = max(step, 0)
        return step / self.num_iters if self.iter_step else float(step // self.num_iters)

    def lr_at(self, epoch: float) -> float:
        raise NotImplementedError

    def get_lr(self) -> float:
        """The LR at ``last_epoch``: ``LRScheduler.step`` calls it after setting that step."""
        return self.lr_at(self.epoch_of(self.last_epoch))


@LRS.register()
class CustomWarmupCosineDecay(_EpochScheduler):
    """lr(e) = base · (cos(π·e / max_epoch) + 1) / 2, with a linear warm-up from
    ``warmup_start_lr`` to lr(warmup_epochs) over the first ``warmup_epochs`` epochs."""

    def __init__(self, warmup_start_lr: float, warmup_epochs: float, cosine_base_lr: float,
                 max_epoch: float, num_iters: int, iter_step: bool = True,
                 last_epoch: int = -1) -> None:
        self.warmup_start_lr = float(warmup_start_lr)
        self.warmup_epochs = float(warmup_epochs)
        self.cosine_base_lr = float(cosine_base_lr)
        self.max_epoch = float(max_epoch)
        super().__init__(num_iters, iter_step, last_epoch)

    def _cosine(self, epoch: float) -> float:
        return self.cosine_base_lr * (math.cos(math.pi * epoch / self.max_epoch) + 1.0) * 0.5

    def lr_at(self, epoch: float) -> float:
        if epoch < self.warmup_epochs:
            return _warmup(epoch, self.warmup_epochs, self.warmup_start_lr,
                           self._cosine(self.warmup_epochs))
        return self._cosine(epoch)


@LRS.register()
class CustomWarmupPiecewiseDecay(_EpochScheduler):
    """lr(e) = lrs[i] · step_base_lr on the i-th interval of ``steps + [max_epoch]``, with the
    same linear warm-up. ``gamma`` is accepted for PaddleVideo configs; ``lrs`` carries the
    decay."""

    def __init__(self, warmup_start_lr: float, warmup_epochs: float, step_base_lr: float,
                 lrs: Sequence[float], gamma: float, steps: Sequence[float], max_epoch: float,
                 num_iters: int, iter_step: bool = True, last_epoch: int = -1) -> None:
        self.warmup_start_lr = float(warmup_start_lr)
        self.warmup_epochs = float(warmup_epochs)
        self.step_base_lr = float(step_base_lr)
        self.lrs = [float(v) for v in lrs]
        self.gamma = float(gamma)
        self.steps = [float(s) for s in steps]
        self.max_epoch = float(max_epoch)
        if len(self.lrs) < len(self.steps):
            raise ValueError(f"CustomWarmupPiecewiseDecay: {len(self.steps)} steps need at least "
                             f"as many lrs, got {len(self.lrs)}")
        super().__init__(num_iters, iter_step, last_epoch)

    def _piecewise(self, epoch: float) -> float:
        index = 0
        for i, start in enumerate(self.steps + [self.max_epoch]):
            if epoch < start:
                break
            index = i
        index = min(index, len(self.lrs) - 1)
        return self.lrs[index] * self.step_base_lr

    def lr_at(self, epoch: float) -> float:
        if epoch < self.warmup_epochs:
            return _warmup(epoch, self.warmup_epochs, self.warmup_start_lr,
                           self._piecewise(self.warmup_epochs))
        return self._piecewise(epoch)


def build_lr(cfg: Dict[str, Any], num_iters: int) -> LRScheduler:
    """Build ``OPTIMIZER.learning_rate`` (a registered schedule) for ``num_iters`` iterations per
    epoch; an unknown name is a ``ConfigError`` listing the registered schedules.

    Arguments of another registered schedule (left over after ``-o ...learning_rate.name=X``)
    are dropped with a warning; anything else unknown is an error. The scaling keys
    (``scale_with``, ``reference_batch_size``) are not schedule arguments: they are removed
    here, and :func:`.lr_scaling.apply_lr_scaling` must have applied a ``linear`` rule before.
    """
    kwargs = strip_scaling_keys(cfg)
    schedule = LRS.get(kwargs.get("name"))
    accepted = accepted_arguments(schedule) or {}
    others = {n for entry in LRS for n in (accepted_arguments(LRS.get(entry)) or {})}
    unused = sorted(k for k in kwargs if k != "name" and k not in accepted and k in others)
    if unused:
        logger.warning("OPTIMIZER.learning_rate: %s does not use %s", kwargs["name"],
                       ", ".join(unused))
    kwargs = {k: v for k, v in kwargs.items() if k not in unused}
    return build_from_config(kwargs, LRS, num_iters=num_iters)
