"""Pure array functions behind the pipeline steps.

Frames are ``uint8`` numpy arrays ``[T,H,W,C]`` (RGB) unless stated otherwise. Every random choice
is an argument here; the step classes draw it and call these functions, so each function can be
tested with exact numbers.
"""
from __future__ import annotations

import functools
import math
from typing import List, Sequence, Tuple

import cv2
import numpy as np

Box = Tuple[int, int, int, int]  # (top, left, height, width)


def clip_start(num_video_frames: int, clip_size: float, start_fraction: float) -> float:
    """Start frame of a clip: ``start_fraction * max(num_video_frames - clip_size, 0)``.

    ``start_fraction`` is uniform in [0, 1] for training and ``i / n`` for temporal view i of n.
    """
    return max(num_video_frames - clip_size, 0.0) * start_fraction


def sample_clip_indices(num_video_frames: int, num_frames: int, sampling_rate: int,
                        video_fps: float, target_fps: float, start_fraction: float,
                        fit_short: bool = False) -> np.ndarray:
    """Indices ``int64 [num_frames]`` of the frames one clip holds.

    The clip spans ``num_frames * sampling_rate * video_fps / target_fps`` source frames, so it
    covers the same time at any frame rate. Indices past the end repeat the last frame; with
    ``fit_short`` a video shorter than that span is sampled over its whole length instead (the
    frames spread evenly, none wasted on padding: 32 frames of a 30-frame video sampled for a
    64-frame span are each frame ``0..29`` once or twice, rather than every second frame up to
    28 and then the last frame 17 times).
    """
    if num_video_frames <= 0:
        raise ValueError("a video with no frames has no clip")
    fps_ratio = video_fps / target_fps if video_fps > 0 and target_fps > 0 else 1.0
    clip_size = num_frames * sampling_rate * fps_ratio
    if fit_short and clip_size > num_video_frames:
        return np.linspace(0, num_video_frames - 1, num_frames).round().astype(np.int64)
    start = clip_start(num_video_frames, clip_size, start_fraction)
    end = start + clip_size - 1
    indices = np.linspace(start, end, num_frames).astype(np.int64)
    return np.clip(indices, 0, num_video_frames - 1)


def short_side_size(height: int, width: int, short_side: int) -> Tuple[int, int]:
    """``(new_height, new_width)`` with the short side at ``short_side``, aspect kept (floored)."""
    if width <= height:
        return int(math.floor(height / width * short_side)), short_side
    return short_side, int(math.floor(width / height * short_side))


def resize_clip(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of every frame to ``[T,height,width,C]`` (no copy when already that size)."""
    if frames.shape[1] == height and frames.shape[2] == width:
        return frames
    out = np.empty((frames.shape[0], height, width, frames.shape[3]), dtype=frames.dtype)
    for i, frame in enumerate(frames):
        cv2.resize(frame, (width, height), dst=out[i], interpolation=cv2.INTER_LINEAR)
    return out


def random_crop_box(height: int, width: int, size: int, offset_y: float, offset_x: float) -> Box:
    """Square crop box; ``offset_y/x`` in [0, 1] pick the position (integer offsets floor-ed)."""
    _check_crop_fits(height, width, size)
    top = min(int(offset_y * (height - size + 1)), height - size)
    left = min(int(offset_x * (width - size + 1)), width - size)
    return top, left, size, size


def test_crop_boxes(height: int, width: int, size: int, num_crops: int = 3) -> List[Box]:
    """Square crops spread along the long side, centred on the short side.

    For 3 crops the long-side offsets are ``0, ceil((L - size) / 2), L - size``; in general crop i
    of n sits at ``ceil((L - size) * i / (n - 1))`` (one crop: the centre).
    """
    _check_crop_fits(height, width, size)
    boxes = []
    for index in range(num_crops):
        if num_crops == 1:
            along = int(math.ceil((max(height, width) - size) / 2))
        else:
            along = int(math.ceil((max(height, width) - size) * index / (num_crops - 1)))
        if height > width:
            boxes.append((along, int(math.ceil((width - size) / 2)), size, size))
        else:
            boxes.append((int(math.ceil((height - size) / 2)), along, size, size))
    return boxes


def crop_clip(frames: np.ndarray, box: Box) -> np.ndarray:
    """``frames[:, top:top+h, left:left+w]`` (a view)."""
    top, left, height, width = box
    return frames[:, top:top + height, left:left + width]


def _crop_source(frames: np.ndarray, scaled_hw: Tuple[int, int],
                 box: Box) -> Tuple[np.ndarray, Tuple[int, int]]:
    """The source region that becomes ``box`` of the frames resized to ``scaled_hw``, and the
    ``(height, width)`` it must be resampled to (the region itself when no resize is needed)."""
    src_h, src_w = frames.shape[1:3]
    top, left, height, width = box
    if (src_h, src_w) == tuple(scaled_hw):
        return crop_clip(frames, box), (height, width)
    scale_y, scale_x = src_h / scaled_hw[0], src_w / scaled_hw[1]
    y0 = min(int(round(top * scale_y)), src_h - 1)
    x0 = min(int(round(left * scale_x)), src_w - 1)
    y1 = max(min(int(round((top + height) * scale_y)), src_h), y0 + 1)
    x1 = max(min(int(round((left + width) * scale_x)), src_w), x0 + 1)
    return frames[:, y0:y1, x0:x1], (height, width)


def resized_crop(frames: np.ndarray, scaled_hw: Tuple[int, int], box: Box) -> np.ndarray:
    """Same pixels as ``crop_clip(resize_clip(frames, *scaled_hw), box)`` up to interpolation.

    The box is given in the resized frame; it is mapped back to source coordinates and only that
    region is resampled, which costs a fraction of resizing whole frames.
    """
    region, size = _crop_source(frames, scaled_hw, box)
    return resize_clip(region, *size)


def horizontal_flip(frames: np.ndarray) -> np.ndarray:
    """Mirror left↔right: ``[T,H,W,C]`` → a new contiguous ``[T,H,W,C]`` array.

    A contiguous copy (rather than a ``[:, :, ::-1]`` view) keeps the later conversion fast.
    """
    if frames.shape[3] > 4:  # more channels than OpenCV flips in one call
        return np.ascontiguousarray(frames[:, :, ::-1])
    out = np.empty(frames.shape, dtype=frames.dtype)
    for i, frame in enumerate(frames):
        cv2.flip(frame, 1, dst=out[i])
    return out


def normalize(frames: np.ndarray, mean: Sequence[float], std: Sequence[float],
              tensor_shape: Sequence[int]) -> np.ndarray:
    """``(frames / 255 - mean) / std`` in float32; ``mean``/``std`` are reshaped to
    ``tensor_shape`` (``[1,1,1,3]`` for ``[T,H,W,C]``, ``[3,1,1]`` for channel-first)."""
    mean_arr = np.asarray(mean, dtype=np.float32).reshape(tensor_shape)
    std_arr = np.asarray(std, dtype=np.float32).reshape(tensor_shape)
    scale = (np.float32(1.0 / 255.0) / std_arr).astype(np.float32)
    out = np.multiply(frames, scale, dtype=np.float32)
    out -= (mean_arr / std_arr).astype(np.float32)
    return out


def slow_pathway_indices(num_frames: int, alpha: int) -> np.ndarray:
    """Indices ``int64 [num_frames // alpha]`` of the fast clip's frames kept for the slow one."""
    return np.linspace(0, num_frames - 1, num_frames // alpha).astype(np.int64)


def slow_pathway(fast: np.ndarray, alpha: int) -> np.ndarray:
    """The slow pathway ``[C,T//alpha,H,W]`` of a fast clip ``[C,T,H,W]`` as a contiguous copy."""
    return np.take(fast, slow_pathway_indices(fast.shape[1], alpha), axis=1)


def normalize_to_channels_first(frames: np.ndarray, mean: Sequence[float],
                                std: Sequence[float]) -> np.ndarray:
    """uint8 ``[T,H,W,C]`` → normalised float32 ``[C,T,H,W]`` in one pass.

    Equal to ``normalize(frames, ...).transpose(3, 0, 1, 2)``: a uint8 value has only 256
    outcomes, so each channel goes through a 256-entry float table instead of float arithmetic.
    """
    num, height, width, channels = frames.shape
    rows = np.ascontiguousarray(frames).reshape(num * height, width, channels)
    planes = np.empty((channels, num * height, width), dtype=np.uint8)
    _split_channels(rows, planes)
    return _lookup_planes(planes, mean, std).reshape(channels, num, height, width)


def crop_flip_normalize(frames: np.ndarray, scaled_hw: Tuple[int, int], box: Box, flip: bool,
                        mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 ``[T,H,W,C]`` → float32 ``[C,T,h,w]``: ``box`` of the frames resized to
    ``scaled_hw``, mirrored when ``flip``, normalised.

    Equal to ``normalize_to_channels_first(horizontal_flip?(resized_crop(frames, scaled_hw,
    box)), mean, std)``, but each frame is resampled, mirrored and split into channel planes
    while it is still in cache, so no full-size interleaved copy of the clip is made.
    """
    region, (height, width) = _crop_source(frames, scaled_hw, box)
    num, channels = frames.shape[0], frames.shape[3]
    resize = region.shape[1:3] != (height, width)
    planes = np.empty((channels, num, height, width), dtype=np.uint8)
    frame = np.empty((height, width, channels), dtype=np.uint8)
    for t in range(num):
        source = region[t]
        if resize:
            cv2.resize(source, (width, height), dst=frame, interpolation=cv2.INTER_LINEAR)
            source = frame
        if flip:
            cv2.flip(source, 1, dst=frame)
            source = frame
        _split_channels(source, planes[:, t])
    return _lookup_planes(planes.reshape(channels, num * height, width), mean, std).reshape(
        channels, num, height, width)


def _split_channels(image: np.ndarray, planes: np.ndarray) -> None:
    """Write channel ``c`` of ``[H,W,C]`` uint8 ``image`` into ``planes[c]`` (``[C,H,W]``)."""
    if image.shape[2] == 1:
        planes[0] = image[..., 0]
    elif image.shape[2] <= 4:  # OpenCV's split takes up to 4 channels per call in place
        cv2.split(image, list(planes))
    else:
        planes[...] = np.moveaxis(image, 2, 0)


def _lookup_planes(planes: np.ndarray, mean: Sequence[float],
                   std: Sequence[float]) -> np.ndarray:
    """uint8 ``[C,R,W]`` channel planes → float32 ``[C,R,W]`` through each channel's table."""
    tables = _normalization_tables(tuple(np.ravel(mean).tolist()), tuple(np.ravel(std).tolist()),
                                   planes.shape[0])
    out = np.empty(planes.shape, dtype=np.float32)
    for c, table in enumerate(tables):
        cv2.LUT(planes[c], table, dst=out[c])
    return out


@functools.lru_cache(maxsize=16)
def _normalization_tables(mean: Tuple[float, ...], std: Tuple[float, ...],
                          channels: int) -> Tuple[np.ndarray, ...]:
    """Per channel, the float32 ``[256, 1]`` table of ``(v / 255 - mean) / std``."""
    values = np.arange(256, dtype=np.float32)[:, None]
    mean_arr = np.broadcast_to(np.asarray(mean, dtype=np.float32), (channels,))
    std_arr = np.broadcast_to(np.asarray(std, dtype=np.float32), (channels,))
    scale = (np.float32(1.0 / 255.0) / std_arr).astype(np.float32)
    table = (values * scale - (mean_arr / std_arr).astype(np.float32)).astype(np.float32)
    tables = tuple(np.ascontiguousarray(table[:, c]).reshape(256, 1) for c in range(channels))
    for t in tables:
        t.setflags(write=False)
    return tables


def _check_crop_fits(height: int, width: int, size: int) -> None:
    if size > height or size > width:
        raise ValueError(f"crop size {size} does not fit in a {height}x{width} frame")
