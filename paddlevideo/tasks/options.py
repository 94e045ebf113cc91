"""What a run is told beside its config: the command line's flags, as one object per task.

``main.py`` builds them from its arguments; ``train_model`` / ``test_model`` (PaddleVideo's
entry points) build them from theirs. Everything here is read-only: a run's decisions are made
from the config and these options once, in :func:`.train.resolve_run`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .profiler import TrainingProfiler


@dataclass(frozen=True)
class TrainOptions:
    """``weights``: fine-tune from them (not when resuming); ``validate``: validate and keep the
    best model; ``parallel``: join the process group of ``paddle.distributed.launch``;
    ``amp``/``amp_level``: mixed precision; ``max_iters``: at most this many iterations per
    epoch (smoke runs); ``fleet``: wrap with ``paddle.distributed.fleet``; ``seed``: wins over
    the config's; ``multigrid``: the schedule of ``cfg.MULTIGRID``; ``profiler``: ``-p``."""

    weights: Optional[str] = None
    validate: bool = True
    parallel: bool = True
    amp: bool = False
    amp_level: Optional[str] = None
    max_iters: Optional[int] = None
    fleet: bool = False
    seed: Optional[int] = None
    multigrid: bool = False
    profiler: Optional[TrainingProfiler] = None

    @classmethod
    def from_args(cls, args: Any) -> TrainOptions:
        """From ``main.py``'s parsed arguments (``-p`` parsed into a profiler here)."""
        return cls(weights=args.weights, validate=args.validate, parallel=True, amp=args.amp,
                   amp_level=args.amp_level, max_iters=args.max_iters, fleet=args.fleet,
                   seed=args.seed, multigrid=args.multigrid,
                   profiler=TrainingProfiler.from_string(args.profiler_options))


@dataclass(frozen=True)
class TestOptions:
    """``weights``: the model to test (required); ``parallel``: join the process group."""

    __test__ = False  # not a pytest test class when imported into test modules

    weights: Optional[str] = None
    parallel: bool = True

    @classmethod
    def from_args(cls, args: Any) -> TestOptions:
        return cls(weights=args.weights, parallel=True)
