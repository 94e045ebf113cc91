"""Open a video and decode only the frames a clip needs (decord, or PyAV as the alternative)."""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..registry import PIPELINES
from .functional import sample_clip_indices
from .random_state import pipeline_rng

BACKENDS = ("decord", "pyav")


class VideoDecodeError(RuntimeError):
    """A video that cannot give the frames asked of it; ``path`` and ``reason`` say which, why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _decord_available() -> bool:
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


class VideoSource:
    """An opened video: ``num_frames``, ``fps``, ``get_frames(indices)`` → uint8 ``[N,H,W,3]``."""

    def __init__(self, path: str, backend: str = "decord", num_threads: int = 0) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown video backend '{backend}', expected one of {BACKENDS}")
        if backend == "decord" and not _decord_available():
            backend = "pyav"
        self.path, self.backend = path, backend
        _check_file(path)
        self.signature = file_signature(path)
        try:
            if backend == "decord":
                import decord

                self._reader = decord.VideoReader(path, num_threads=num_threads)
                self.num_frames = len(self._reader)
                self.fps = float(self._reader.get_avg_fps())
            else:
                self._open_pyav()
        except VideoDecodeError:
            raise
        except Exception as err:  # decoders raise many types; all mean "unreadable"
            raise VideoDecodeError(path, f"cannot open: {_short(err)}") from None
        if self.num_frames <= 0:
            raise VideoDecodeError(path, "the video stream has no frames")

    def _open_pyav(self) -> None:
        import av

        container = av.open(self.path)
        try:
            if not container.streams.video:
                raise VideoDecodeError(self.path, "no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else 0.0
            frames = stream.frames
            if not frames and stream.duration and rate:
                frames = int(round(float(stream.duration * stream.time_base) * self.fps))
            self.num_frames = int(frames or 0)
        finally:
            container.close()

    def get_frames(self, indices: np.ndarray) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as uint8 ``[N,H,W,3]`` RGB.

        Each distinct frame is decoded once, in increasing order, so the decoder never seeks back.
        """
        indices = np.asarray(indices, dtype=np.int64)
        unique, inverse = np.unique(indices, return_inverse=True)
        if unique[0] < 0 or unique[-1] >= self.num_frames:
            raise VideoDecodeError(self.path, f"frame index out of range [0, {self.num_frames})")
        try:
            frames = self._decode(unique)
        except VideoDecodeError:
            raise
        except Exception as err:
            raise VideoDecodeError(
                self.path, f"reports {self.num_frames} frames but decoding frames "
                f"{unique[0]}..{unique[-1]} failed: {_short(err)}") from None
        if len(unique) == len(indices) and np.array_equal(unique, indices):
            return frames
        return frames[inverse.reshape(-1)]

    def _decode(self, unique: np.ndarray) -> np.ndarray:
        if self.backend != "decord":
            return self._pyav_frames(unique)
        try:
            return self._reader.get_batch(unique.tolist()).asnumpy()
        except Exception:
            # decord rejects some valid streams (e.g. frame widths it cannot align, such as
            # 48 px); PyAV decodes them, so only a file both fail on counts as bad.
            self.backend = "pyav"
            return self._pyav_frames(unique)

    def _pyav_frames(self, wanted: np.ndarray) -> np.ndarray:
        import av

        out, position, next_wanted = [], 0, 0
        with av.open(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                while next_wanted < len(wanted) and wanted[next_wanted] == position:
                    out.append(frame.to_ndarray(format="rgb24"))
                    next_wanted += 1
                position += 1
                if next_wanted == len(wanted):
                    break
        if next_wanted < len(wanted):
            raise VideoDecodeError(
                self.path, f"reports {self.num_frames} frames but only {position} decode")
        return np.stack(out)


def file_signature(path: str) -> Optional[Tuple[int, int]]:
    """(modification time in ns, size) of a file, or None when it cannot be read."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise VideoDecodeError(path, "file not found")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")


def _short(err: Exception) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}"


@PIPELINES.register()
class DecodeSampler:
    """Decode the frames of one clip, choosing them by time rather than by frame count.

    The clip spans ``num_frames * sampling_rate * fps / target_fps`` source frames; its start is
    uniform over the video when training and ``delta * i / n`` for temporal view ``i`` of ``n``
    when testing. ``num_frames`` indices are spread evenly over the span (``linspace``, int64) and
    clipped to the video, so a short video repeats its last frame. In a multigrid short cycle the
    sampling rate is drawn from ``[default_sampling_rate, sampling_rate]``.

    In test mode the views of a video come in order (clip, then crop): the reader stays open and
    one decoding pass serves this temporal clip and the next ones, as many as fit in
    ``test_cache_mb`` of frames, so each clip is decoded once and the decoder does not seek back to
    a key frame for every clip. The spatial crops of a clip share its frames.

    Reads: ``filename``, ``temporal_sample_index``, ``temporal_num_clips`` (test),
    ``short_cycle_idx`` (optional).
    Writes: ``imgs`` (uint8 ``[num_frames,H,W,3]`` RGB), ``frame_indices`` (int64
    ``[num_frames]``), ``video_num_frames``, ``video_fps``.
    """

    def __init__(self, num_frames: int, sampling_rate: int, default_sampling_rate: int = 2,
                 target_fps: float = 30, test_mode: bool = False, backend: str = "decord",
                 num_threads: int = 0, test_cache_mb: float = 128) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"DecodeSampler: unknown backend '{backend}', expected {BACKENDS}")
        self.num_frames, self.sampling_rate = int(num_frames), int(sampling_rate)
        self.default_sampling_rate, self.target_fps = int(default_sampling_rate), target_fps
        self.test_mode, self.backend, self.num_threads = test_mode, backend, num_threads
        self.test_cache_bytes = int(test_cache_mb * 2**20)
        self._last_source: Optional[VideoSource] = None
        self._clip_cache: Dict[Tuple[str, int, int], np.ndarray] = {}
        self._clip_bytes: Dict[str, int] = {}

    def _sampling_rate(self, results: Dict[str, Any]) -> int:
        if results.get("short_cycle_idx") in (0, 1) and self.sampling_rate > \
                self.default_sampling_rate:
            return int(pipeline_rng().integers(self.default_sampling_rate, self.sampling_rate + 1))
        return self.sampling_rate

    def _open(self, path: str) -> VideoSource:
        last = self._last_source
        if last is not None and last.path == path and last.signature == file_signature(path):
            return last
        # another video, or the same path rewritten: nothing cached may be reused
        self._clip_cache, self._clip_bytes = {}, {}
        source = VideoSource(path, self.backend, self.num_threads)
        # Test views of one video come one after another: keep its reader open for the next.
        self._last_source = source if self.test_mode else None
        return source

    def _test_clips(self, source: VideoSource, index: int, views: int) -> np.ndarray:
        """Frames of temporal clip ``index`` of ``views``, decoding it with the clips after it
        that fit in the cache budget."""
        key = (source.path, index, views)
        if key in self._clip_cache:
            return self._clip_cache[key]
        per_clip = self._clip_bytes.get(source.path)
        count = 1 if per_clip is None else max(1, self.test_cache_bytes // max(per_clip, 1))
        group = range(index, min(index + count, views))
        clip_indices = [sample_clip_indices(source.num_frames, self.num_frames,
                                            self.sampling_rate, source.fps, self.target_fps,
                                            i / views) for i in group]
        union = np.unique(np.concatenate(clip_indices))
        frames = source.get_frames(union)
        self._clip_cache = {}
        for i, wanted in zip(group, clip_indices):
            clip = frames[np.searchsorted(union, wanted)]
            clip.setflags(write=False)  # shared by the crops: no step may edit it in place
            self._clip_cache[(source.path, i, views)] = clip
        self._clip_bytes = {source.path: self._clip_cache[key].nbytes}
        return self._clip_cache[key]

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        path = results["filename"]
        source = self._open(path)
        if self.test_mode:
            index = int(results.get("temporal_sample_index", 0))
            views = int(results.get("temporal_num_clips", 1))
            frames = self._test_clips(source, index, views)
            indices = sample_clip_indices(source.num_frames, self.num_frames, self.sampling_rate,
                                          source.fps, self.target_fps, index / views)
        else:
            start_fraction = float(pipeline_rng().uniform(0.0, 1.0))
            indices = sample_clip_indices(source.num_frames, self.num_frames,
                                          self._sampling_rate(results), source.fps,
                                          self.target_fps, start_fraction)
            frames = source.get_frames(indices)
        results.update(imgs=frames, frame_indices=indices, video_num_frames=source.num_frames,
                       video_fps=source.fps)
        return results
