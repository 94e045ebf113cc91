"""Learning-rate scaling with the global batch, said out loud at the start of a run.

``OPTIMIZER.learning_rate.scale_with`` chooses the rule:

- ``none`` (the default, PaddleVideo's behaviour): the rates of the config are used as written,
  whatever the number of processes;
- ``linear``: the base and warm-up rates are multiplied by ``global batch / reference_batch_size``
  (the linear scaling rule of Goyal et al., 2017, which PySlowFast documents), where the global
  batch is the per-process batch × processes × gradient-accumulation steps.

``reference_batch_size`` (default 64: the Kinetics configs' 8 clips per GPU × 8 GPUs) is the
global batch the written rates were tuned for. The two keys are schema children of the LR
mapping, not arguments of any schedule: :func:`apply_lr_scaling` rewrites the rates once, before
the schedule is built (and before multigrid derives its own rates from them), and
:func:`strip_scaling_keys` removes the two keys wherever a schedule is built.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

from ..utils.config import ConfigError, to_plain

SCALE_KEYS = ("scale_with", "reference_batch_size")
SCALED_RATES = ("cosine_base_lr", "step_base_lr", "warmup_start_lr")
DEFAULT_REFERENCE_BATCH = 64
_KEY = "OPTIMIZER.learning_rate"


def strip_scaling_keys(lr_cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """``lr_cfg`` without ``scale_with`` and ``reference_batch_size`` (a plain dict copy).

    A ``scale_with: linear`` still present here was never applied: that is an error rather
    than a run with rates other than the ones the user asked for.
    """
    kwargs = to_plain(lr_cfg)
    if kwargs.get("scale_with", "none") != "none":
        raise ConfigError(f"{_KEY}.scale_with={kwargs['scale_with']!r} reached the schedule "
                          f"builder unapplied: call apply_lr_scaling(cfg, world_size) first",
                          key=f"{_KEY}.scale_with")
    return {key: value for key, value in kwargs.items() if key not in SCALE_KEYS}


def _format_rate(value: float) -> str:
    return f"{value:.6g}"


def scale_learning_rate(lr_cfg: Mapping[str, Any],
                        global_batch: int) -> Tuple[Dict[str, Any], str]:
    """``(lr_cfg with the rates scaled and the two scaling keys removed, message)``.

    With ``scale_with: linear`` every rate of :data:`SCALED_RATES` present in ``lr_cfg`` is
    multiplied by ``global_batch / reference_batch_size``; with ``none`` the rates are kept.
    The message states the rule, the batches, the factor and every rate before and after.
    """
    cfg = to_plain(lr_cfg)
    rule = cfg.pop("scale_with", None) or "none"
    reference = cfg.pop("reference_batch_size", None) or DEFAULT_REFERENCE_BATCH
    if rule not in ("none", "linear"):
        raise ConfigError(f"{_KEY}.scale_with must be none or linear, got {rule!r}",
                          key=f"{_KEY}.scale_with", expected="none or linear")
    if int(global_batch) < 1:
        raise ValueError(f"global batch must be >= 1, got {global_batch}")
    rates = [key for key in SCALED_RATES if cfg.get(key) is not None]
    if rule == "none":
        listed = ", ".join(f"{key} {_format_rate(float(cfg[key]))}" for key in rates)
        return cfg, (f"LR not scaled (scale_with: none): global batch {global_batch}, "
                     f"reference {reference}; {listed or 'no base rate'}")
    factor = int(global_batch) / int(reference)
    changes = []
    for key in rates:
        before = float(cfg[key])
        cfg[key] = before * factor
        changes.append(f"{key} {_format_rate(before)} → {_format_rate(cfg[key])}")
    return cfg, (f"LR scaled linearly: global batch {global_batch} / reference {reference} → "
                 f"×{factor:g}: {', '.join(changes) or 'no base rate to scale'}")


def global_batch_size(cfg: Mapping[str, Any], world_size: int) -> int:
    """Per-process batch × processes × accumulation steps: the batch one update averages.

    With ``GRADIENT_ACCUMULATION.global_batch_size`` set that is the configured value (the
    accumulation steps are chosen to reach it); otherwise ``DATASET.batch_size × world_size``.
    """
    accumulation = cfg.get("GRADIENT_ACCUMULATION") or {}
    configured: Optional[int] = accumulation.get("global_batch_size")
    if configured:
        return int(configured)
    return int(cfg["DATASET"]["batch_size"]) * int(world_size)


def apply_lr_scaling(cfg: Dict[str, Any], world_size: int) -> str:
    """Rewrite ``cfg.OPTIMIZER.learning_rate`` in place by its scaling rule; return the message
    to log at the start of the run. Call it once per run, before the LR schedule (or the
    multigrid plan, which derives its rates from these) is built."""
    optimizer = cfg.get("OPTIMIZER") or {}
    if not isinstance(optimizer.get("learning_rate"), Mapping):
        return "LR not scaled: OPTIMIZER.learning_rate is not a schedule mapping"
    scaled, message = scale_learning_rate(optimizer["learning_rate"],
                                          global_batch_size(cfg, world_size))
    optimizer["learning_rate"] = scaled
    return message
