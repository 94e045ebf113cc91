"""Multigrid training (Wu et al., CVPR 2020): clip shapes cycle while the epochs go by.

The long cycle changes the clip length T, the crop S and the per-process batch at phase
boundaries (the model, optimizer, LR schedule and loaders are rebuilt there, with the weights and
optimizer state carried over); the short cycle changes the crop and batch every iteration through
:class:`ShortCycleBatchSampler`. BN statistics stay over ``bn_base_size`` clips through sub-batch
BN. Checkpoints keep plain BN names, so they load into the normal model.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, Optional

import paddle
from paddle.io import DistributedBatchSampler

from ..loader import build_dataloader, build_dataset
from ..modeling import build_model
from ..solver import build_lr, build_optimizer
from ..utils.checkpoint import load_weights
from ..utils.config import ConfigError
from ..utils.dist import get_world_size
from ..utils.logger import get_logger
from ..utils.multigrid import (
    EpochShape,
    MultigridSchedule,
    ShortCycleBatchSampler,
    build_multigrid_schedule,
)
from .amp import AmpContext
from .checkpointing import (
    load_optimizer_state,
    optimizer_state_by_structured_name,
    resolve_resume_epoch,
    unwrap,
)
from .progress import TrainMeter
from .train import (
    TrainRun,
    check_iterations,
    dataset_sections,
    seed_everything,
    start_run,
    train_epoch,
)

logger = get_logger()


def _transform(pipeline: Dict[str, Any], name: str) -> Dict[str, Any]:
    """The kwargs dict of step ``name`` in ``pipeline['transform']`` (created if empty)."""
    for step in pipeline.get("transform") or []:
        if name in step:
            if step[name] is None:
                step[name] = {}
            return step[name]
    raise ConfigError(f"multigrid training needs a {name} step in PIPELINE.train.transform")


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


class Phase:
    """Model, optimizer, schedule and loader of one long-cycle shape."""

    def __init__(self, cfg: Dict[str, Any], schedule: MultigridSchedule, epoch: int,
                 max_iters: Optional[int], amp: AmpContext,
                 previous: Optional[Phase] = None) -> None:
        self.shape = schedule.shape_at(epoch)
        self.index = self.shape.phase_index
        self.cfg = phase_config(cfg, schedule, self.shape)
        self.train_set = build_dataset(dataset_sections(self.cfg, "train"))
        self.loader = build_dataloader(self.train_set, self.shape.batch_size,
                                       cfg["DATASET"].get("num_workers", 0),
                                       batch_sampler=self._batch_sampler(schedule, cfg["seed"]),
                                       seed=cfg["seed"])
        self.iters = check_iterations(self.loader, max_iters, self.shape.batch_size)
        model = build_model(self.cfg["MODEL"])
        self.lr_scheduler = build_lr(self.cfg["OPTIMIZER"]["learning_rate"], self.iters)
        optimizer = build_optimizer(self.cfg["OPTIMIZER"], self.lr_scheduler, model)
        if previous is not None:  # carry weights and momentum across the rebuild
            load_weights(model, unwrap(previous.model).state_dict())
            load_optimizer_state(optimizer, model, optimizer_state_by_structured_name(
                previous.optimizer, unwrap(previous.model)))
        model, optimizer = amp.decorate(model, optimizer)
        self.model = paddle.DataParallel(model) if get_world_size() > 1 else model
        self.optimizer = optimizer
        self._bn_loader = None

    def precise_bn_loader(self, cfg: Dict[str, Any]):
        """Batches of the long-cycle shape only: precise BN measures the statistics of the
        shape the phase validates with, not of the short-cycle crops."""
        if self._bn_loader is None:
            sampler = DistributedBatchSampler(self.train_set, batch_size=self.shape.batch_size,
                                              shuffle=True, drop_last=True)
            self._bn_loader = build_dataloader(self.train_set, self.shape.batch_size,
                                               cfg["DATASET"].get("num_workers", 0),
                                               batch_sampler=sampler, seed=cfg["seed"])
        return self._bn_loader

    def _batch_sampler(self, schedule: MultigridSchedule, seed: int):
        if schedule.settings.short_cycle:
            return ShortCycleBatchSampler.from_epoch_shape(self.train_set, self.shape,
                                                           shuffle=True, seed=seed)
        return DistributedBatchSampler(self.train_set, batch_size=self.shape.batch_size,
                                       shuffle=True, drop_last=True)


def _rewrite_schedule(cfg: Dict[str, Any], schedule: MultigridSchedule) -> None:
    """Epochs and LR as the schedule rewrote them (LR scales with the batch factor)."""
    old = cfg["OPTIMIZER"]["learning_rate"]
    lr_cfg = {"name": "CustomWarmupPiecewiseDecay", "iter_step": old.get("iter_step", True),
              "gamma": old.get("gamma", 0.1)}
    for key, value in schedule.lr_params.items():
        lr_cfg[key] = list(value) if isinstance(value, (list, tuple)) else value
    cfg["OPTIMIZER"]["learning_rate"] = lr_cfg
    cfg["epochs"] = schedule.total_epochs


def train_model_multigrid(cfg: Dict[str, Any], weights: Optional[str] = None,
                          parallel: bool = True, validate: bool = True,
                          seed: Optional[int] = None, max_iters: Optional[int] = None,
                          use_amp: bool = False,
                          amp_level: Optional[str] = None) -> Dict[str, Any]:
    """Train with the schedule of ``cfg.MULTIGRID``; returns what :func:`train_model` does."""
    schedule = build_multigrid_schedule(cfg)
    _rewrite_schedule(cfg, schedule)
    run = start_run(cfg, parallel, validate, seed, use_amp, amp_level)
    logger.info("\n%s", schedule.table())
    start_epoch = resolve_resume_epoch(cfg.get("resume_epoch", 0), cfg.get("resume"),
                                       run.out_dir, run.model_name)
    phase = Phase(cfg, schedule, start_epoch, max_iters, run.amp)
    if weights and not start_epoch:
        load_weights(unwrap(phase.model), weights, skip_head=bool(cfg.get("skip_head", False)))
    if start_epoch:
        run.resume(phase.model, phase.optimizer, start_epoch)
    meter = TrainMeter(schedule.total_epochs, get_world_size(), run.writer)
    for epoch in range(start_epoch, schedule.total_epochs):
        if epoch != start_epoch and schedule.shape_changes(epoch):
            phase = Phase(cfg, schedule, epoch, max_iters, run.amp, previous=phase)
            logger.info("Multigrid phase %d from epoch %d: T %d, crop %d, batch %s per "
                        "process, sub-BN splits %d", phase.index + 1, epoch + 1,
                        phase.shape.num_frames, phase.shape.crop_size,
                        "/".join(map(str, phase.shape.short_cycle_batch_sizes)),
                        phase.shape.bn_num_splits)
        _train_one_epoch(run, phase, schedule, epoch, meter, max_iters)
    return run.finish(phase.model)


def _train_one_epoch(run: TrainRun, phase: Phase, schedule: MultigridSchedule, epoch: int,
                     meter: TrainMeter, max_iters: Optional[int]) -> None:
    cfg = run.cfg
    seed_everything(cfg["seed"] + epoch)
    phase.loader.set_epoch(epoch)
    train_epoch(phase.model, phase.loader, phase.optimizer, phase.lr_scheduler, run.amp, epoch,
                phase.cfg, meter, 1, run.last_checkpoint, max_iters)
    done = epoch + 1
    evaluate = schedule.is_eval_epoch(epoch)
    run.end_epoch(phase.model, phase.optimizer, phase.precise_bn_loader(cfg) if evaluate
                  else None, phase.train_set, meter, done,
                  precise_bn=evaluate, evaluate=evaluate,
                  checkpoint=done % cfg.get("save_interval", 1) == 0
                  or done == schedule.total_epochs)
