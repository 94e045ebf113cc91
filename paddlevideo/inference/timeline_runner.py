"""Run a model over every window of a video or stream, with decoding beside the model.

A producer thread decodes the source once, in order (:class:`.frame_stream.FrameStream`),
keeps only the frames from the oldest pending window's start on (a deque), preprocesses each
window as soon as its last frame arrives (the test pipeline's steps after decoding, so a window
gets exactly the arrays ``predict`` gives a clip of the same frames) and hands batches of
windows to the calling thread, which runs the model and merges segments. The queue between them
holds two batches, so memory does not grow with the video's length.

For a live source the producer never waits for the model: when two batches are already queued,
the oldest is dropped (its windows are counted in ``dropped``, its frames still reach the
annotated video), so results stay close to the stream.
"""
from __future__ import annotations

import collections
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..loader.pipelines.decode import DecodeSampler
from .annotate import AnnotatedVideoWriter
from .frame_stream import Frame, FrameStream, StreamError, is_live_source
from .timeline import Segment, SegmentBuilder, WindowPlan, WindowResult, default_stride

QUEUED_BATCHES = 2
STOP_WAIT_SECONDS = 2.0  # how long Ctrl-C waits for the decoder to let go


class WindowPreprocessor:
    """The test pipeline of a :class:`.preprocess.ClipPreprocessor` split at the decoder:
    ``plan(fps, stride)`` places windows as its ``DecodeSampler`` places a clip, and
    ``__call__(frames [T,H,W,3] uint8)`` → ``(slow [3,T/alpha,S,S], fast [3,T,S,S])`` float32
    runs the steps after it (centre crop)."""

    def __init__(self, clip_preprocessor: Any) -> None:
        steps = clip_preprocessor.pipeline.steps
        if not steps or not isinstance(steps[0], DecodeSampler):
            raise ValueError("the prediction pipeline must start with DecodeSampler")
        self.sampler, self.transforms = steps[0], steps[1:]

    def plan(self, fps: float, stride: Optional[float]) -> WindowPlan:
        plan = WindowPlan(self.sampler.num_frames, self.sampler.sampling_rate,
                          float(self.sampler.target_fps), float(fps), 1.0)
        seconds = default_stride(plan.window_seconds) if stride is None else float(stride)
        if seconds <= 0:
            raise ValueError(f"stride must be positive, got {stride}")
        return WindowPlan(plan.num_frames, plan.sampling_rate, plan.target_fps, plan.fps,
                          seconds)

    def __call__(self, frames: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        results: Dict[str, Any] = {"imgs": frames, "spatial_sample_index": 0,
                                   "spatial_num_clips": 1}
        for step in self.transforms:
            results = step(results)
        slow, fast = results["imgs"]
        return slow, fast


@dataclass
class WindowJob:
    """A window on its way to the model: ``arrays`` (slow, fast) or ``None`` with ``reason``."""

    index: int
    start: float
    end: float
    centre: float
    arrays: Optional[Tuple[np.ndarray, np.ndarray]]
    reason: str = ""
    ready_time: float = 0.0  # monotonic time its last frame arrived


@dataclass
class Batch:
    jobs: List[WindowJob]
    frames: List[Tuple[int, Frame]]


@dataclass
class TimelineResult:
    """Everything a timeline run found (times in seconds)."""

    source: str
    fps: float
    frames: int = 0
    windows: List[WindowResult] = field(default_factory=list)
    skipped: List[Dict[str, Any]] = field(default_factory=list)
    dropped: int = 0
    segments: List[Segment] = field(default_factory=list)
    wall_seconds: float = 0.0
    prob_sum: Optional[np.ndarray] = None
    interrupted: bool = False
    stream_stats: Dict[str, int] = field(default_factory=dict)
    output_video: Optional[str] = None
    output_png: Optional[str] = None
    error: Optional[str] = None  # why the source ended early (a lost stream)

    @property
    def duration(self) -> float:
        return self.frames / self.fps if self.fps else 0.0

    @property
    def speed(self) -> float:
        """Seconds of video per second of wall time."""
        return self.duration / self.wall_seconds if self.wall_seconds > 0 else 0.0


class TimelineRun:
    """One source through ``predictor`` (a :class:`.predictor.Predictor`); see the module
    docstring. ``on_window(window, lag_seconds)`` is called for each decided window."""

    def __init__(self, predictor: Any, source: str, stride: Optional[float] = None,
                 max_seconds: Optional[float] = None, live: Optional[bool] = None,
                 output_video: Optional[str] = None, reconnects: int = 3,
                 on_window: Optional[Callable[[WindowResult, float], None]] = None) -> None:
        self.predictor, self.source = predictor, source
        self.windows = WindowPreprocessor(predictor.preprocess)
        self.stream = FrameStream(source, reconnects=reconnects)
        self.plan = self.windows.plan(self.stream.info.fps, stride)
        self.live = is_live_source(source) if live is None else bool(live)
        self.max_frames = int(round(max_seconds * self.plan.fps)) if max_seconds else 0
        self.on_window = on_window
        self.result = TimelineResult(source, self.plan.fps, output_video=output_video)
        self.segments = SegmentBuilder(predictor.class_names)
        self.writer = self._make_writer(output_video) if output_video else None
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUED_BATCHES)
        self._stop = threading.Event()
        self._producer_error: Optional[BaseException] = None
        self._end = object()
        self.max_buffered = 0  # most frames the window buffer held at once

    def _make_writer(self, path: str) -> AnnotatedVideoWriter:
        info = self.stream.info
        frames = info.num_frames
        if self.max_frames:
            frames = min(frames, self.max_frames) if frames else self.max_frames
        return AnnotatedVideoWriter(path, info.width, info.height, info.fps, info.rate,
                                    duration=frames / info.fps if frames else 0.0)

    # -- producer thread -----------------------------------------------------------------
    def _produce(self) -> None:
        try:
            self._decode_windows()
        except BaseException as err:  # handed to the calling thread, which raises it
            self._producer_error = err
        finally:
            self._put(self._end)

    def _decode_windows(self) -> None:
        plan, batch_size = self.plan, self.predictor.batch_size
        buffer: Deque[Frame] = collections.deque()
        buffer_start, next_window = 0, 0
        jobs: List[WindowJob] = []
        frames: List[Tuple[int, Frame]] = []
        for index, frame in self.stream:
            if self._stop.is_set():
                break
            buffer.append(frame)
            self.max_buffered = max(self.max_buffered, len(buffer))
            if self.writer is not None:
                frames.append((index, frame))
            self.result.frames = index + 1
            while plan.last_frame(next_window) <= index:
                first = plan.start(next_window) - buffer_start
                span = [buffer[i] for i in range(first, first + int(plan.offsets[-1]) + 1)]
                jobs.append(self._job(next_window, span, plan.offsets))
                next_window += 1
                while buffer and buffer_start < plan.start(next_window):
                    buffer.popleft()
                    buffer_start += 1
            if len(jobs) >= batch_size:
                self._put(Batch(jobs, frames))
                jobs, frames = [], []
            if self.max_frames and index + 1 >= self.max_frames:
                break
        if next_window == 0 and buffer:  # shorter than one window: the padded test clip
            indices = self.plan.padded_indices(len(buffer))
            jobs.append(self._job(0, list(buffer), indices, padded=True))
        if jobs or frames:
            self._put(Batch(jobs, frames))

    def _job(self, index: int, span: Sequence[Frame], offsets: np.ndarray,
             padded: bool = False) -> WindowJob:
        start, end = self.plan.bounds(index)
        centre = self.plan.centre(index)
        if padded:
            end = len(span) / self.plan.fps
            centre = end / 2
        job = WindowJob(index, start, end, centre, None, ready_time=time.monotonic())
        lost = sum(f is None for f in span)
        if lost:
            job.reason = f"{lost} damaged or missing frames"
            return job
        job.arrays = self.windows(np.stack([span[int(i)] for i in offsets]))
        return job

    def _put(self, item: Any) -> None:
        while not self._stop.is_set() or item is self._end:
            try:
                if self.live and item is not self._end:
                    self._queue.put_nowait(item)
                else:
                    self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                if self.live and item is not self._end:
                    self._drop_oldest(item)
                elif item is self._end and self._stop.is_set():
                    self._drain_frames_only()

    def _drop_oldest(self, item: Batch) -> None:
        """Live: the model is behind; forget the oldest queued windows, keep their frames."""
        try:
            old = self._queue.get_nowait()
        except queue.Empty:
            return
        if old is self._end:
            return
        self.result.dropped += sum(job.arrays is not None for job in old.jobs)
        item.frames[:0] = old.frames

    def _drain_frames_only(self) -> None:
        try:
            old = self._queue.get_nowait()
        except queue.Empty:
            return
        if old is not self._end and self.writer is not None:
            self.writer.add_frames(old.frames)

    # -- calling thread ------------------------------------------------------------------
    def run(self) -> TimelineResult:
        """Decode, predict and merge until the source ends, ``max_seconds`` is reached or
        Ctrl-C; the annotated video is finished in every case."""
        started = time.perf_counter()
        producer = threading.Thread(target=self._produce, name="timeline-decode", daemon=True)
        producer.start()
        try:
            self._consume()
        except KeyboardInterrupt:
            self.result.interrupted = True
            self._stop.set()
            self._drain_after_stop(producer)
        finally:
            self._stop.set()
            # A stalled stream can hold the decoder in a read; the thread is a daemon then,
            # and its container is left to the process exit rather than closed under it.
            producer.join(timeout=STOP_WAIT_SECONDS)
            if not producer.is_alive():
                self.stream.close()
            self.result.segments = self.segments.segments(end=self.result.duration)
            if self.writer is not None:
                self.writer.close(self.result.segments)
            self.result.wall_seconds = time.perf_counter() - started
            self.result.stream_stats = {"decode_errors": self.stream.decode_errors,
                                        "lost_frames": self.stream.lost_frames,
                                        "reconnects": self.stream.reconnected,
                                        "max_buffered_frames": self.max_buffered}
        if isinstance(self._producer_error, StreamError):
            # a stream lost part-way: what was decided before stays, with the reason
            self.result.error = str(self._producer_error)
        elif self._producer_error is not None:
            raise self._producer_error
        return self.result

    def _consume(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.5)  # a timeout keeps Ctrl-C responsive
            except queue.Empty:
                continue
            if item is self._end:
                return
            if self.writer is not None:
                self.writer.add_frames(item.frames)
            decided = self._predict(item.jobs)
            if self.writer is not None and decided:
                self.writer.add_windows(decided, self.segments.segments())

    def _drain_after_stop(self, producer: threading.Thread) -> None:
        """After Ctrl-C: pass the frames already queued to the annotated video, without the
        model, until the producer ends or has been silent for ``STOP_WAIT_SECONDS``."""
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                if not producer.is_alive():
                    return
                continue
            if item is self._end:
                return
            if self.writer is not None:
                self.writer.add_frames(item.frames)

    def _predict(self, jobs: Sequence[WindowJob]) -> List[WindowResult]:
        ready = [job for job in jobs if job.arrays is not None]
        probs = np.zeros((0, len(self.predictor.class_names)), np.float32)
        if ready:
            slow = np.stack([job.arrays[0] for job in ready])
            fast = np.stack([job.arrays[1] for job in ready])
            probs = self.predictor.run_model(slow, fast)
        decided, rows = [], iter(probs)
        for job in jobs:
            if job.arrays is None:
                self.result.skipped.append({"start": round(job.start, 4),
                                            "end": round(job.end, 4), "reason": job.reason})
                continue
            window = self._decide(job, next(rows))
            decided.append(window)
            if self.on_window is not None:
                self.on_window(window, time.monotonic() - job.ready_time)
        return decided

    def _decide(self, job: WindowJob, probs: np.ndarray) -> WindowResult:
        window = WindowResult(job.index, job.start, job.end, job.centre,
                              self.predictor.top_classes(probs), probs=probs)
        previous = self.segments.pending
        self.segments.push(window)
        if previous is not None and previous is not self.segments.pending:
            previous.probs = None  # no segment can need it any more
        if self.segments.pending is not window:
            window.probs = None
        self.result.prob_sum = probs if self.result.prob_sum is None else \
            self.result.prob_sum + probs
        self.result.windows.append(window)
        return window


def timeline_record(result: TimelineResult, predictor: Any) -> Dict[str, Any]:
    """One input's JSON entry: the file's top-k (window probabilities averaged) plus the
    timeline."""
    top_k: List[Dict[str, Any]] = []
    if result.prob_sum is not None:
        top_k = [{"class_id": c, "class_name": n, "score": s} for c, n, s in
                 predictor.top_classes(result.prob_sum / len(result.windows))]
    return {"file": result.source, "top_k": top_k, "fps": result.fps,
            "duration": round(result.duration, 4), "speed": round(result.speed, 4),
            "wall_seconds": round(result.wall_seconds, 3),
            "windows": [w.record() for w in result.windows],
            "segments": [s.record() for s in result.segments],
            "skipped_windows": result.skipped, "dropped_windows": result.dropped,
            "interrupted": result.interrupted, "error": result.error,
            "stream": result.stream_stats,
            "output_video": result.output_video}
