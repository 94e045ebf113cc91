"""The annotated video (top-1 label and a timeline strip on every frame) and the timeline PNG.

:class:`AnnotatedVideoWriter` runs in its own thread: it is handed frames as they are decoded
and window results as the model decides them, labels each frame with the window whose centre is
nearest (holding back only the frames no window near them has been decided for yet), draws and
encodes them with H.264 at the input's size and frame rate, one output frame per input frame.
"""
from __future__ import annotations

import colorsys
import queue
import threading
from fractions import Fraction
from typing import Any, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .timeline import Segment, WindowResult

STRIP_FRACTION = 0.03  # strip height as a share of the frame height (at least 6 px)


def class_colour(class_id: int) -> Tuple[int, int, int]:
    """A stable, distinct RGB colour per class (golden-ratio hues)."""
    hue = (class_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_strip(image: np.ndarray, segments: Sequence[Segment], duration: float,
               top: int, bottom: int, cursor: Optional[float] = None) -> None:
    """Paint ``segments`` (coloured by class) over ``[0, duration]`` seconds across the width
    of ``image`` rows ``top:bottom``, with a white cursor at ``cursor`` seconds (in place)."""
    width = image.shape[1]
    image[top:bottom] = (40, 40, 40)
    scale = width / max(duration, 1e-6)
    for seg in segments:
        left, right = int(seg.start * scale), max(int(seg.end * scale), int(seg.start * scale) + 1)
        image[top:bottom, max(left, 0):min(right, width)] = class_colour(seg.class_id)
    if cursor is not None:
        x = min(int(cursor * scale), width - 1)
        image[top:bottom, max(x - 1, 0):x + 1] = (255, 255, 255)


def draw_label(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` (uint8 ``[H,W,3]``) with ``text`` on a dark box at the top left (a copy)."""
    out = np.array(frame, copy=True)
    scale = max(out.shape[0] / 480, 0.35)
    thickness = max(int(round(scale * 2)), 1)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(int(4 * scale), 2)
    cv2.rectangle(out, (0, 0), (tw + 2 * pad, th + base + 2 * pad), (0, 0, 0), -1)
    cv2.putText(out, text, (pad, th + pad), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                thickness, cv2.LINE_AA)
    return out


def annotate_frame(frame: np.ndarray, window: Optional[WindowResult],
                   segments: Sequence[Segment], duration: float, time: float) -> np.ndarray:
    """One output frame: the label of ``window`` and the strip with a cursor at ``time``."""
    text = f"{window.top_k[0][1]} {window.score:.2f}" if window is not None else "..."
    out = draw_label(frame, text)
    strip = max(int(out.shape[0] * STRIP_FRACTION), 6)
    draw_strip(out, segments, duration, out.shape[0] - strip, out.shape[0], cursor=time)
    return out


class AnnotatedVideoWriter:
    """Write the annotated copy of a video to ``path`` from a background thread.

    ``add_frames([(index, frame or None), ...])`` and ``add_windows(windows, segments)`` queue
    work; ``close(segments)`` labels and writes the frames still held and finishes the file.
    A ``None`` frame (damaged input) repeats the previous output frame, so the output keeps
    every frame slot. ``duration``: seconds the strip spans (0: grow with the video).
    ``preset``: x264's; ``ultrafast`` costs a third of ``veryfast``'s CPU time, which the model
    beside it needs more than the file needs the smaller size.
    """

    def __init__(self, path: str, width: int, height: int, fps: float, rate: Any = None,
                 duration: float = 0.0, preset: str = "ultrafast") -> None:
        import av

        self.path, self.fps, self.duration = path, float(fps), float(duration)
        # index (moov) first, so a browser or a server without range requests can stream it
        self._container = av.open(path, "w", options={"movflags": "+faststart"})
        rate = Fraction(rate) if rate else Fraction(self.fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = width, height
        even = width % 2 == 0 and height % 2 == 0
        self._stream.pix_fmt = "yuv420p" if even else "yuv444p"
        self._stream.options = {"preset": preset, "crf": "23"}
        self._queue: queue.Queue = queue.Queue(maxsize=64)
        self._held: List[Tuple[int, Optional[np.ndarray]]] = []
        self._windows: List[WindowResult] = []  # the two latest decided windows
        self._segments: Sequence[Segment] = []
        self._last: Optional[np.ndarray] = None
        self.frames_written = 0
        self.error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="annotated-video", daemon=True)
        self._thread.start()

    def add_frames(self, frames: Sequence[Tuple[int, Optional[np.ndarray]]]) -> None:
        self._queue.put(("frames", list(frames)))

    def add_windows(self, windows: Sequence[WindowResult], segments: Sequence[Segment]) -> None:
        self._queue.put(("windows", list(windows), list(segments)))

    def close(self, segments: Sequence[Segment]) -> None:
        """Write everything still held and finish the file; re-raises a writer failure."""
        self._queue.put(("close", list(segments)))
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item[0] == "frames":
                    self._held.extend(item[1])
                elif item[0] == "windows":
                    self._windows = (self._windows + item[1])[-2:]
                    self._segments = item[2]
                    self._write_ready(final=False)
                else:
                    self._segments = item[1]
                    self._write_ready(final=True)
                    self._container.mux(self._stream.encode())
                    self._container.close()
                    return
        except BaseException as err:  # reported by close(); the thread must not die silently
            self.error = err
            self._container.close()
            while True:  # keep draining so that producers never block on a dead writer
                if self._queue.get()[0] == "close":
                    return

    def _window_for(self, time: float) -> Optional[WindowResult]:
        if not self._windows:
            return None
        return min(self._windows, key=lambda w: abs(w.centre - time))

    def _write_ready(self, final: bool) -> None:
        """Encode the held frames whose label is settled: up to the latest decided window's
        centre (a later window could only be nearer for frames after it), all when final."""
        import av

        limit = self._windows[-1].centre if self._windows else -1.0
        keep = 0
        for index, frame in self._held:
            time = (index + 0.5) / self.fps
            if not final and time > limit:
                break
            keep += 1
            if frame is None:
                frame = self._last if self._last is not None else np.zeros(
                    (self._stream.height, self._stream.width, 3), np.uint8)
            self._last = frame
            duration = self.duration or (index + 1) / self.fps
            image = annotate_frame(frame, self._window_for(time), self._segments, duration, time)
            video_frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            self._container.mux(self._stream.encode(video_frame))
            self.frames_written += 1
        del self._held[:keep]


def timeline_png(path: str, segments: Sequence[Segment], duration: float, title: str,
                 width: int = 1000) -> None:
    """A picture of the timeline: the coloured strip with a time axis and one legend row per
    class (name, total seconds), so the actions and their order read at a glance."""
    names = {}
    for seg in segments:
        names.setdefault(seg.class_id, [seg.class_name, 0.0])[1] += seg.end - seg.start
    rows = max(len(names), 1)
    margin, strip_h = 20, 40
    height = margin * 2 + 30 + strip_h + 30 + rows * 26
    image = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(image, title[:100], (margin, margin + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (0, 0, 0), 1, cv2.LINE_AA)
    top = margin + 30
    body = image[:, margin:width - margin]
    draw_strip(body, segments, duration, top, top + strip_h)
    step = _tick_step(duration)
    for tick in np.arange(0.0, duration + 1e-9, step):
        x = margin + int(tick / max(duration, 1e-6) * (width - 2 * margin - 1))
        cv2.line(image, (x, top + strip_h), (x, top + strip_h + 5), (0, 0, 0), 1)
        cv2.putText(image, f"{tick:g}s", (x - 8, top + strip_h + 20), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, (0, 0, 0), 1, cv2.LINE_AA)
    y = top + strip_h + 40
    for class_id, (name, seconds) in names.items():
        cv2.rectangle(image, (margin, y), (margin + 16, y + 16), class_colour(class_id), -1)
        cv2.putText(image, f"{name}  ({seconds:.1f} s)", (margin + 24, y + 13),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        y += 26
    cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def _tick_step(duration: float) -> float:
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if duration / step <= 12:
            return float(step)
    return 7200.0
