"""Training and testing entry points (the top layer: only the CLI entry points import it)."""
from .test import test_model
from .train import train_model, train_model_multigrid

__all__ = ["test_model", "train_model", "train_model_multigrid"]
