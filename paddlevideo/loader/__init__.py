"""Datasets, per-sample pipelines and data loaders."""
from . import dataset, pipelines  # registers the datasets and pipeline steps
from .builder import VideoDataLoader, build_dataloader, build_dataset, build_pipeline
from .dataset import BadVideoError, SFVideoDataset, check_bad_video_fraction
from .pipelines import VideoDecodeError, seed_pipeline_rng
from .registry import DATASETS, PIPELINES

__all__ = ["DATASETS", "PIPELINES", "build_pipeline", "build_dataset", "build_dataloader",
           "VideoDataLoader", "SFVideoDataset", "BadVideoError", "check_bad_video_fraction",
           "VideoDecodeError", "seed_pipeline_rng"]
