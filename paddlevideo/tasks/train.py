"""The training loop, written once for plain and multigrid training.

A run goes through the epochs of a plan (:mod:`.plans`); each epoch trains with a *stage* (model,
optimizer, LR schedule and loader of one config), built at the start and again where the plan
starts a new stage (multigrid's long cycle). Logging, validation and checkpointing are plain
``if``s in :func:`train_model`, so every training feature (accumulation, AMP, to_static, precise
BN, validation, checkpoints, NaN checks, resume) exists once and works in both.
"""
from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import numpy as np
import paddle
import paddle.nn as nn

from ..loader.dataset.bad_videos import (
    BadVideoError,
    check_bad_video_fraction,
    distinct_bad_videos,
)
from ..modeling import build_model
from ..modeling.finetune import load_finetune_weights
from ..modeling.freezing import apply_freezing
from ..modeling.layers import aggregate_sub_bn_stats
from ..modeling.onednn_training import apply_cpu_training_options
from ..solver import build_lr, build_optimizer
from ..solver.lr_scaling import apply_lr_scaling
from ..utils.checkpoint import (
    NonFiniteCheckpointError,
    load_weights,
    non_finite_entries,
    save_finite_weights,
)
from ..utils.config import ConfigError, check_config, dump_config
from ..utils.dist import all_reduce_sum, collective, get_rank, get_world_size, init_distributed
from ..utils.fileio import remove_stale_temporaries
from ..utils.logger import get_logger, setup_logger
from ..utils.profiler import profiler_step
from ..utils.run_info import run_header
from .amp import AmpContext
from .checkpointing import (
    load_checkpoint_unit,
    load_optimizer_state,
    optimizer_state_by_structured_name,
    save_training_checkpoint,
    unwrap,
)
from .data import build_eval_loader, build_train_loader, output_dir_of
from .plans import MultigridPlan, PlainPlan
from .precise_bn import bn_layers, do_preciseBN
from .progress import MetricWriter, TrainMeter, progress
from .resume import ResumeDecision, resolve_resume, run_identity, set_aside_checkpoints
from .same_lists import check_same_lists
from .static_graph import apply_to_static
from .stopping import Interrupted, finish_stop, install_stop_request, stop_requested

logger = get_logger()


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and Paddle (dropout) generators."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    paddle.seed(seed)


def gradient_accumulation_steps(cfg: Dict[str, Any], batch_size: int, world_size: int) -> int:
    """``GRADIENT_ACCUMULATION.global_batch_size`` / (per-process batch × processes)."""
    section = cfg.get("GRADIENT_ACCUMULATION") or {}
    global_batch = section.get("global_batch_size")
    if not global_batch:
        return 1
    per_step = batch_size * world_size
    if global_batch % per_step:
        raise ConfigError(f"GRADIENT_ACCUMULATION.global_batch_size ({global_batch}) must be a "
                          f"multiple of batch_size × processes ({batch_size} × {world_size})",
                          key="GRADIENT_ACCUMULATION.global_batch_size")
    return global_batch // per_step


@dataclass
class TrainRun:
    """What a training run keeps across epochs and stages."""

    cfg: Dict[str, Any]
    out_dir: str
    rank: int
    world_size: int
    amp: AmpContext
    writer: MetricWriter
    weights: Optional[str] = None    # fine-tune from these (not when resuming)
    max_iters: Optional[int] = None  # per epoch, for smoke runs
    use_fleet: bool = False
    accum_steps: int = 1             # the same in every stage (from the base batch size)
    identity: Optional[Dict[str, Any]] = None    # config hash + seed, in every manifest
    decision: Optional[ResumeDecision] = None    # where training starts
    stop: Any = None                             # the SIGTERM/SIGINT request, when installed
    valid_loader: Any = None
    best_top1: float = -1.0  # -1: the first validation always saves a best model
    last_checkpoint: Optional[str] = None        # the newest unit written (finite)

    @property
    def model_name(self) -> str:
        return self.cfg["model_name"]


@dataclass
class Stage:
    """The model, optimizer, LR schedule and data of one stretch of epochs of one config."""

    cfg: Dict[str, Any]
    model: nn.Layer       # wrapped for data parallelism / AMP O2 when those are on
    optimizer: Any
    lr_scheduler: Any
    train_set: Any
    loader: Any
    iters: int            # iterations per epoch
    extra: Dict[str, Any] = field(default_factory=dict)  # what a plan caches per stage


def updates_per_epoch(iters: int, accum_steps: int) -> int:
    """Optimizer updates in an epoch of ``iters`` iterations: what the LR schedule counts, so
    that with accumulation an update gets the LR it has on a topology that takes the global
    batch at once."""
    return -(-iters // accum_steps)


def check_iterations(loader, max_iters: Optional[int], batch_size: int) -> int:
    """Iterations per epoch (capped by ``max_iters``); an error when there is no full batch."""
    iters = len(loader) if not max_iters else min(len(loader), max_iters)
    if iters == 0:
        raise ConfigError(f"DATASET.train: {len(loader.dataset)} samples give no full batch of "
                          f"{batch_size} per process × {get_world_size()} processes",
                          key="DATASET.batch_size")
    return iters


def build_stage(run: TrainRun, plan: Any, epoch: int, previous: Optional[Stage]) -> Stage:
    """Data, model (weights from ``previous`` or ``run.weights``), LR and optimizer for the
    stage of the plan that ``epoch`` is in."""
    cfg = plan.stage_config(epoch)
    train_set, loader = build_train_loader(cfg, plan.batch_sampler(cfg, epoch), run.accum_steps)
    iters = check_iterations(loader, run.max_iters, cfg["DATASET"]["batch_size"])
    model = build_model(cfg["MODEL"])
    if previous is None and run.weights:
        head_note = load_finetune_weights(model, run.weights, skip_head=cfg["skip_head"])
        logger.info("Loaded weights from %s", run.weights)
        if head_note:  # the checkpoint's classifier does not fit this run's classes
            logger.info("%s", head_note)
    model = apply_to_static(model, cfg["to_static"])
    lr_scheduler = build_lr(cfg["OPTIMIZER"]["learning_rate"],
                            updates_per_epoch(iters, run.accum_steps))
    optimizer = build_optimizer(cfg["OPTIMIZER"], lr_scheduler, model)
    if previous is not None:  # carry weights and momentum across the rebuild
        load_weights(model, unwrap(previous.model).state_dict())
        load_optimizer_state(optimizer, model, optimizer_state_by_structured_name(
            previous.optimizer, unwrap(previous.model)))
    # cpu_fast_path: oneDNN convolutions for CPU training (before AMP/DataParallel wrap the model)
    apply_cpu_training_options(model, optimizer, cfg, use_amp=run.amp.enabled)
    model, optimizer = run.amp.decorate(model, optimizer)
    if run.use_fleet:
        from paddle.distributed import fleet

        model, optimizer = fleet.distributed_model(model), fleet.distributed_optimizer(optimizer)
    elif run.world_size > 1:
        model = paddle.DataParallel(model)
    return Stage(cfg, model, optimizer, lr_scheduler, train_set, loader, iters)


def _diverged(what: str, run: TrainRun) -> TrainingDivergedError:
    return TrainingDivergedError(
        f"{what}. Last good checkpoint: {run.last_checkpoint or 'none written yet'}. Lower the "
        f"learning rate or check the data, then resume from it (-o resume=<its .pdparams>).")


def _step_seed(seed: int, epoch: int, step: int) -> int:
    """The Paddle (dropout) seed of one iteration: a resumed epoch draws what it would have."""
    return int(np.random.SeedSequence([seed, epoch, step]).generate_state(1)[0] % 2**31)


def train_epoch(run: TrainRun, stage: Stage, epoch: int, meter: TrainMeter,
                start_step: int = 0) -> None:
    """One pass over the stage's loader from iteration ``start_step``; the LR is set from the
    global update (:func:`updates_per_epoch`) before each step, and the weights are updated
    every ``run.accum_steps`` iterations. A stop request is answered at an update:
    :class:`Interrupted`."""
    model, optimizer, lr_scheduler = stage.model, stage.optimizer, stage.lr_scheduler
    model.train()
    freeze_note = apply_freezing(unwrap(model), run.cfg.get("FREEZE"), epoch)
    if freeze_note:
        logger.info("%s", freeze_note)
    meter.start_epoch(epoch, stage.iters)
    if start_step >= stage.iters:
        return  # only the end-of-epoch steps were left
    stage.loader.start_at(start_step)
    updates = updates_per_epoch(stage.iters, run.accum_steps)
    for step, batch in enumerate(stage.loader, start=start_step):
        if step >= stage.iters:
            break
        profiler_step()  # main.py -p: starts/stops paddle.profiler at the asked iterations
        meter.data_ready()
        lr_scheduler.step(epoch * updates + step // run.accum_steps)
        paddle.seed(_step_seed(run.cfg["seed"], epoch, step))
        sync = (step + 1) % run.accum_steps == 0 or step + 1 == stage.iters
        with collective(f"training step {epoch + 1}:{step + 1} (gradient all-reduce)"):
            with run.amp.no_sync(model, sync):
                with run.amp.autocast():
                    outputs = model(batch, mode="train")
                run.amp.backward(outputs["loss"] / run.accum_steps)
            if sync:
                run.amp.step(optimizer)
                optimizer.clear_grad()
        loss_value = float(outputs["loss"])
        if not math.isfinite(loss_value):
            raise _diverged(f"Loss is {loss_value} at epoch {epoch + 1}, iteration {step + 1} "
                            f"(lr {lr_scheduler():.6g})", run)
        meter.step_done(batch[0].shape[0], loss_value, float(outputs["top1"]),
                        float(outputs["top5"]), lr_scheduler())
        if (step + 1) % run.cfg["log_interval"] == 0 or step + 1 == stage.iters:
            meter.log_step(step + 1)
        if sync and step + 1 < stage.iters and stop_requested(run.stop, run.world_size):
            raise Interrupted(epoch, step + 1)


@paddle.no_grad()
def sync_bn_buffers(model: nn.Layer) -> None:
    """Average BN running statistics over processes so every rank holds the same state."""
    if get_world_size() == 1:
        return
    for layer in bn_layers(model):
        for buf in (layer._mean, layer._variance):
            paddle.assign(paddle.to_tensor(all_reduce_sum(buf.numpy()) / get_world_size()), buf)


@paddle.no_grad()
def run_validation(model: nn.Layer, loader, epoch: int, amp: AmpContext,
                   should_stop: Any = None) -> Dict[str, float]:
    """Loss (on logits), top-1 and top-5 over the whole validation set, all processes.
    ``should_stop()`` is asked after every batch (one process only: the shards of several differ
    in length, so no collective may run per batch); True ends validation with
    :class:`Interrupted`."""
    model = unwrap(model)
    model.eval()
    totals = np.zeros(4, dtype=np.float64)  # loss·n, top1·n, top5·n, n
    for batch in progress(loader, desc=f"valid epoch {epoch}"):
        with amp.autocast():
            outputs = model(batch, mode="valid")
        n = batch[0].shape[0]
        totals += [float(outputs["loss"]) * n, float(outputs["top1"]) * n,
                   float(outputs["top5"]) * n, n]
        if should_stop is not None and should_stop():
            model.train()
            raise Interrupted(epoch, -1)
    totals = all_reduce_sum(totals)
    count = max(totals[3], 1)
    model.train()
    return {"loss": totals[0] / count, "top1": totals[1] / count, "top5": totals[2] / count,
            "samples": int(totals[3])}


def validate(run: TrainRun, model: nn.Layer, done: int) -> None:
    """Validation after ``done`` epochs; the best model so far is saved (finite only). A
    non-finite validation loss stops training as a non-finite training loss does."""
    local_stop = (lambda: run.stop is not None and run.stop.requested) \
        if run.world_size == 1 else None
    result = run_validation(model, run.valid_loader, done, run.amp, local_stop)
    run.writer.scalars("val", result, done)
    logger.info("[VALID] epoch %d: loss %.4f top1 %.4f top5 %.4f (%d samples)", done,
                result["loss"], result["top1"], result["top5"], result["samples"])
    if not math.isfinite(result["loss"]):
        raise _diverged(f"Validation loss is {result['loss']} after epoch {done}", run)
    if result["top1"] > run.best_top1:
        run.best_top1 = result["top1"]
        if run.rank == 0:
            save_finite_weights(unwrap(model).state_dict(),
                                os.path.join(run.out_dir, f"{run.model_name}_best.pdparams"))
        logger.info("Best top1 so far: %.4f (saved %s_best.pdparams)", run.best_top1,
                    run.model_name)


def save_checkpoint(run: TrainRun, stage: Stage, epochs_done: int, iteration: int = 0) -> None:
    """A checkpoint unit of ``epochs_done`` epochs and ``iteration`` iterations, written by rank
    0; weights with NaN or infinity are never written: training stops, naming the last unit."""
    plain = unwrap(stage.model)
    aggregate_sub_bn_stats(plain)
    bad = non_finite_entries(plain.state_dict())  # every rank: they hold the same weights
    if bad:
        raise _diverged(f"Weights after epoch {epochs_done}"
                        f"{f', iteration {iteration}' if iteration else ''} hold NaN or "
                        f"infinity ({', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}); "
                        f"no checkpoint was written", run)
    if run.rank == 0:
        try:
            path = save_training_checkpoint(
                run.out_dir, run.model_name, epochs_done, stage.model, stage.optimizer,
                {"best_top1": run.best_top1, "scaler": run.amp.state_dict(),
                 "accumulation": run.accum_steps},
                iteration=iteration, global_step=epochs_done * stage.iters + iteration,
                run_identity=run.identity)
        except NonFiniteCheckpointError as err:  # an optimizer accumulator
            raise _diverged(str(err), run) from err
        logger.info("Saved checkpoint %s", path)
    else:
        path = "(written by rank 0)"
    run.last_checkpoint = path


def _bad_videos(run: TrainRun, dataset: Any) -> Tuple[int, Optional[Exception]]:
    """Distinct bad videos over all processes (collective), and the BadVideoError to raise once
    the epoch is saved when more than ``bad_video_max_fraction`` of the data set failed."""
    if not hasattr(dataset, "bad_videos"):
        return 0, None
    bad = distinct_bad_videos(dataset.bad_videos())
    try:
        check_bad_video_fraction(dataset, float(run.cfg["bad_video_max_fraction"]), bad=bad)
    except BadVideoError as err:
        return len(bad), err
    return len(bad), None


def start_run(cfg: Dict[str, Any], parallel: bool, validate: bool, seed: Optional[int],
              use_amp: bool = False, amp_level: Optional[str] = None, **options: Any) -> TrainRun:
    """Process group, seed, where training starts (refusing another run's folder), logger,
    resolved config, validation loader: what every run needs, in that order, so that nothing is
    written into a folder the run may not use. ``options`` are :class:`TrainRun` fields."""
    check_config(cfg, "<config>")  # fills the defaults of a config not read by get_config
    if parallel:
        init_distributed(cfg["dist_timeout"])
        check_same_lists(cfg)  # every node reads the same list files
    rank = get_rank() if parallel else 0
    world_size = get_world_size() if parallel else 1
    if seed is not None:
        cfg["seed"] = seed
    out_dir = output_dir_of(cfg)
    identity = run_identity(cfg)
    decision = resolve_resume(cfg["resume"], cfg["resume_epoch"], out_dir, cfg["model_name"],
                              identity)
    setup_logger(out_dir, rank, cfg["log_level"])
    logger.info("%s", run_header(cfg))  # the log's first lines: environment and resolved config
    if rank == 0:
        if decision.action == "start_over":
            moved = set_aside_checkpoints(out_dir, cfg["model_name"])
            if moved:
                logger.info("resume=no: the earlier checkpoints were moved to %s", moved)
        for path in remove_stale_temporaries(out_dir):
            logger.info("Removed %s, left by an interrupted save", path)
        dump_config(cfg, os.path.join(out_dir, "config.yaml"))
    seed_everything(cfg["seed"])
    if options.get("use_fleet"):
        from paddle.distributed import fleet

        fleet.init(is_collective=True)
    writer = MetricWriter(os.path.join(out_dir, "vdl") if rank == 0 else None)
    run = TrainRun(cfg, out_dir, rank, world_size, AmpContext(use_amp, amp_level), writer,
                   identity=identity, decision=decision, **options)
    run.accum_steps = gradient_accumulation_steps(cfg, cfg["DATASET"]["batch_size"], world_size)
    if validate:
        batch_size = cfg["DATASET"]["valid_batch_size"] or cfg["DATASET"]["batch_size"]
        _, run.valid_loader = build_eval_loader(cfg, "valid", batch_size)
    return run


def end_epoch(run: TrainRun, plan: Any, stage: Stage, epoch: int, meter: TrainMeter) -> None:
    """Epoch summary; BN statistics made current and equal on every rank; then, as the plan
    says, precise BN, validation (+ best model) and a checkpoint. Too many bad videos stop
    training after the epoch's checkpoint is written."""
    done = epoch + 1
    bad_count, too_many_bad = _bad_videos(run, stage.train_set)
    meter.log_epoch(bad_videos=bad_count)
    plain = unwrap(stage.model)
    aggregate_sub_bn_stats(plain)  # every rank, before the statistics are used
    sync_bn_buffers(plain)
    if stop_requested(run.stop, run.world_size):
        raise Interrupted(epoch, stage.iters)
    precise_cfg = run.cfg.get("PRECISEBN")
    if precise_cfg and plan.is_precise_bn_epoch(epoch):
        do_preciseBN(plain, plan.precise_bn_loader(stage), run.world_size > 1,
                     precise_cfg["num_iters_preciseBN"])
    if run.valid_loader is not None and plan.is_eval_epoch(epoch):
        try:
            validate(run, stage.model, done)
        except Interrupted:
            raise Interrupted(epoch, stage.iters) from None
    if too_many_bad is not None or done % run.cfg["save_interval"] == 0 \
            or done == plan.total_epochs:
        save_checkpoint(run, stage, done)
    if too_many_bad is not None:
        raise too_many_bad


def _resume_from_unit(run: TrainRun, stage: Stage) -> int:
    """Load the unit the run continues from; returns the iteration to start the epoch at."""
    unit = run.decision.unit
    state = load_checkpoint_unit(unit, stage.model, stage.optimizer)
    run.amp.load_state_dict(state.get("scaler"))
    run.best_top1 = float(state.get("best_top1", -1.0))
    run.last_checkpoint = unit.model_path
    # a mid-epoch unit counts micro-batches of its writer's topology: the same updates are
    # ``iteration / its accumulation`` on any other (the global batches do not depend on it)
    updates = int(unit.iteration) // int(state.get("accumulation") or run.accum_steps)
    return updates * run.accum_steps


def train_model(cfg: Dict[str, Any], weights: Optional[str] = None, parallel: bool = True,
                validate: bool = True, use_amp: bool = False, amp_level: Optional[str] = None,
                max_iters: Optional[int] = None, use_fleet: bool = False,
                seed: Optional[int] = None, multigrid: bool = False) -> Dict[str, Any]:
    """Train ``cfg``'s model (with the multigrid schedule of ``cfg.MULTIGRID`` when
    ``multigrid``); returns best_top1, last_checkpoint, output_dir and model.

    Rerunning the same training in the same ``output_dir`` continues it from its newest complete
    checkpoint (``resume: auto``, the default). On SIGTERM/SIGINT the run writes a checkpoint of
    the point reached and raises :class:`~.stopping.TrainingStopped`.
    """
    check_config(cfg, "<config>")
    # the rates as the global batch scales them, before multigrid derives its own from them
    lr_message = apply_lr_scaling(cfg, get_world_size() if parallel else 1)
    plan = MultigridPlan(cfg) if multigrid else PlainPlan(cfg)
    run = start_run(cfg, parallel, validate, seed, use_amp, amp_level, weights=weights,
                    max_iters=max_iters, use_fleet=use_fleet)
    logger.info("%s", lr_message)
    if multigrid:
        logger.info("\n%s", plan.table())
    unit = run.decision.unit
    start_epoch = unit.epoch if unit is not None else 0
    if unit is not None:
        run.weights = None  # the checkpoint holds the weights
    stage = build_stage(run, plan, start_epoch, previous=None)
    start_step = _resume_from_unit(run, stage) if unit is not None else 0
    meter = TrainMeter(plan.total_epochs, run.world_size, run.writer)
    # curves continue where the run left off
    meter.global_step = start_epoch * stage.iters + start_step
    run.stop = install_stop_request()
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, plan.total_epochs):
            if epoch != start_epoch and plan.starts_stage(epoch):
                stage = build_stage(run, plan, epoch, previous=stage)
                logger.info("%s", plan.describe_stage(epoch))
            seed_everything(cfg["seed"] + epoch)
            stage.loader.set_epoch(epoch)
            train_epoch(run, stage, epoch, meter, start_step if epoch == start_epoch else 0)
            end_epoch(run, plan, stage, epoch, meter)
    except Interrupted as stop:
        save_checkpoint(run, stage, stop.epochs_done, stop.iteration)
        logger.warning("Stopped by %s after %d epochs and %d iterations; rerun the same command "
                       "to continue from %s", run.stop.signal_name if run.stop else "a signal",
                       stop.epochs_done, stop.iteration, run.last_checkpoint)
        raise finish_stop(run.stop, run.last_checkpoint) from None
    finally:
        if run.stop is not None:
            run.stop.restore()
        run.writer.close()
    logger.info("Training finished: best top1 %.4f, outputs in %s", run.best_top1, run.out_dir)
    return {"best_top1": run.best_top1, "last_checkpoint": run.last_checkpoint,
            "output_dir": run.out_dir, "model": unwrap(stage.model)}


def train_model_multigrid(cfg: Dict[str, Any], **kwargs: Any) -> Dict[str, Any]:
    """:func:`train_model` with the multigrid schedule of ``cfg.MULTIGRID``."""
    return train_model(cfg, multigrid=True, **kwargs)
