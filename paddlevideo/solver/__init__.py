"""Optimizer and learning-rate schedules."""
from .lr import CustomWarmupCosineDecay, CustomWarmupPiecewiseDecay, build_lr
from .optimizer import build_optimizer

__all__ = ["CustomWarmupCosineDecay", "CustomWarmupPiecewiseDecay", "build_lr",
           "build_optimizer"]
