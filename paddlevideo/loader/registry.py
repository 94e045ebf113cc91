"""Registries of the data parts a config can name."""
from ..utils.registry import Registry

DATASETS = Registry("dataset")
PIPELINES = Registry("pipeline")
