"""The start of a training run: the resolved, frozen config (:func:`resolve_run`), the process
group, where training starts, the logger and the validation data (:func:`start_run`), and the
:class:`TrainRun` that the loop in :mod:`.train` carries through the epochs."""
from __future__ import annotations

import copy
import os
import random
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
import paddle

from ..multigrid import build_multigrid_schedule
from ..solver.lr_scaling import apply_lr_scaling
from ..utils.config import ConfigError, dump_config, freeze_config
from ..utils.dist import get_rank, get_world_size, init_distributed
from ..utils.fileio import remove_stale_temporaries
from ..utils.logger import get_logger, setup_logger
from .amp import AmpContext
from .checkpointing import CheckpointLayout
from .data import build_eval_loader, output_dir_of
from .options import TrainOptions
from .plans import MultigridPlan, PlainPlan, Plan, multigrid_run_config
from .progress import MetricWriter
from .resume import ResumeDecision, resolve_resume, run_identity, set_aside_checkpoints
from .run_info import run_header
from .run_lock import take_run_lock
from .same_lists import check_same_lists

logger = get_logger()


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
    """A training run: what is fixed at its start (the resolved config, the options, the
    topology, where it starts) and the state the loop updates (stop request, best top-1, newest
    checkpoint)."""

    cfg: Dict[str, Any]              # resolved and frozen (resolve_run): nothing changes it
    options: TrainOptions
    out_dir: str
    rank: int
    world_size: int                  # read once, after the process group is up
    amp: AmpContext
    writer: MetricWriter
    identity: Dict[str, Any]         # config hash + seed, in every manifest
    decision: ResumeDecision         # where training starts
    accum_steps: int = 1             # the same in every stage (from the base batch size)
    valid_loader: Any = None
    stop: Any = None                 # the SIGTERM/SIGINT request, once installed
    best_top1: float = -1.0          # -1: the first validation always saves a best model
    last_checkpoint: Optional[str] = None        # the newest unit written (finite)

    @property
    def model_name(self) -> str:
        return self.cfg["model_name"]

    @property
    def layout(self) -> CheckpointLayout:
        return CheckpointLayout(self.out_dir, self.model_name)

    @property
    def weights(self) -> Optional[str]:
        """Weights to start from: ``-w``, unless the run resumes (the checkpoint holds them)."""
        return None if self.decision.unit is not None else self.options.weights


def resolve_run(cfg: Dict[str, Any], options: TrainOptions,
                world_size: int) -> Tuple[Dict[str, Any], Plan, str]:
    """The config the run trains with, resolved once and frozen: a copy of the checked ``cfg``
    with ``options.seed``, the LR scaled to the global batch of ``world_size`` processes and,
    for multigrid, the schedule's epochs and LR; the plan over it; the LR scaling message.
    The run identity hashes exactly this config."""
    resolved = copy.deepcopy(cfg)
    if options.seed is not None:
        resolved["seed"] = options.seed
    # the rates as the global batch scales them, before multigrid derives its own from them
    lr_message = apply_lr_scaling(resolved, world_size)
    if not options.multigrid:
        frozen = freeze_config(resolved)
        return frozen, PlainPlan(frozen), lr_message
    schedule = build_multigrid_schedule(resolved)
    frozen = freeze_config(multigrid_run_config(resolved, schedule))
    return frozen, MultigridPlan(frozen, schedule), lr_message


def start_run(cfg: Dict[str, Any], options: TrainOptions) -> Tuple[TrainRun, Plan]:
    """Process group, resolved config, where training starts (refusing another run's folder),
    logger, validation loader: what every run needs, in that order, so that nothing is written
    into a folder the run may not use."""
    if options.parallel:
        init_distributed(cfg["dist_timeout"])
        check_same_lists(cfg)  # every node reads the same list files
    rank = get_rank() if options.parallel else 0
    world_size = get_world_size() if options.parallel else 1
    cfg, plan, lr_message = resolve_run(cfg, options, world_size)
    out_dir = output_dir_of(cfg)
    identity = run_identity(cfg)
    take_run_lock(out_dir, rank, world_size)  # one run per folder; released by train()
    decision = resolve_resume(cfg["resume"], cfg["resume_epoch"], out_dir, cfg["model_name"],
                              identity, set_aside=rank == 0)
    setup_logger(out_dir, rank, cfg["log_level"])
    logger.info("%s", run_header(cfg))  # the log's first lines: environment and resolved config
    for note in decision.set_aside:  # units that failed their manifest (resume=auto)
        logger.warning("%s", note)
    if rank == 0:
        if decision.action == "start_over":
            moved = set_aside_checkpoints(out_dir, cfg["model_name"])
            if moved:
                logger.info("resume=no: the earlier checkpoints were moved to %s", moved)
        for path in remove_stale_temporaries(out_dir):
            logger.info("Removed %s, left by an interrupted save", path)
        dump_config(cfg, os.path.join(out_dir, "config.yaml"))
    logger.info("%s", lr_message)
    if options.multigrid:
        logger.info("\n%s", plan.table())
    seed_everything(cfg["seed"])
    if options.fleet:
        from paddle.distributed import fleet

        fleet.init(is_collective=True)
    writer = MetricWriter(os.path.join(out_dir, "vdl") if rank == 0 else None)
    valid_loader = None
    if options.validate:
        batch_size = cfg["DATASET"]["valid_batch_size"] or cfg["DATASET"]["batch_size"]
        _, valid_loader = build_eval_loader(cfg, "valid", batch_size)
    accum_steps = gradient_accumulation_steps(cfg, cfg["DATASET"]["batch_size"], world_size)
    run = TrainRun(cfg, options, out_dir, rank, world_size, AmpContext(options.amp,
                   options.amp_level), writer, identity, decision, accum_steps, valid_loader)
    return run, plan
