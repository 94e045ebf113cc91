"""Optimizers and learning-rate schedules, registered by name."""
from .lr import CustomWarmupCosineDecay, CustomWarmupPiecewiseDecay, build_lr
from .lr_scaling import apply_lr_scaling, scale_learning_rate
from .optimizer import build_optimizer
from .registry import LRS, OPTIMIZERS

__all__ = ["CustomWarmupCosineDecay", "CustomWarmupPiecewiseDecay", "LRS", "OPTIMIZERS",
           "apply_lr_scaling", "build_lr", "build_optimizer", "scale_learning_rate"]
