"""Shared test fixtures: small encoded videos written on the fly.

``write_video(path, frames, fps, codec)`` encodes ``uint8 [T,H,W,3]`` RGB frames with PyAV and is
usable from any test; the fixtures below build a few standard clips once per session.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import Dict, Optional, Union

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = REPO_ROOT.parent / "shared" / "videos"


def load_script(relative: str) -> ModuleType:
    """A fresh module of a script of the repository (``"tools/predict.py"``), loaded from its
    file: the scripts are not a package, and each call gets its own module state."""
    spec = importlib.util.spec_from_file_location(
        relative[:-3].replace("/", "_") + "_script", REPO_ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_video(path: Union[str, os.PathLike], frames: np.ndarray, fps: float = 30,
                codec: str = "libx264", faststart: bool = False,
                options: Optional[Dict[str, str]] = None) -> Path:
    """Encode ``frames`` (uint8 ``[T,H,W,3]`` RGB, even H and W) into ``path``.

    ``codec`` is any PyAV encoder (``libx264``, ``mpeg4``, ``mjpeg``...); the container follows the
    file extension. ``faststart=True`` puts the MP4 index before the data, so a file cut short
    still reports the full frame count. Returns the path.
    """
    from fractions import Fraction

    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T,H,W,3], got {frames.dtype} {frames.shape}")
    path = Path(path)
    container_options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=container_options) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        stream.options = dict(options or {})
        for frame in frames:
            packets = stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24"))
            container.mux(packets)
        container.mux(stream.encode())
    return path


def train_pipeline(min_size: int, max_size: int, crop: int, sampling_rate: int = 2,
                   flip: bool = True) -> Dict:
    """A small ``PIPELINE.train`` config in slowfast.yaml's form: 8 frames, scale jitter
    ``[min_size, max_size]``, square ``crop``, optional flip, mean 0.45 / std 0.225, alpha 4."""
    return {
        "decode_sampler": {"name": "DecodeSampler", "num_frames": 8,
                           "sampling_rate": sampling_rate},
        "transform": [
            {"JitterScale": {"min_size": min_size, "max_size": max_size}},
            {"MultiCrop": {"target_size": crop}},
            *([{"RandomFlip": None}] if flip else []),
            {"Image2Array": {"transpose": False}},
            {"Normalization": {"mean": [0.45] * 3, "std": [0.225] * 3,
                               "tensor_shape": [1, 1, 1, 3]}},
            {"PackOutput": {"alpha": 4}},
        ],
    }


def numbered_frames(num_frames: int, height: int = 64, width: int = 96) -> np.ndarray:
    """Frames whose index survives lossy coding: frame t has grey level 4*t+8 (mod 256) in its
    whole area, so ``decoded.mean() ≈ 4*t+8``. uint8 ``[T,H,W,3]``."""
    levels = (np.arange(num_frames) * 4 + 8) % 256
    return np.broadcast_to(levels[:, None, None, None], (num_frames, height, width, 3)).astype(
        np.uint8)


def frame_numbers(frames: np.ndarray) -> np.ndarray:
    """Inverse of :func:`numbered_frames` for decoded frames ``[T,H,W,3]`` (valid for t < 62)."""
    return np.round((frames.reshape(len(frames), -1).mean(axis=1) - 8) / 4).astype(np.int64)


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> Path:
    """A session folder with standard test clips (see :func:`test_videos`)."""
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def test_videos(video_dir) -> Dict[str, Path]:
    """Small H.264 clips: ``numbered30`` (60 frames 30 fps, frame t grey 4t+8, 96x64),
    ``numbered60`` (60 frames at 60 fps), ``short5`` (5 frames), ``landscape`` (40 frames
    160x120 noise), ``portrait`` (40 frames 120x160 noise)."""
    rng = np.random.default_rng(0)
    videos = {
        "numbered30": write_video(video_dir / "numbered30.mp4", numbered_frames(60), fps=30),
        "numbered60": write_video(video_dir / "numbered60.mp4", numbered_frames(60), fps=60),
        "short5": write_video(video_dir / "short5.mp4", numbered_frames(5), fps=30),
        "landscape": write_video(video_dir / "landscape.mp4",
                                 rng.integers(0, 256, (40, 120, 160, 3), dtype=np.uint8)),
        "portrait": write_video(video_dir / "portrait.mp4",
                                rng.integers(0, 256, (40, 160, 120, 3), dtype=np.uint8)),
    }
    return videos


@pytest.fixture(scope="session")
def shared_videos() -> Path:
    """``../shared/videos`` next to the repository (read-only real Kinetics clips)."""
    if not SHARED_VIDEOS.is_dir():
        pytest.fail(f"shared test videos not found at {SHARED_VIDEOS}")
    return SHARED_VIDEOS
