"""Training checkpoints: model + optimizer/LR/scaler state per epoch, written atomically."""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

import paddle.nn as nn

from ..modeling.layers import aggregate_sub_bn_stats
from ..utils.checkpoint import (
    CheckpointError,
    checkpoint_paths,
    latest_checkpoint_epoch,
    load,
    load_weights,
    save,
)
from ..utils.logger import get_logger

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
    state = {"optimizer": optimizer_state_by_structured_name(optimizer, plain), "epoch": epoch}
    state.update(extra or {})
    save(state, paths["state"])
    return paths["model"]


def _rename_accumulators(state: Dict[str, Any], names: Dict[str, str]) -> Dict[str, Any]:
    """Rename ``{param_name}_{accumulator}`` keys with ``names`` (old param name → new)."""
    renamed = {}
    for key, value in state.items():
        param, _, suffix = key.partition(".")
        # accumulator keys look like "conv3d_110.w_0_velocity_0"; match the "w_0" part too
        prefix = next((n for n in names if key.startswith(n + "_")), None) if suffix else None
        renamed[names[prefix] + key[len(prefix):] if prefix else key] = value
    return renamed


def optimizer_state_by_structured_name(optimizer: Any, model: nn.Layer) -> Dict[str, Any]:
    """The optimizer state with accumulators keyed by structured parameter names
    (``backbone.s1...weight_velocity_0``) rather than the process-specific auto names
    (``conv3d_110.w_0_velocity_0``), so it loads into any instance of the model."""
    names = {p.name: name for name, p in model.named_parameters()}
    return _rename_accumulators(optimizer.state_dict(), names)


def load_optimizer_state(optimizer: Any, model: nn.Layer, state: Dict[str, Any]) -> None:
    """Inverse of :func:`optimizer_state_by_structured_name`; files keyed by auto names (as
    PaddleVideo writes them) load as they are."""
    names = {name: p.name for name, p in model.named_parameters()}
    optimizer.set_state_dict(_rename_accumulators(state, names))


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
    load_optimizer_state(optimizer, unwrap(model), state["optimizer"])
    logger.info("Resumed from %s (epoch %d)", paths["model"], epoch)
    return state
