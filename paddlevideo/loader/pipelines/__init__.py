"""Per-sample pipeline steps (registered in ``PIPELINES``) and their array functions."""
from .augmentations import (
                            CropToPathways,
                            Image2Array,
                            JitterScale,
                            MultiCrop,
                            Normalization,
                            NormalizeAndPack,
                            PackOutput,
                            RandomFlip,
                            ScaleAndCrop,
)
from .compose import Compose, fuse_steps
from .decode import DecodeSampler, VideoDecodeError, VideoSource
from .random_state import pipeline_rng, seed_pipeline_rng

__all__ = [
    "Compose", "fuse_steps", "DecodeSampler", "VideoDecodeError", "VideoSource", "JitterScale",
    "MultiCrop", "RandomFlip", "Image2Array", "Normalization", "PackOutput", "ScaleAndCrop",
    "NormalizeAndPack", "CropToPathways", "pipeline_rng", "seed_pipeline_rng",
]
