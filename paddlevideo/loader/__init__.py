"""Datasets, per-sample pipelines and data loaders."""
from .registry import DATASETS, PIPELINES

__all__ = ["DATASETS", "PIPELINES"]
