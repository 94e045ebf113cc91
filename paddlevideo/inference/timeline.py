"""An action timeline: clip windows slid over a video, their predictions, and merged segments.

A window is the clip the test pipeline would take from a video exactly as long as the window:
``num_frames`` frames spread (``linspace``, floored) over ``num_frames * sampling_rate * fps /
target_fps`` source frames. Window ``k`` starts at frame ``round(k * stride * fps)``.

Segments join consecutive windows of the same top-1 class. One window whose top-1 differs from
the windows on both sides of it, which agree with each other, is a flicker: it joins their
segment (scored by its probability of that segment's class) instead of splitting it. Each
window owns the time from half-way to the previous window's centre to half-way to the next
one's (the first from 0, the last to the end of the video); a segment spans its windows' times.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class WindowPlan:
    """Where the windows of a video at ``fps`` lie, in source frame numbers.

    ``span``: source frames a window covers (a float, as in testing); ``offsets``: int64
    ``[num_frames]`` frame offsets of the clip from the window start; ``stride_frames``: the
    distance between window starts (a float, rounded per window).
    """

    num_frames: int
    sampling_rate: int
    target_fps: float
    fps: float
    stride_seconds: float

    @property
    def span(self) -> float:
        ratio = self.fps / self.target_fps if self.fps > 0 and self.target_fps > 0 else 1.0
        return self.num_frames * self.sampling_rate * ratio

    @property
    def offsets(self) -> np.ndarray:
        return np.linspace(0, self.span - 1, self.num_frames).astype(np.int64)

    @property
    def stride_frames(self) -> float:
        return max(self.stride_seconds * self.fps, 1.0)

    @property
    def window_seconds(self) -> float:
        return self.span / self.fps

    def start(self, index: int) -> int:
        """First source frame of window ``index``."""
        return int(round(index * self.stride_frames))

    def last_frame(self, index: int) -> int:
        """The last source frame window ``index`` needs (its clip's last frame)."""
        return self.start(index) + int(self.offsets[-1])

    def frame_indices(self, index: int) -> np.ndarray:
        """int64 ``[num_frames]`` source frames of window ``index``."""
        return self.start(index) + self.offsets

    def padded_indices(self, available: int) -> np.ndarray:
        """The one window of a video of ``available`` frames shorter than a window: the test
        clip, repeating the last frame."""
        return np.clip(self.offsets, 0, max(available - 1, 0))

    def bounds(self, index: int) -> tuple:
        """``(start, end)`` seconds of window ``index``."""
        first = self.start(index)
        return first / self.fps, (first + self.span) / self.fps

    def centre(self, index: int) -> float:
        return (self.start(index) + self.span / 2) / self.fps


def default_stride(window_seconds: float) -> float:
    """Half a window, as the issue's users overlap windows."""
    return window_seconds / 2


@dataclass
class WindowResult:
    """One predicted window: times in seconds, ``top_k`` as ``(class_id, name, score)``."""

    index: int
    start: float
    end: float
    centre: float
    top_k: List[tuple]
    probs: Optional[np.ndarray] = None  # [K], kept only while a segment may need it

    @property
    def class_id(self) -> int:
        return int(self.top_k[0][0])

    @property
    def score(self) -> float:
        return float(self.top_k[0][2])

    def record(self) -> Dict[str, Any]:
        class_id, name, score = self.top_k[0]
        return {"start": round(self.start, 4), "end": round(self.end, 4),
                "class_id": int(class_id), "class_name": name, "score": float(score),
                "top_k": [{"class_id": int(c), "class_name": n, "score": float(s)}
                          for c, n, s in self.top_k]}


@dataclass
class Segment:
    """Consecutive windows of one class: ``start``/``end`` seconds, mean top-1 ``score``."""

    class_id: int
    class_name: str
    start: float
    end: float = 0.0
    score_sum: float = 0.0
    windows: int = 0
    last_centre: float = 0.0

    @property
    def score(self) -> float:
        return self.score_sum / max(self.windows, 1)

    def add(self, window: WindowResult, score: float) -> None:
        self.score_sum += score
        self.windows += 1
        self.last_centre = window.centre
        self.end = window.end

    def record(self) -> Dict[str, Any]:
        return {"start": round(self.start, 4), "end": round(self.end, 4),
                "class_id": self.class_id, "class_name": self.class_name,
                "score": round(self.score, 6), "windows": self.windows}


@dataclass
class SegmentBuilder:
    """Merge windows into segments as they arrive (in time order), with the flicker rule of the
    module docstring; at most one window is held back undecided."""

    class_names: Sequence[str]
    closed: List[Segment] = field(default_factory=list)
    current: Optional[Segment] = None
    pending: Optional[WindowResult] = None

    def _open(self, window: WindowResult, start: float) -> None:
        self.current = Segment(window.class_id, self.class_names[window.class_id], start)
        self.current.add(window, window.score)

    def _close_at(self, time: float) -> None:
        self.current.end = time
        self.closed.append(self.current)

    def push(self, window: WindowResult) -> None:
        if self.current is None:
            self._open(window, 0.0)
        elif self.pending is None:
            if window.class_id == self.current.class_id:
                self.current.add(window, window.score)
            else:
                self.pending = window
        elif window.class_id == self.current.class_id:  # a one-window flicker: absorbed
            flicker, self.pending = self.pending, None
            self.current.add(flicker, float(flicker.probs[self.current.class_id]))
            self.current.add(window, window.score)
        else:
            flicker, self.pending = self.pending, None
            boundary = (self.current.last_centre + flicker.centre) / 2
            self._close_at(boundary)
            self._open(flicker, boundary)
            self.push(window)

    def segments(self, end: Optional[float] = None) -> List[Segment]:
        """Closed segments, the open one and the undecided window (as its own segment), the last
        ending at ``end`` when given (the video's end)."""
        out = list(self.closed)
        if self.current is not None:
            current = Segment(**vars(self.current))
            out.append(current)
            if self.pending is not None:
                boundary = (current.last_centre + self.pending.centre) / 2
                current.end = boundary
                tail = Segment(self.pending.class_id, self.class_names[self.pending.class_id],
                               boundary)
                tail.add(self.pending, self.pending.score)
                out.append(tail)
        if out and end is not None:
            out[-1].end = max(out[-1].end, end)
        return out


SEGMENT_COLUMNS = ("file", "start", "end", "class_id", "class_name", "score")


def segments_csv(rows: Sequence[Dict[str, Any]]) -> str:
    """CSV text of ``{"file", "segments": [...]}`` results, one segment a line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SEGMENT_COLUMNS)
    for result in rows:
        for seg in result.get("segments", []):
            writer.writerow([result["file"], f"{seg['start']:.3f}", f"{seg['end']:.3f}",
                             seg["class_id"], seg["class_name"], f"{seg['score']:.6f}"])
    return buffer.getvalue()


def segments_csv_path(json_path: str) -> str:
    """``results.json`` → ``results_segments.csv`` beside it."""
    stem = json_path[:-5] if json_path.lower().endswith(".json") else json_path
    return stem + "_segments.csv"
