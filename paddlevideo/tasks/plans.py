"""Training plans: which config each epoch trains with, and when to validate.

Plain training is a plan of one stage: every epoch uses the config as it is. Multigrid training
(Wu et al., CVPR 2020) is a plan of several stages: the long cycle changes the clip length T, the
crop S and the per-process batch at stage boundaries (the loop then rebuilds the model, optimizer,
LR schedule and loaders, carrying weights and optimizer state over); the short cycle changes the
crop and batch every iteration through :class:`ShortCycleBatchSampler`. Both plans answer the
same questions, so the training loop in ``train.py`` is written once.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, Optional

from ..loader import build_dataloader
from ..loader.samplers import GlobalBatchSampler, ShortCycleBatchSampler
from ..multigrid import EpochShape, MultigridSchedule, build_multigrid_schedule
from ..utils.config import ConfigError


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

    def precise_bn_loader(self, stage: Any) -> Any:
        return stage.loader

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


class MultigridPlan:
    """The stages of ``cfg.MULTIGRID``'s schedule. Building it rewrites ``cfg``'s epochs and LR
    schedule as the schedule says (the LR grows with the batch factor)."""

    def __init__(self, cfg: Dict[str, Any]) -> None:
        self.cfg = cfg
        self.schedule = build_multigrid_schedule(cfg)
        self._rewrite_schedule()
        self.total_epochs = self.schedule.total_epochs

    def _rewrite_schedule(self) -> None:
        old = self.cfg["OPTIMIZER"]["learning_rate"]
        lr_cfg = {"name": "CustomWarmupPiecewiseDecay", "iter_step": old.get("iter_step", True),
                  "gamma": old.get("gamma", 0.1)}
        for key, value in self.schedule.lr_params.items():
            lr_cfg[key] = list(value) if isinstance(value, (list, tuple)) else value
        self.cfg["OPTIMIZER"]["learning_rate"] = lr_cfg
        self.cfg["epochs"] = self.schedule.total_epochs

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

    def precise_bn_loader(self, stage: Any) -> Any:
        """Batches of the long-cycle shape only: precise BN measures the statistics of the
        shape the stage validates with, not of the short-cycle crops."""
        if stage.extra.get("bn_loader") is None:
            batch = stage.cfg["DATASET"]["batch_size"]
            sampler = GlobalBatchSampler(stage.train_set, batch)
            stage.extra["bn_loader"] = build_dataloader(
                stage.train_set, batch, self.cfg["DATASET"]["num_workers"],
                batch_sampler=sampler, seed=self.cfg["seed"])
        return stage.extra["bn_loader"]

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
