"""Training loop: a plain loop where logging, validation and checkpointing are plain ``if``s."""
from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
import paddle
import paddle.nn as nn

from ..loader import build_dataloader, build_dataset
from ..loader.eval_sampler import DistributedEvalBatchSampler
from ..modeling import build_model
from ..modeling.onednn_training import apply_cpu_training_options
from ..solver import build_lr, build_optimizer
from ..utils.checkpoint import load_weights, save
from ..utils.config import ConfigError, dump_config
from ..utils.dist import all_reduce_sum, get_rank, get_world_size, init_distributed
from ..utils.logger import get_logger, setup_logger
from ..utils.multigrid.sub_batchnorm import aggregate_sub_bn_stats
from ..utils.precise_bn import bn_layers, do_preciseBN
from .amp import AmpContext
from .checkpointing import (
    load_training_checkpoint,
    resolve_resume_epoch,
    save_training_checkpoint,
    unwrap,
)
from .progress import MetricWriter, TrainMeter, progress
from .static_graph import apply_to_static

logger = get_logger()


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and Paddle (dropout) generators."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    paddle.seed(seed)


def output_dir_of(cfg: Dict[str, Any]) -> str:
    return cfg.get("output_dir") or os.path.join("output", cfg.get("model_name", "model"))


def dataset_sections(cfg: Dict[str, Any], mode: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``(DATASET.<mode>, PIPELINE.<mode>)``, the dataset told the model's number of classes so
    a label outside ``[0, num_classes)`` is an error with its file and line before training."""
    dataset_cfg = dict(cfg["DATASET"][mode])
    num_classes = (cfg["MODEL"].get("head") or {}).get("num_classes")
    if num_classes is not None:
        dataset_cfg.setdefault("num_classes", num_classes)
    return dataset_cfg, cfg["PIPELINE"][mode]


def build_eval_loader(cfg: Dict[str, Any], mode: str, batch_size: int):
    """A loader over ``DATASET.<mode>`` where each sample is seen exactly once across ranks."""
    dataset = build_dataset(dataset_sections(cfg, mode))
    sampler = DistributedEvalBatchSampler(len(dataset), batch_size)
    loader = build_dataloader(dataset, batch_size, cfg["DATASET"].get("num_workers", 0),
                              shuffle=False, drop_last=False, batch_sampler=sampler,
                              seed=cfg.get("seed", 1234))
    return dataset, loader


def gradient_accumulation_steps(cfg: Dict[str, Any], batch_size: int, world_size: int) -> int:
    """``GRADIENT_ACCUMULATION.global_batch_size`` / (per-process batch × processes)."""
    section = cfg.get("GRADIENT_ACCUMULATION") or {}
    global_batch = section.get("global_batch_size")
    if not global_batch:
        return 1
    per_step = batch_size * world_size
    if global_batch % per_step:
        raise ConfigError(f"GRADIENT_ACCUMULATION.global_batch_size ({global_batch}) must be a "
                          f"multiple of batch_size × processes ({batch_size} × {world_size})")
    return global_batch // per_step


@paddle.no_grad()
def sync_bn_buffers(model: nn.Layer) -> None:
    """Average BN running statistics over processes so every rank holds the same state."""
    if get_world_size() == 1:
        return
    for layer in bn_layers(model):
        for buf in (layer._mean, layer._variance):
            paddle.assign(paddle.to_tensor(all_reduce_sum(buf.numpy()) / get_world_size()), buf)


@paddle.no_grad()
def run_validation(model: nn.Layer, loader, epoch: int, amp: AmpContext) -> Dict[str, float]:
    """Loss (on logits), top-1 and top-5 over the whole validation set, all processes."""
    model = unwrap(model)
    model.eval()
    totals = np.zeros(4, dtype=np.float64)  # loss·n, top1·n, top5·n, n
    for batch in progress(loader, desc=f"valid epoch {epoch}"):
        with amp.autocast():
            outputs = model(batch, mode="valid")
        n = batch[0].shape[0]
        totals += [float(outputs["loss"]) * n, float(outputs["top1"]) * n,
                   float(outputs["top5"]) * n, n]
    totals = all_reduce_sum(totals)
    count = max(totals[3], 1)
    model.train()
    return {"loss": totals[0] / count, "top1": totals[1] / count, "top5": totals[2] / count,
            "samples": int(totals[3])}


def _check_finite(loss_value: float, epoch: int, step: int, lr: float,
                  last_checkpoint: Optional[str]) -> None:
    if not math.isfinite(loss_value):
        raise TrainingDivergedError(
            f"Loss is {loss_value} at epoch {epoch}, iteration {step} (lr {lr:.6g}). "
            f"Last good checkpoint: {last_checkpoint or 'none written yet'}. Lower the learning "
            f"rate or check the data, then resume with -o resume_epoch=N.")


def train_epoch(model, loader, optimizer, lr_scheduler, amp: AmpContext, epoch: int,
                cfg: Dict[str, Any], meter: TrainMeter, accum_steps: int,
                last_checkpoint: Optional[str], max_iters: Optional[int] = None) -> None:
    """One pass over ``loader``; the LR is set from the global iteration before each step."""
    model.train()
    iters = len(loader) if not max_iters else min(len(loader), max_iters)
    log_interval = cfg.get("log_interval", 10)
    meter.start_epoch(epoch, iters)
    for step, batch in enumerate(loader):
        if step >= iters:
            break
        meter.data_ready()
        lr_scheduler.step(epoch * iters + step)
        sync = (step + 1) % accum_steps == 0 or step + 1 == iters
        with amp.no_sync(model, sync):
            with amp.autocast():
                outputs = model(batch, mode="train")
            loss = outputs["loss"] / accum_steps
            amp.backward(loss)
        if sync:
            amp.step(optimizer)
            optimizer.clear_grad()
        loss_value = float(outputs["loss"])
        _check_finite(loss_value, epoch + 1, step + 1, lr_scheduler(), last_checkpoint)
        meter.step_done(batch[0].shape[0], loss_value, float(outputs["top1"]),
                        float(outputs["top5"]), lr_scheduler())
        if (step + 1) % log_interval == 0 or step + 1 == iters:
            meter.log_step(step + 1)


@dataclass
class TrainRun:
    """What a training run keeps across epochs, and the steps that end an epoch."""

    cfg: Dict[str, Any]
    out_dir: str
    rank: int
    amp: AmpContext
    writer: MetricWriter
    valid_loader: Any = None
    best_top1: float = -1.0  # -1: the first validation always saves a best model
    last_checkpoint: Optional[str] = None

    @property
    def model_name(self) -> str:
        return self.cfg.get("model_name", "model")

    def end_epoch(self, model, optimizer, bn_loader, train_set, meter: TrainMeter, done: int,
                  precise_bn: bool, evaluate: bool, checkpoint: bool) -> None:
        """Epoch summary; then, as asked: precise BN (over ``bn_loader``), validation (+ best
        model), checkpoint."""
        meter.log_epoch(bad_videos=_bad_video_count(train_set, self.cfg))
        aggregate_sub_bn_stats(unwrap(model))  # every rank, before the statistics are used
        sync_bn_buffers(unwrap(model))
        precise_cfg = self.cfg.get("PRECISEBN") or {}
        if precise_bn and precise_cfg:
            do_preciseBN(unwrap(model), bn_loader, get_world_size() > 1,
                         precise_cfg.get("num_iters_preciseBN", 200))
        if evaluate and self.valid_loader is not None:
            self.validate(model, done)
        if checkpoint:
            if self.rank == 0:
                self.last_checkpoint = save_training_checkpoint(
                    self.out_dir, self.model_name, done, model, optimizer,
                    {"best_top1": self.best_top1, "scaler": self.amp.state_dict()})
                logger.info("Saved checkpoint %s", self.last_checkpoint)
            else:
                self.last_checkpoint = "(written by rank 0)"

    def validate(self, model, done: int) -> None:
        result = run_validation(model, self.valid_loader, done, self.amp)
        self.writer.scalars("val", result, done)
        logger.info("[VALID] epoch %d: loss %.4f top1 %.4f top5 %.4f (%d samples)", done,
                    result["loss"], result["top1"], result["top5"], result["samples"])
        if result["top1"] > self.best_top1:
            self.best_top1 = result["top1"]
            if self.rank == 0:
                save(unwrap(model).state_dict(),
                     os.path.join(self.out_dir, f"{self.model_name}_best.pdparams"))
            logger.info("Best top1 so far: %.4f (saved %s_best.pdparams)", self.best_top1,
                        self.model_name)

    def resume(self, model, optimizer, epoch: int) -> None:
        state = load_training_checkpoint(self.out_dir, self.model_name, epoch, model, optimizer)
        self.amp.load_state_dict(state.get("scaler"))
        self.best_top1 = float(state.get("best_top1", -1.0))

    def finish(self, model) -> Dict[str, Any]:
        self.writer.close()
        logger.info("Training finished: best top1 %.4f, outputs in %s", self.best_top1,
                    self.out_dir)
        return {"best_top1": self.best_top1, "last_checkpoint": self.last_checkpoint,
                "output_dir": self.out_dir, "model": unwrap(model)}


def start_run(cfg: Dict[str, Any], parallel: bool, validate: bool, seed: Optional[int],
              use_amp: bool = False, amp_level: Optional[str] = None) -> TrainRun:
    """Process group, seed, logger, resolved config, validation loader: what every run needs."""
    if parallel:
        init_distributed()
    rank = get_rank() if parallel else 0
    cfg["seed"] = cfg.get("seed", 1234) if seed is None else seed
    out_dir = output_dir_of(cfg)
    setup_logger(out_dir, rank, cfg.get("log_level", "INFO"))
    if rank == 0:
        dump_config(cfg, os.path.join(out_dir, "config.yaml"))
    seed_everything(cfg["seed"])
    valid_loader = None
    if validate:
        batch_size = cfg["DATASET"].get("valid_batch_size", cfg["DATASET"]["batch_size"])
        _, valid_loader = build_eval_loader(cfg, "valid", batch_size)
    writer = MetricWriter(os.path.join(out_dir, "vdl") if rank == 0 else None)
    return TrainRun(cfg, out_dir, rank, AmpContext(use_amp, amp_level), writer, valid_loader)


def check_iterations(loader, max_iters: Optional[int], batch_size: int) -> int:
    """Iterations per epoch (capped by ``max_iters``); an error when there is no full batch."""
    iters = len(loader) if not max_iters else min(len(loader), max_iters)
    if iters == 0:
        raise ConfigError(f"DATASET.train: {len(loader.dataset)} samples give no full batch of "
                          f"{batch_size} per process × {get_world_size()} processes")
    return iters


def train_model(cfg: Dict[str, Any], weights: Optional[str] = None, parallel: bool = True,
                validate: bool = True, use_amp: bool = False, amp_level: Optional[str] = None,
                max_iters: Optional[int] = None, use_fleet: bool = False,
                seed: Optional[int] = None) -> Dict[str, Any]:
    """Train ``cfg``'s model; returns best_top1, last_checkpoint, output_dir and model."""
    run = start_run(cfg, parallel, validate, seed, use_amp, amp_level)
    world_size = get_world_size() if parallel else 1
    batch_size = cfg["DATASET"]["batch_size"]
    accum_steps = gradient_accumulation_steps(cfg, batch_size, world_size)
    train_set = build_dataset(dataset_sections(cfg, "train"))
    train_loader = build_dataloader(train_set, batch_size, cfg["DATASET"].get("num_workers", 0),
                                    shuffle=True, drop_last=True, seed=cfg["seed"])
    iters = check_iterations(train_loader, max_iters, batch_size)

    model = build_model(cfg["MODEL"])
    if weights:
        load_weights(model, weights, skip_head=bool(cfg.get("skip_head", False)))
        logger.info("Loaded weights from %s", weights)
    model = apply_to_static(model, bool(cfg.get("to_static", False)))
    lr_scheduler = build_lr(cfg["OPTIMIZER"]["learning_rate"], iters)
    optimizer = build_optimizer(cfg["OPTIMIZER"], lr_scheduler, model)
    # cpu_fast_path: oneDNN convolutions for CPU training (before AMP/DataParallel wrap the model)
    apply_cpu_training_options(model, optimizer, cfg, use_amp=use_amp)
    model, optimizer = run.amp.decorate(model, optimizer)
    if use_fleet:
        from paddle.distributed import fleet

        fleet.init(is_collective=True)
        model, optimizer = fleet.distributed_model(model), fleet.distributed_optimizer(optimizer)
    elif world_size > 1:
        model = paddle.DataParallel(model)

    start_epoch = resolve_resume_epoch(cfg.get("resume_epoch", 0), cfg.get("resume"),
                                       run.out_dir, run.model_name)
    if start_epoch:
        run.resume(model, optimizer, start_epoch)
    epochs = cfg.get("epochs", 1)
    meter = TrainMeter(epochs, world_size, run.writer)
    meter.global_step = start_epoch * iters  # curves continue where the resumed run left off
    precise_interval = (cfg.get("PRECISEBN") or {}).get("preciseBN_interval", 1)
    for epoch in range(start_epoch, epochs):
        # per-epoch seeds make a resumed run draw exactly what the uninterrupted run drew
        seed_everything(cfg["seed"] + epoch)
        train_loader.set_epoch(epoch)
        train_epoch(model, train_loader, optimizer, lr_scheduler, run.amp, epoch, cfg, meter,
                    accum_steps, run.last_checkpoint, max_iters)
        done, last = epoch + 1, epoch + 1 == epochs
        run.end_epoch(model, optimizer, train_loader, train_set, meter, done,
                      precise_bn=done % precise_interval == 0 or last,
                      evaluate=done % cfg.get("val_interval", 1) == 0 or last,
                      checkpoint=done % cfg.get("save_interval", 1) == 0 or last)
    return run.finish(model)


def _bad_video_count(dataset, cfg: Dict[str, Any]) -> int:
    """Videos that failed to decode, over all processes; stops training, listing them, when
    more than ``bad_video_max_fraction`` of the data set failed."""
    if not hasattr(dataset, "bad_videos"):
        return 0
    from ..loader import check_bad_video_fraction

    count = int(all_reduce_sum(np.array([len(dataset.bad_videos())], dtype=np.int64))[0])
    return check_bad_video_fraction(dataset, float(cfg.get("bad_video_max_fraction", 0.05)),
                                    count)
