"""Registry of metrics a config can name."""
from ..utils.registry import Registry

METRIC = Registry("metric")
