"""Optimizers built by name from ``OPTIMIZER``; Momentum with L2 decay (none on BN parameters)."""
from __future__ import annotations

from typing import Any, Dict, List

import paddle
import paddle.nn as nn
from paddle.optimizer.lr import LRScheduler

from ..utils.config import ConfigError, to_plain
from ..utils.registry import build_from_config
from .registry import OPTIMIZERS


def _as_float(value: Any, key: str) -> float:
    # PaddleVideo's configs write `value: 1e-4`, which YAML reads as the string "1e-4".
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number, got {value!r}") from None


def build_weight_decay(cfg: Any) -> Any:
    """``{name: L2, value: v}`` (or a bare number) → ``paddle.regularizer.L2Decay(v)``.

    BN layers carry their own ``L2Decay(0)`` in their ParamAttr, which takes precedence over the
    optimizer's regularizer, so BN parameters are never decayed.
    """
    if cfg is None:
        return None
    if not isinstance(cfg, dict):
        return paddle.regularizer.L2Decay(_as_float(cfg, "OPTIMIZER.weight_decay"))
    name = cfg.get("name", "L2")
    value = _as_float(cfg.get("value", 0.0), "OPTIMIZER.weight_decay.value")
    if name == "L2":
        return paddle.regularizer.L2Decay(value)
    if name == "L1":
        return paddle.regularizer.L1Decay(value)
    raise ConfigError(f"OPTIMIZER.weight_decay.name must be L2 or L1, got {name!r}")


def build_grad_clip(cfg: Any) -> Any:
    """``grad_clip: 1.0`` or ``{name: ClipGradByGlobalNorm, clip_norm: 1.0}`` → a clip object."""
    if cfg in (None, False, 0):
        return None
    if isinstance(cfg, dict):
        name = cfg.get("name", "ClipGradByGlobalNorm")
        if name != "ClipGradByGlobalNorm":
            raise ConfigError(f"OPTIMIZER.grad_clip.name: only ClipGradByGlobalNorm is "
                              f"supported, got {name!r}")
        return nn.ClipGradByGlobalNorm(_as_float(cfg.get("clip_norm", 1.0),
                                                 "OPTIMIZER.grad_clip.clip_norm"))
    return nn.ClipGradByGlobalNorm(_as_float(cfg, "OPTIMIZER.grad_clip"))


def _decay_and_clip(weight_decay: Any, grad_clip: Any) -> Dict[str, Any]:
    return {"weight_decay": build_weight_decay(weight_decay),
            "grad_clip": build_grad_clip(grad_clip)}


@OPTIMIZERS.register()
def Momentum(learning_rate: LRScheduler, parameters: List[Any], momentum: float = 0.9,
             use_nesterov: bool = False, weight_decay: Any = None,
             grad_clip: Any = None) -> paddle.optimizer.Optimizer:
    """SGD with (Nesterov) momentum and L2/L1 weight decay: PaddleVideo's SlowFast optimizer."""
    return paddle.optimizer.Momentum(
        learning_rate=learning_rate, parameters=parameters,
        momentum=_as_float(momentum, "OPTIMIZER.momentum"), use_nesterov=bool(use_nesterov),
        **_decay_and_clip(weight_decay, grad_clip))


@OPTIMIZERS.register()
def SGD(learning_rate: LRScheduler, parameters: List[Any], weight_decay: Any = None,
        grad_clip: Any = None) -> paddle.optimizer.Optimizer:
    return paddle.optimizer.SGD(learning_rate=learning_rate, parameters=parameters,
                                **_decay_and_clip(weight_decay, grad_clip))


@OPTIMIZERS.register()
def Adam(learning_rate: LRScheduler, parameters: List[Any], weight_decay: Any = None,
         grad_clip: Any = None) -> paddle.optimizer.Optimizer:
    return paddle.optimizer.Adam(learning_rate=learning_rate, parameters=parameters,
                                 **_decay_and_clip(weight_decay, grad_clip))


@OPTIMIZERS.register()
def AdamW(learning_rate: LRScheduler, parameters: List[Any], weight_decay: Any = None,
          grad_clip: Any = None) -> paddle.optimizer.Optimizer:
    """AdamW decays weights itself (a coefficient, not a regularizer): BN parameters, which
    carry an ``L2Decay(0)`` regularizer, are left out by name."""
    value = weight_decay.get("value", 0.0) if isinstance(weight_decay, dict) else (
        weight_decay or 0.0)
    no_decay = {p.name for p in parameters
                if isinstance(p.regularizer, paddle.regularizer.L2Decay)
                and float(p.regularizer._coeff) == 0.0}
    return paddle.optimizer.AdamW(
        learning_rate=learning_rate, parameters=parameters,
        weight_decay=_as_float(value, "OPTIMIZER.weight_decay.value"),
        grad_clip=build_grad_clip(grad_clip),
        apply_decay_param_fun=lambda name: name not in no_decay)


def build_optimizer(cfg: Dict[str, Any], lr_scheduler: LRScheduler,
                    model: nn.Layer) -> paddle.optimizer.Optimizer:
    """Build ``OPTIMIZER`` (a registered optimizer, ``Momentum`` by default) for ``model``'s
    trainable parameters; ``OPTIMIZER.learning_rate`` is ``lr_scheduler``, already built."""
    cfg = {key: value for key, value in to_plain(cfg).items() if key != "learning_rate"}
    cfg.setdefault("name", "Momentum")
    params = [p for p in model.parameters() if not p.stop_gradient]
    return build_from_config(cfg, OPTIMIZERS, learning_rate=lr_scheduler, parameters=params)
