"""Training and testing entry points (the top layer: nothing below imports this package)."""
from .test import test_model
from .train import train_model

__all__ = ["test_model", "train_model"]
