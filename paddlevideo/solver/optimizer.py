"""Build the optimizer from ``OPTIMIZER``: Momentum with L2 decay (none on BN parameters)."""
from __future__ import annotations

from typing import Any, Dict

import paddle
import paddle.nn as nn
from paddle.optimizer.lr import LRScheduler

from ..utils.config import ConfigError, to_plain


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


def build_optimizer(cfg: Dict[str, Any], lr_scheduler: LRScheduler,
                    model: nn.Layer) -> paddle.optimizer.Optimizer:
    """Build ``OPTIMIZER`` (Momentum or SGD/Adam/AdamW) for ``model``'s trainable parameters."""
    cfg = to_plain(cfg)
    name = cfg.get("name", "Momentum")
    params = [p for p in model.parameters() if not p.stop_gradient]
    common = {"learning_rate": lr_scheduler, "parameters": params,
              "weight_decay": build_weight_decay(cfg.get("weight_decay")),
              "grad_clip": build_grad_clip(cfg.get("grad_clip"))}
    if name == "Momentum":
        return paddle.optimizer.Momentum(
            momentum=_as_float(cfg.get("momentum", 0.9), "OPTIMIZER.momentum"),
            use_nesterov=bool(cfg.get("use_nesterov", False)), **common)
    if name == "SGD":
        return paddle.optimizer.SGD(**common)
    if name == "Adam":
        return paddle.optimizer.Adam(**common)
    if name == "AdamW":
        return _adamw(cfg, common, params)
    raise ConfigError(f"OPTIMIZER.name: unknown optimizer {name!r}; "
                      f"known: Momentum, SGD, Adam, AdamW")


def _adamw(cfg: Dict[str, Any], common: Dict[str, Any], params) -> paddle.optimizer.AdamW:
    """AdamW decays weights itself (a coefficient, not a regularizer): BN parameters, which
    carry an ``L2Decay(0)`` regularizer, are left out by name."""
    decay_cfg = cfg.get("weight_decay")
    value = decay_cfg.get("value", 0.0) if isinstance(decay_cfg, dict) else (decay_cfg or 0.0)
    no_decay = {p.name for p in params
                if isinstance(p.regularizer, paddle.regularizer.L2Decay)
                and float(p.regularizer._coeff) == 0.0}
    common = dict(common, weight_decay=_as_float(value, "OPTIMIZER.weight_decay.value"))
    return paddle.optimizer.AdamW(apply_decay_param_fun=lambda name: name not in no_decay,
                                  **common)
