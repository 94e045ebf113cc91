"""Models: SlowFast backbone, head, recognizer and losses, built by name from a config."""
from . import backbones, framework, heads, losses  # noqa: F401  (registration)
from .builder import build_backbone, build_head, build_loss, build_model, build_recognizer
from .registry import BACKBONES, HEADS, LOSSES, RECOGNIZERS

__all__ = ["BACKBONES", "HEADS", "LOSSES", "RECOGNIZERS", "build_backbone", "build_head",
           "build_loss", "build_model", "build_recognizer"]
