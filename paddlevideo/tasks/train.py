"""The training loop, written once for plain and multigrid training.

A run (:mod:`.run`: the frozen config, where training starts) goes through the epochs of a plan
(:mod:`.plans`); each epoch trains with a *stage* (model, optimizer, LR schedule and loader of
one config), built at the start and again where the plan starts a new stage (multigrid's long
cycle). Logging, validation and checkpointing are plain ``if``s in :func:`train`, so every
training feature (accumulation, AMP, backbone paths, precise BN, validation, checkpoints, NaN
checks, resume) exists once and works in both.
"""
from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
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
from ..solver import build_lr, build_optimizer
from ..utils.checkpoint import NonFiniteCheckpointError, load_weights, save_finite_weights
from ..utils.config import ConfigError, check_config
from ..utils.cpu_features import math_threads, one_cpu_process, usable_cores
from ..utils.dist import all_reduce_sum, collective, get_world_size
from ..utils.logger import get_logger
from .amp import AmpContext
from .backbone_paths import apply_backbone_path
from .checkpointing import (
    SavePoint,
    checkpoint_contents,
    load_checkpoint_unit,
    load_optimizer_state,
    optimizer_state_by_structured_name,
    unwrap,
    write_unit,
)
from .data import build_train_loader
from .options import TrainOptions
from .plans import Plan
from .precise_bn import bn_layers, do_preciseBN
from .profiler import TrainingProfiler
from .progress import TrainMeter, progress
from .run import TrainRun, seed_everything, start_run
from .run_lock import releases_run_lock
from .stopping import Interrupted, finish_stop, install_stop_request, stop_requested

logger = get_logger()


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


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
    bn_loader: Any        # the batches precise BN measures (the plan's choice)


def updates_per_epoch(iters: int, accum_steps: int) -> int:
    """Optimizer updates in an epoch of ``iters`` iterations: what the LR schedule counts, so
    that with accumulation an update gets the LR it has on a topology that takes the global
    batch at once."""
    return -(-iters // accum_steps)


def check_iterations(loader, max_iters: Optional[int], batch_size: int,
                     world_size: int) -> int:
    """Iterations per epoch (capped by ``max_iters``); an error when there is no full batch."""
    iters = len(loader) if not max_iters else min(len(loader), max_iters)
    if iters == 0:
        raise ConfigError(f"DATASET.train: {len(loader.dataset)} samples give no full batch of "
                          f"{batch_size} per process × {world_size} processes",
                          key="DATASET.batch_size")
    return iters


def build_stage(run: TrainRun, plan: Plan, epoch: int, previous: Optional[Stage]) -> Stage:
    """Data, model (weights from ``previous`` or ``run.weights``), LR and optimizer for the
    stage of the plan that ``epoch`` is in."""
    cfg = plan.stage_config(epoch)
    train_set, loader = build_train_loader(cfg, plan.batch_sampler(cfg, epoch), run.accum_steps)
    iters = check_iterations(loader, run.options.max_iters, cfg["DATASET"]["batch_size"],
                             run.world_size)
    model = build_model(cfg["MODEL"])
    if previous is None and run.weights:
        head_note = load_finetune_weights(model, run.weights, skip_head=cfg["skip_head"])
        logger.info("Loaded weights from %s", run.weights)
        if head_note:  # the checkpoint's classifier does not fit this run's classes
            logger.info("%s", head_note)
    # dygraph, to_static or oneDNN (before AMP/DataParallel wrap the model)
    apply_backbone_path(model, cfg, run.amp.enabled, run.world_size, paddle.get_device())
    lr_scheduler = build_lr(cfg["OPTIMIZER"]["learning_rate"],
                            updates_per_epoch(iters, run.accum_steps))
    optimizer = build_optimizer(cfg["OPTIMIZER"], lr_scheduler, model)
    if previous is not None:  # carry weights and momentum across the rebuild
        load_weights(model, unwrap(previous.model).state_dict())
        load_optimizer_state(optimizer, model, optimizer_state_by_structured_name(
            previous.optimizer, unwrap(previous.model)))
    model, optimizer = run.amp.decorate(model, optimizer)
    if run.options.fleet:
        from paddle.distributed import fleet

        model, optimizer = fleet.distributed_model(model), fleet.distributed_optimizer(optimizer)
    elif run.world_size > 1:
        model = paddle.DataParallel(model)
    return Stage(cfg, model, optimizer, lr_scheduler, train_set, loader, iters,
                 plan.precise_bn_loader(cfg, train_set, loader))


def _diverged(what: str, run: TrainRun) -> TrainingDivergedError:
    return TrainingDivergedError(
        f"{what}. Last good checkpoint: {run.last_checkpoint or 'none written yet'}. Lower the "
        f"learning rate or check the data, then resume from it (-o resume=<its .pdparams>).")


def _step_seed(seed: int, epoch: int, step: int) -> int:
    """The Paddle (dropout) seed of one iteration: a resumed epoch draws what it would have."""
    return int(np.random.SeedSequence([seed, epoch, step]).generate_state(1)[0] % 2**31)


def train_step(model: nn.Layer, optimizer: Any, batch: Any, amp: AmpContext,
               accum_steps: int = 1, sync: bool = True) -> Dict[str, paddle.Tensor]:
    """One iteration: forward in ``mode="train"`` (``batch``: slow ``[N,3,T/alpha,H,W]``, fast
    ``[N,3,T,H,W]``, labels ``[N,1]``), backward of the loss / ``accum_steps`` and, when
    ``sync``, the optimizer update; the gradient all-reduce of ``paddle.DataParallel`` runs
    only then. Returns the model's ``{'loss', 'top1', 'top5'}``. The LR is set by the caller."""
    with amp.no_sync(model, sync):
        with amp.autocast():
            outputs = model(batch, mode="train")
        amp.backward(outputs["loss"] / accum_steps)
    if sync:
        amp.step(optimizer)
        optimizer.clear_grad()
    return outputs


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
        if run.options.profiler is not None:  # main.py -p: starts/stops paddle.profiler
            run.options.profiler.step()
        meter.data_ready()
        lr_scheduler.step(epoch * updates + step // run.accum_steps)
        paddle.seed(_step_seed(run.cfg["seed"], epoch, step))
        sync = (step + 1) % run.accum_steps == 0 or step + 1 == stage.iters
        with collective(f"training step {epoch + 1}:{step + 1} (gradient all-reduce)"):
            outputs = train_step(model, optimizer, batch, run.amp, run.accum_steps, sync)
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
    non-finite validation loss stops training as a non-finite training loss does. One process
    on a CPU runs the model on every core it may use while validating."""
    local_stop = (lambda: run.stop is not None and run.stop.requested) \
        if run.world_size == 1 else None
    threads = math_threads(usable_cores()) if one_cpu_process(run.world_size) \
        else contextlib.nullcontext()
    with threads:
        result = run_validation(model, run.valid_loader, done, run.amp, local_stop)
    run.writer.scalars("val", result, done)
    logger.info("[VALID] epoch %d: loss %.4f top1 %.4f top5 %.4f (%d samples)", done,
                result["loss"], result["top1"], result["top5"], result["samples"])
    if not math.isfinite(result["loss"]):
        raise _diverged(f"Validation loss is {result['loss']} after epoch {done}", run)
    if result["top1"] > run.best_top1:
        run.best_top1 = result["top1"]
        if run.rank == 0:
            save_finite_weights(unwrap(model).state_dict(), run.layout.best)
        logger.info("Best top1 so far: %.4f (saved %s)", run.best_top1,
                    os.path.basename(run.layout.best))


def save_checkpoint(run: TrainRun, stage: Stage, epochs_done: int, iteration: int = 0) -> None:
    """A checkpoint unit of ``epochs_done`` epochs and ``iteration`` iterations, written by rank
    0; weights with NaN or infinity are never written: training stops, naming the last unit."""
    point = SavePoint(epochs_done, iteration, epochs_done * stage.iters + iteration)
    extra = {"best_top1": run.best_top1, "scaler": run.amp.state_dict(),
             "accumulation": run.accum_steps}
    try:  # every rank checks: they hold the same weights, and all must stop together
        weights, state = checkpoint_contents(stage.model, stage.optimizer, point, extra)
    except NonFiniteCheckpointError as err:
        bad = err.keys
        raise _diverged(f"Weights after epoch {epochs_done}"
                        f"{f', iteration {iteration}' if iteration else ''} hold NaN or "
                        f"infinity ({', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}); "
                        f"no checkpoint was written", run) from None
    if run.rank == 0:
        path = write_unit(run.layout, point, weights, state, run.identity)
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


def end_epoch(run: TrainRun, plan: Plan, stage: Stage, epoch: int, meter: TrainMeter) -> None:
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
        do_preciseBN(plain, stage.bn_loader, run.world_size > 1,
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


@releases_run_lock
def train(cfg: Dict[str, Any], options: TrainOptions) -> Dict[str, Any]:
    """Train the checked ``cfg`` as ``options`` say (:func:`train_model` has the details);
    returns best_top1, last_checkpoint, output_dir and model."""
    run, plan = start_run(cfg, options)
    unit = run.decision.unit
    start_epoch = unit.epoch if unit is not None else 0
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
            seed_everything(run.cfg["seed"] + epoch)
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
        if run.options.profiler is not None:  # -p: a range training ended inside is written
            run.options.profiler.close()
    logger.info("Training finished: best top1 %.4f, outputs in %s", run.best_top1, run.out_dir)
    return {"best_top1": run.best_top1, "last_checkpoint": run.last_checkpoint,
            "output_dir": run.out_dir, "model": unwrap(stage.model)}


def train_model(cfg: Dict[str, Any], weights: Optional[str] = None, parallel: bool = True,
                validate: bool = True, use_amp: bool = False, amp_level: Optional[str] = None,
                max_iters: Optional[int] = None, use_fleet: bool = False,
                seed: Optional[int] = None, multigrid: bool = False,
                profiler_options: Optional[str] = None) -> Dict[str, Any]:
    """Train ``cfg``'s model (with the multigrid schedule of ``cfg.MULTIGRID`` when
    ``multigrid``); returns best_top1, last_checkpoint, output_dir and model. PaddleVideo's
    entry point: it checks ``cfg`` and runs :func:`train` with the :class:`TrainOptions` of its
    arguments; ``cfg`` itself is not changed.

    Rerunning the same training in the same ``output_dir`` continues it from its newest complete
    checkpoint (``resume: auto``, the default). On SIGTERM/SIGINT the run writes a checkpoint of
    the point reached and raises :class:`~.stopping.TrainingStopped`.
    """
    check_config(cfg, "<config>")  # fills the defaults of a config not read by get_config
    options = TrainOptions(weights=weights, validate=validate, parallel=parallel, amp=use_amp,
                           amp_level=amp_level, max_iters=max_iters, fleet=use_fleet, seed=seed,
                           multigrid=multigrid,
                           profiler=TrainingProfiler.from_string(profiler_options))
    return train(cfg, options)


def train_model_multigrid(cfg: Dict[str, Any], **kwargs: Any) -> Dict[str, Any]:
    """:func:`train_model` with the multigrid schedule of ``cfg.MULTIGRID``."""
    return train_model(cfg, multigrid=True, **kwargs)
