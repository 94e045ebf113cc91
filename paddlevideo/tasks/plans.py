"""Training plans: which config each epoch trains with, and when to validate.

Plain training is a plan of one stage: every epoch uses the config as it is. Multigrid training
(Wu et al., CVPR 2020) is a plan of several stages: the long cycle changes the clip length T, the
crop S and the per-process batch at stage boundaries (the loop then rebuilds the model, optimizer,
LR schedule and loaders, carrying weights and optimizer state over); the short cycle changes the
crop and batch every iteration through :class:`ShortCycleBatchSampler`. Both plans answer the
questions of :class:`Plan`, so the training loop in ``train.py`` is written once.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Dict, Optional, Protocol

from ..loader import build_dataloader
from ..loader.samplers import GlobalBatchSampler, ShortCycleBatchSampler
from ..multigrid import EpochShape, MultigridSchedule
from ..utils.config import ConfigError
from .data import loader_options


class Plan(Protocol):
    """What the training loop asks of a plan; ``total_epochs`` epochs in all, 0-based below."""

    total_epochs: int

    def stage_config(self, epoch: int) -> Dict[str, Any]:
        """The config the stage that ``epoch`` is in trains with."""

    def starts_stage(self, epoch: int) -> bool:
        """Whether ``epoch`` starts a new stage (model, optimizer and loaders rebuilt)."""

    def batch_sampler(self, stage_cfg: Dict[str, Any],
                      epoch: int) -> Optional[Callable[[Any], Any]]:
        """``dataset -> batch sampler`` of the stage, or None for the global-batch sampler."""

    def precise_bn_loader(self, stage_cfg: Dict[str, Any], train_set: Any, loader: Any) -> Any:
        """The batches precise BN measures in a stage over ``train_set`` / ``loader``."""

    def is_eval_epoch(self, epoch: int) -> bool:
        """Whether to validate after ``epoch``."""

    def is_precise_bn_epoch(self, epoch: int) -> bool:
        """Whether to run precise BN after ``epoch``."""

    def describe_stage(self, epoch: int) -> Optional[str]:
        """A log line for the stage ``epoch`` starts (None: nothing to say)."""


class PlainPlan:
    """``epochs`` epochs of the config as it is; validation every ``val_interval`` epochs and
    precise BN every ``PRECISEBN.preciseBN_interval`` epochs, both after the last one too."""

    def __init__(self, cfg: Dict[str, Any]) -> None:
        self.cfg = cfg
        self.total_epochs = cfg["epochs"]

    def stage_config(self, epoch: int) -> Dict[str, Any]:
        return self.cfg

    def starts_stage(self, epoch: int) -> bool:
        return False

    def batch_sampler(self, stage_cfg: Dict[str, Any], epoch: int) -> Optional[Any]:
        return None  # the global-batch sampler

    def precise_bn_loader(self, stage_cfg: Dict[str, Any], train_set: Any, loader: Any) -> Any:
        return loader

    def is_eval_epoch(self, epoch: int) -> bool:
        done = epoch + 1
        return done % self.cfg["val_interval"] == 0 or done == self.total_epochs

    def is_precise_bn_epoch(self, epoch: int) -> bool:
        precise = self.cfg.get("PRECISEBN")  # an optional section: absent, no precise BN
        if not precise:
            return False
        done = epoch + 1
        return done % precise["preciseBN_interval"] == 0 or done == self.total_epochs

    def describe_stage(self, epoch: int) -> Optional[str]:
        return None


def _transform(pipeline: Dict[str, Any], name: str) -> Dict[str, Any]:
    """The kwargs dict of step ``name`` in ``pipeline['transform']`` (created if empty)."""
    for step in pipeline.get("transform") or []:
        if name in step:
            if step[name] is None:
                step[name] = {}
            return step[name]
    raise ConfigError(f"multigrid training needs a {name} step in PIPELINE.train.transform",
                      key=f"PIPELINE.train.transform.{name}")


def phase_config(cfg: Dict[str, Any], schedule: MultigridSchedule,
                 shape: EpochShape) -> Dict[str, Any]:
    """A copy of ``cfg`` for one long-cycle shape: T, crop, jitter, sampling rate, batch, BN."""
    settings = schedule.settings
    phase = copy.deepcopy(cfg)
    backbone, head = phase["MODEL"]["backbone"], phase["MODEL"]["head"]
    backbone["bn_norm_type"] = shape.bn_norm_type
    backbone["bn_num_splits"] = shape.bn_num_splits
    head["num_frames"], head["crop_size"] = shape.num_frames, shape.crop_size
    pipeline = phase["PIPELINE"]["train"]
    sampler = pipeline["decode_sampler"]
    sampler["num_frames"] = shape.num_frames
    sampler["sampling_rate"] = shape.sampling_rate
    sampler["default_sampling_rate"] = settings.sampling_rate
    jitter = _transform(pipeline, "JitterScale")
    jitter["min_size"] = shape.short_cycle_min_sizes[-1]
    jitter["default_min_size"] = settings.min_size
    crop = _transform(pipeline, "MultiCrop")
    crop["target_size"] = shape.crop_size
    crop["default_crop_size"] = settings.crop_size
    if settings.short_cycle:
        jitter["short_cycle_factors"] = list(settings.short_cycle_factors)
        crop["short_cycle_factors"] = list(settings.short_cycle_factors)
    phase["DATASET"]["batch_size"] = shape.batch_size
    return phase


def multigrid_run_config(cfg: Dict[str, Any], schedule: MultigridSchedule) -> Dict[str, Any]:
    """A copy of ``cfg`` with the epochs and LR schedule ``schedule`` (built from ``cfg``) says:
    the LR grows with the batch factor of each phase."""
    run_cfg = copy.deepcopy(cfg)
    old = run_cfg["OPTIMIZER"]["learning_rate"]
    lr_cfg = {"name": "CustomWarmupPiecewiseDecay", "iter_step": old.get("iter_step", True),
              "gamma": old.get("gamma", 0.1)}
    for key, value in schedule.lr_params.items():
        lr_cfg[key] = list(value) if isinstance(value, (list, tuple)) else value
    run_cfg["OPTIMIZER"]["learning_rate"] = lr_cfg
    run_cfg["epochs"] = schedule.total_epochs
    return run_cfg


class MultigridPlan:
    """The stages of a multigrid ``schedule`` over ``cfg``, the run's config: the one
    :func:`multigrid_run_config` made (the schedule's epochs and LR)."""

    def __init__(self, cfg: Dict[str, Any], schedule: MultigridSchedule) -> None:
        self.cfg = cfg
        self.schedule = schedule
        self.total_epochs = schedule.total_epochs

    def stage_config(self, epoch: int) -> Dict[str, Any]:
        return phase_config(self.cfg, self.schedule, self.schedule.shape_at(epoch))

    def starts_stage(self, epoch: int) -> bool:
        return self.schedule.shape_changes(epoch)

    def batch_sampler(self, stage_cfg: Dict[str, Any], epoch: int):
        shape = self.schedule.shape_at(epoch)
        seed = self.cfg["seed"]
        if self.schedule.settings.short_cycle:
            return lambda dataset: ShortCycleBatchSampler.from_epoch_shape(
                dataset, shape, shuffle=True, seed=seed)
        return None  # the long-cycle shape only: the global-batch sampler of plain training

    def precise_bn_loader(self, stage_cfg: Dict[str, Any], train_set: Any, loader: Any) -> Any:
        """Batches of the long-cycle shape only: precise BN measures the statistics of the
        shape the stage validates with, not of the short-cycle crops."""
        batch = stage_cfg["DATASET"]["batch_size"]
        return build_dataloader(train_set, batch, self.cfg["DATASET"]["num_workers"],
                                batch_sampler=GlobalBatchSampler(train_set, batch),
                                seed=self.cfg["seed"], **loader_options(self.cfg))

    def is_eval_epoch(self, epoch: int) -> bool:
        return self.schedule.is_eval_epoch(epoch)

    def is_precise_bn_epoch(self, epoch: int) -> bool:
        return self.schedule.is_eval_epoch(epoch)

    def describe_stage(self, epoch: int) -> Optional[str]:
        shape = self.schedule.shape_at(epoch)
        return (f"Multigrid phase {shape.phase_index + 1} from epoch {epoch + 1}: "
                f"T {shape.num_frames}, crop {shape.crop_size}, batch "
                f"{'/'.join(map(str, shape.short_cycle_batch_sizes))} per process, "
                f"sub-BN splits {shape.bn_num_splits}")

    def table(self) -> str:
        return self.schedule.table()
