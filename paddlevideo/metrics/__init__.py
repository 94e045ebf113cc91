"""Metrics, built by name from ``METRIC``."""
from .multi_crop_metric import MultiCropMetric
from .registry import METRIC

__all__ = ["METRIC", "MultiCropMetric", "build_metric"]


def build_metric(cfg, **extra):
    """Build ``cfg`` (``{name, ...}``) with extra arguments such as ``data_size``."""
    from ..utils.config import to_plain
    from ..utils.registry import build_from_config

    return build_from_config(to_plain(cfg), METRIC, **extra)
