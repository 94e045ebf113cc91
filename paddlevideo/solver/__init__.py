"""Optimizers and learning-rate schedules, registered by name."""
from .lr import CustomWarmupCosineDecay, CustomWarmupPiecewiseDecay, build_lr
from .optimizer import build_optimizer
from .registry import LRS, OPTIMIZERS

__all__ = ["CustomWarmupCosineDecay", "CustomWarmupPiecewiseDecay", "LRS", "OPTIMIZERS",
           "build_lr", "build_optimizer"]
