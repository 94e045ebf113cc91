"""Registries of the optimizers and LR schedules a config can name."""
from ..utils.registry import Registry

LRS = Registry("lr")
OPTIMIZERS = Registry("optimizer")
