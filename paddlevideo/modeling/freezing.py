"""Freeze parts of a pretrained backbone for the first epochs of a fine-tuning run.

On a few hundred clips, the batch statistics of small batches are noisy estimates of the ones a
Kinetics backbone was trained with, and the early gradients of a fresh head are large: keeping the
BN statistics (``FREEZE.bn_stats``) and/or the first stages (``FREEZE.stages``: 1 = the stem
``s1``, 2 = ``s1`` and ``s2``, ... each with its fusion layer) fixed for ``FREEZE.epochs`` epochs
lets the head settle first. Off by default (``epochs: 0``), as in PaddleVideo.

Frozen stages get ``stop_gradient`` (no gradient, so no update and no weight decay) and their BN
layers run in eval mode (running statistics used, not updated); ``bn_stats`` puts every BN layer
of the backbone in eval mode. :func:`apply_freezing` is called after ``model.train()`` at the
start of each epoch, so the state follows the epoch on resume too. A backbone converted to a
static program (``to_static``, ``cpu_fast_path``) runs in dygraph while frozen.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import paddle.nn as nn

from .layers import SubBatchNorm3D

_HELD_FORWARD = "_static_forward_held_while_frozen"
_BN_TYPES = (nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D, nn.BatchNorm, SubBatchNorm3D)


def stage_layers(backbone: nn.Layer, stages: int) -> List[nn.Layer]:
    """Stages ``s1..s{stages}`` of a SlowFast backbone and their ``_fuse`` layers."""
    layers = []
    for i in range(1, stages + 1):
        if not hasattr(backbone, f"s{i}"):
            raise ValueError(f"FREEZE.stages={stages}: the backbone has no stage s{i}")
        layers.append(getattr(backbone, f"s{i}"))
        if hasattr(backbone, f"s{i}_fuse"):
            layers.append(getattr(backbone, f"s{i}_fuse"))
    return layers


def _bn(layer: nn.Layer) -> List[nn.Layer]:
    return [m for m in layer.sublayers(include_self=True) if isinstance(m, _BN_TYPES)]


def _hold_static_forward(model: nn.Layer, backbone: nn.Layer, frozen: bool) -> None:
    """While frozen, the backbone runs in dygraph: a static program (``to_static``,
    ``cpu_fast_path``) keeps the gradients and BN modes it is traced with, and it is traced on
    its first call. The wrapper is set aside before that call and put back on release."""
    if frozen and "forward" in backbone.__dict__:
        model.__dict__[_HELD_FORWARD] = backbone.__dict__.pop("forward")
    elif not frozen and _HELD_FORWARD in model.__dict__:
        backbone.__dict__["forward"] = model.__dict__.pop(_HELD_FORWARD)


def apply_freezing(model: nn.Layer, freeze: Optional[Dict[str, Any]], epoch: int) -> Optional[str]:
    """Freeze (``epoch < FREEZE.epochs``) or release the parts ``freeze`` names; ``model`` is
    the recognizer (``model.backbone``). Returns a line to log at the first frozen epoch and at
    the epoch they are released, else None."""
    freeze = freeze or {}
    epochs, stages = int(freeze.get("epochs") or 0), int(freeze.get("stages") or 0)
    bn_stats = bool(freeze.get("bn_stats"))
    if epochs <= 0 or not (stages or bn_stats):
        return None
    active = epoch < epochs
    backbone = model.backbone
    _hold_static_forward(model, backbone, active)
    frozen = stage_layers(backbone, stages)
    for layer in frozen:
        for param in layer.parameters():
            param.stop_gradient = active
    if active:
        for layer in _bn(backbone) if bn_stats else [b for f in frozen for b in _bn(f)]:
            layer.eval()
    parts = ([f"stages s1..s{stages}"] if stages else []) + (["BN statistics"] if bn_stats else [])
    if active and epoch == 0:
        return f"freeze: {' and '.join(parts)} of the backbone frozen for {epochs} epochs"
    if epoch == epochs:
        return f"freeze: {' and '.join(parts)} trainable again from epoch {epoch + 1}"
    return None
