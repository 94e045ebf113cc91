"""Training checkpoints: model + optimizer/LR/scaler state per epoch, written atomically."""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

import paddle
import paddle.nn as nn

from ..utils.checkpoint import (
    CheckpointError,
    checkpoint_paths,
    latest_checkpoint_epoch,
    load,
    load_weights,
    save,
)
from ..utils.logger import get_logger
from ..utils.multigrid.sub_batchnorm import aggregate_sub_bn_stats

logger = get_logger()


def unwrap(model: nn.Layer) -> nn.Layer:
    """The plain model inside a ``paddle.DataParallel`` (or fleet) wrapper."""
    return getattr(model, "_layers", model)


def save_training_checkpoint(output_dir: str, model_name: str, epoch: int, model: nn.Layer,
                             optimizer: Any, extra: Optional[Dict[str, Any]] = None) -> str:
    """Write ``{model_name}_epoch_{epoch:05d}.pdparams`` then ``.pdopt``; return the params path.

    ``epoch`` counts completed epochs (1-based). The ``.pdopt`` file is written last: a
    checkpoint counts as complete only when both files exist, so an interrupted save is never
    picked up by ``resume=auto``.
    """
    paths = checkpoint_paths(output_dir, model_name, epoch)
    plain = unwrap(model)
    aggregate_sub_bn_stats(plain)  # so the plain BN statistics in the file are current
    save(plain.state_dict(), paths["model"])
    state = {"optimizer": optimizer.state_dict(), "epoch": epoch}
    state.update(extra or {})
    save(state, paths["state"])
    return paths["model"]


def resolve_resume_epoch(resume_epoch: Any, resume: Any, output_dir: str,
                         model_name: str) -> int:
    """The number of completed epochs to resume from (0: start fresh).

    ``resume_epoch=N`` resumes from epoch N's files (an error if they are missing);
    ``resume=auto`` (or ``True``) from the newest complete checkpoint, if any.
    """
    if resume_epoch:
        paths = checkpoint_paths(output_dir, model_name, int(resume_epoch))
        for path in paths.values():
            if not os.path.isfile(path):
                raise CheckpointError(f"resume_epoch={resume_epoch}: {path} does not exist")
        return int(resume_epoch)
    if resume in ("auto", True):
        latest = latest_checkpoint_epoch(output_dir, model_name)
        if latest:
            logger.info("resume=auto: newest complete checkpoint is epoch %d in %s", latest,
                        output_dir)
        return latest or 0
    return 0


def load_training_checkpoint(output_dir: str, model_name: str, epoch: int, model: nn.Layer,
                             optimizer: Any) -> Dict[str, Any]:
    """Restore model and optimizer from epoch ``epoch``'s files; returns the ``.pdopt`` dict."""
    paths = checkpoint_paths(output_dir, model_name, epoch)
    load_weights(unwrap(model), paths["model"])
    state = load(paths["state"])
    if "optimizer" not in state:
        raise CheckpointError(f"{paths['state']} has no optimizer state")
    optimizer.set_state_dict(state["optimizer"])
    logger.info("Resumed from %s (epoch %d)", paths["model"], epoch)
    return state


def to_numpy_state(state: Dict[str, Any]) -> Dict[str, Any]:
    """Tensors → NumPy so a state dict can be compared or pickled."""
    return {k: v.numpy() if isinstance(v, paddle.Tensor) else v for k, v in state.items()}
