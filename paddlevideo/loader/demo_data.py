"""A synthetic action dataset whose classes can only be told apart by motion.

Every video shows one shape on a textured, noisy background. The class is how the shape moves
(left, right, up, down, clockwise, counter-clockwise, growing, shrinking); shape, colours, start
position, speed and background are random, so no single frame gives the class away. Videos are
real H.264 files, so the whole data path (decode, sample, augment) is exercised.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, List, Tuple

import cv2
import numpy as np

MOTION_CLASSES: Tuple[str, ...] = (
    "move_left", "move_right", "move_up", "move_down",
    "rotate_clockwise", "rotate_counterclockwise", "grow", "shrink",
)
_SHAPES = ("triangle", "bar", "arrow", "ell")
_SUBPIXEL_BITS = 4  # cv2 drawing with 1/16-pixel coordinates, so slow motion stays smooth


@dataclass
class MotionParams:
    """Where the shape is and how it moves in one video."""

    shape: str
    color: Tuple[int, int, int]
    center: np.ndarray  # (x, y) at frame 0
    velocity: np.ndarray  # pixels per frame
    angle: float  # degrees at frame 0
    angular_speed: float  # degrees per frame, clockwise positive (image coordinates)
    size: float  # radius-like size in pixels at frame 0
    growth: float  # size multiplier per frame


def _outline(shape: str) -> np.ndarray:
    """Unit outline ``[K,2]`` of a shape without rotational symmetry, so rotation shows."""
    outlines = {
        "triangle": [(1.0, 0.0), (-0.6, 0.55), (-0.6, -0.55)],
        "bar": [(1.0, 0.3), (-1.0, 0.3), (-1.0, -0.3), (1.0, -0.3)],
        "arrow": [(1.0, 0.0), (0.2, 0.7), (0.2, 0.25), (-1.0, 0.25), (-1.0, -0.25),
                  (0.2, -0.25), (0.2, -0.7)],
        "ell": [(-0.8, -1.0), (-0.3, -1.0), (-0.3, 0.5), (0.9, 0.5), (0.9, 1.0), (-0.8, 1.0)],
    }
    return np.array(outlines[shape], dtype=np.float64)


def sample_motion(label: int, rng: np.random.Generator, width: int, height: int,
                  num_frames: int) -> MotionParams:
    """Random appearance and a motion of class ``MOTION_CLASSES[label]``.

    The shape stays inside the central ``min(width, height)`` square for the whole video, so a
    square crop of the frame (what training and testing take) always sees it move.
    """
    name = MOTION_CLASSES[label]
    side = min(width, height)
    origin = np.array([(width - side) / 2, (height - side) / 2])
    size = float(rng.uniform(0.13, 0.2) * side)
    speed = float(rng.uniform(0.3, 0.5)) * side / num_frames
    direction = {"move_left": (-1, 0), "move_right": (1, 0), "move_up": (0, -1),
                 "move_down": (0, 1)}.get(name, (0, 0))
    velocity = np.array(direction, dtype=np.float64) * speed
    travel = velocity * (num_frames - 1)
    margin = size * 1.1
    low = origin + margin - np.minimum(travel, 0)
    high = origin + side - margin - np.maximum(travel, 0)
    center = rng.uniform(low, np.maximum(high, low + 1))
    angular = float(rng.uniform(3.0, 7.0)) * {"rotate_clockwise": 1,
                                              "rotate_counterclockwise": -1}.get(name, 0)
    total_growth = float(rng.uniform(1.8, 2.6)) ** {"grow": 1, "shrink": -1}.get(name, 0)
    if name == "grow":
        size /= 1.6  # start small enough to end inside the square
    elif name == "shrink":
        size *= 1.3
    return MotionParams(shape=str(rng.choice(_SHAPES)), color=_bright_color(rng),
                        center=center, velocity=velocity, angle=float(rng.uniform(0, 360)),
                        angular_speed=angular, size=size,
                        growth=total_growth ** (1.0 / max(num_frames - 1, 1)))


def _bright_color(rng: np.random.Generator) -> Tuple[int, int, int]:
    """A saturated, bright colour of random hue: it stands out of the (darker) background."""
    hsv = np.array([[[rng.integers(0, 180), rng.integers(160, 256), rng.integers(220, 256)]]],
                   dtype=np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A smooth random texture with a random tint, float32 ``[H,W,3]``."""
    coarse = rng.uniform(0, 255, (max(height // 12, 2), max(width // 12, 2), 3))
    texture = cv2.resize(coarse.astype(np.float32), (width, height),
                         interpolation=cv2.INTER_CUBIC)
    tint = rng.uniform(0.25, 0.6, 3).astype(np.float32)  # darker than the shape
    return np.clip(texture * tint, 0, 255)


def render_video(params: MotionParams, rng: np.random.Generator, width: int, height: int,
                 num_frames: int) -> np.ndarray:
    """Frames uint8 ``[num_frames, height, width, 3]`` RGB of one moving shape."""
    background = _background(rng, width, height)
    outline = _outline(params.shape)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        theta = np.deg2rad(params.angle + params.angular_speed * t)
        rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        size = params.size * params.growth ** t
        points = outline @ rotation.T * size + params.center + params.velocity * t
        noise = rng.normal(0.0, 6.0, (height, width, 1)).astype(np.float32)
        frame = np.clip(background + noise, 0, 255).astype(np.uint8)
        fixed = np.round(points * (1 << _SUBPIXEL_BITS)).astype(np.int32)
        cv2.fillPoly(frame, [fixed], params.color, lineType=cv2.LINE_AA, shift=_SUBPIXEL_BITS)
        frames[t] = frame
    return frames


def encode_h264(path: str, frames: np.ndarray, fps: float) -> None:
    """Write uint8 ``[T,H,W,3]`` RGB frames as H.264 yuv420p MP4 (single-threaded encoder, so
    the bytes depend only on the frames)."""
    import av

    with av.open(path, "w", options={"movflags": "+faststart"}) as container:  # index first
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"threads": "1", "crf": "20", "preset": "veryfast"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _write_one(job: Tuple[str, int, int, int, int, int, int, int, float]) -> None:
    path, seed, split_id, label, index, width, height, num_frames, fps = job
    rng = np.random.default_rng([seed, split_id, label, index])
    params = sample_motion(label, rng, width, height, num_frames)
    encode_h264(path, render_video(params, rng, width, height, num_frames), fps)


def make_demo_dataset(out_dir: str, classes: int = 8, train_per_class: int = 64,
                      val_per_class: int = 8, seed: int = 0, width: int = 96, height: int = 96,
                      frames: int = 32, fps: float = 30, workers: int = 2) -> Dict[str, str]:
    """Write ``videos/*.mp4``, ``train.list``, ``val.list`` (absolute paths, ``path label``) and
    ``label_list.txt`` (``id name``) under ``out_dir``; returns those paths by name.

    Same arguments → same decoded frames (``workers`` only changes the speed). Each video draws
    from its own stream seeded by (seed, split, label, index), so changing the size of one split
    leaves the other split's videos unchanged.
    """
    if not 1 <= classes <= len(MOTION_CLASSES):
        raise ValueError(f"classes must be in [1, {len(MOTION_CLASSES)}], got {classes}")
    if width % 2 or height % 2:
        raise ValueError(f"width and height must be even for yuv420p, got {width}x{height}")
    out_dir = os.path.abspath(out_dir)
    video_dir = os.path.join(out_dir, "videos")
    os.makedirs(video_dir, exist_ok=True)
    lists: Dict[str, List[str]] = {"train": [], "val": []}
    jobs = []
    for split_id, (split, per_class) in enumerate((("train", train_per_class),
                                                   ("val", val_per_class))):
        for label in range(classes):
            for i in range(per_class):
                path = os.path.join(video_dir, f"{split}_{MOTION_CLASSES[label]}_{i:03d}.mp4")
                jobs.append((path, seed, split_id, label, i, width, height, frames, fps))
                lists[split].append(f"{path} {label}")
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_write_one, jobs, chunksize=4))
    else:
        for job in jobs:
            _write_one(job)
    paths = {"out_dir": out_dir, "videos": video_dir,
             "train_list": os.path.join(out_dir, "train.list"),
             "val_list": os.path.join(out_dir, "val.list"),
             "label_list": os.path.join(out_dir, "label_list.txt")}
    for split in ("train", "val"):
        with open(paths[f"{split}_list"], "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lists[split]))
    with open(paths["label_list"], "w", encoding="utf-8") as f:
        f.write("".join(f"{i} {MOTION_CLASSES[i]}\n" for i in range(classes)))
    return paths
