"""Open a video and decode only the frames a clip needs (decord, or PyAV as the alternative)."""
from __future__ import annotations

import importlib
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..registry import PIPELINES
from .file_checks import container_truncation, image_format
from .functional import sample_clip_indices
from .random_state import pipeline_rng

BACKENDS = ("decord", "pyav")
SELECTIVE_CODECS = ("h264", "hevc")  # PyAV decodes only the frames a clip needs
# (path, signature) → reason for files whose frames fell short of their header when decoded: a
# later draw of the same file in this process fails the same way at open, whatever its clip.
_SHORT_FILES: Dict[Tuple[str, Any], str] = {}
_MAX_SHORT_FILES = 10_000


class VideoDecodeError(RuntimeError):
    """A video that cannot give the frames asked of it; ``path`` and ``reason`` say which, why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):  # pickled whole: decoding may run in a worker process
        return type(self), (self.path, self.reason)


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


class VideoSource:
    """An opened video: ``num_frames``, ``fps``, ``get_frames(indices)`` → uint8 ``[N,H,W,3]``.

    ``num_threads`` is decord's decoding threads (0: decord chooses); PyAV decodes on one.
    """

    def __init__(self, path: str, backend: str = "decord", num_threads: int = 0) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown video backend '{backend}', expected one of {BACKENDS}")
        if backend == "decord" and not _importable("decord"):
            backend = "pyav"
        elif backend == "pyav" and not _importable("av") and _importable("decord"):
            backend = "decord"
        self.path, self.backend, self.num_threads = path, backend, num_threads
        _check_file(path)
        self.signature = file_signature(path)
        known = _SHORT_FILES.get((path, self.signature))
        if known is not None:
            raise VideoDecodeError(path, known)
        self._reader: Any = None
        self._pyav: Optional[PyAVReader] = None
        try:
            if backend == "decord":
                import decord

                self._reader = decord.VideoReader(path, num_threads=num_threads)
                self.num_frames = len(self._reader)
                self.fps = float(self._reader.get_avg_fps())
            else:
                self._pyav = PyAVReader(path)
                self.num_frames, self.fps = self._pyav.num_frames, self._pyav.fps
        except VideoDecodeError:
            raise
        except Exception as err:  # decoders raise many types; all mean "unreadable"
            raise VideoDecodeError(path, f"cannot open: {_short(err)}") from None
        if self.num_frames <= 0:
            raise VideoDecodeError(path, "the video stream has no frames")

    def close(self) -> None:
        """Release the decoder and the file now rather than when garbage collected."""
        if self._pyav is not None:
            self._pyav.close()
            self._pyav = None
        self._reader = None

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
        except VideoDecodeError as err:
            self._remember_short(err.reason)
            raise
        except Exception as err:
            reason = (f"reports {self.num_frames} frames but decoding frames "
                      f"{unique[0]}..{unique[-1]} failed: {_short(err)}")
            self._remember_short(reason)
            raise VideoDecodeError(self.path, reason) from None
        if len(unique) == len(indices) and np.array_equal(unique, indices):
            return frames
        return frames[inverse.reshape(-1)]

    def _remember_short(self, reason: str) -> None:
        """The header cannot be trusted for this file any more: every later open says so."""
        if len(_SHORT_FILES) >= _MAX_SHORT_FILES:
            _SHORT_FILES.clear()
        _SHORT_FILES[(self.path, self.signature)] = reason

    def _decode(self, unique: np.ndarray) -> np.ndarray:
        if self.backend != "decord":
            return self._pyav.get_frames(unique)
        try:
            return _as_numpy(self._reader.get_batch(unique.tolist()))
        except Exception:
            # decord rejects some valid streams (e.g. frame widths it cannot align, such as
            # 48 px); PyAV decodes them, so only a file both fail on counts as bad.
            self.backend = "pyav"
            self._pyav = PyAVReader(self.path)
            return self._pyav.get_frames(unique)


class PyAVReader:
    """A video opened with PyAV that decodes only what a set of frames needs.

    Frame ``i`` is the packet with the ``i``-th smallest presentation time, as decord numbers
    frames. ``get_frames`` starts at the last key frame before the first wanted frame and hands
    the decoder every packet up to the last wanted one, but tells it to skip the frames that no
    other frame references and that are not wanted (``skip_frame = NONREF``); the wanted frames
    come out identical. Colour conversion to RGB reuses one converter for all frames.
    """

    def __init__(self, path: str) -> None:
        import av
        from av.video.reformatter import VideoReformatter

        self.path = path
        self._container = av.open(path)
        try:
            if not self._container.streams.video:
                raise VideoDecodeError(path, "no video stream")
            self._stream = self._container.streams.video[0]
            demuxer = self._container.format.name
            if demuxer == "image2" or demuxer.endswith("_pipe"):  # png_pipe, webp_pipe, ...
                raise VideoDecodeError(path, f"is an image ({self._stream.codec_context.name}),"
                                       f" not a video")
            # One thread for decoding and colour conversion: each packet is decoded when sent,
            # so the skip flag set for it applies (frame threads would decode later ones under
            # it), and no codec threads exist that a forked loader worker could inherit
            # half-way. Loader workers run videos in parallel instead.
            self._stream.thread_type = "NONE"
            self._stream.thread_count = 1
            rate = self._stream.average_rate or self._stream.guessed_rate
            self.fps = float(rate) if rate else 0.0
            self._packets = [p for p in self._container.demux(self._stream) if p.size]
            self._check_packets()
        except BaseException:
            self._container.close()
            raise
        self.num_frames = len(self._packets)
        times = [p.pts for p in self._packets]
        # Packet times name the decoded frames reliably for H.264/HEVC with a time on every
        # packet. Otherwise (e.g. MPEG-4 part 2 in AVI, whose packed B-frames come out under
        # other times) frames are numbered in the order the decoder outputs them, decoding
        # every packet from the start.
        self._ordered = self._stream.codec_context.name in SELECTIVE_CODECS and \
            None not in times and len(set(times)) == len(times)
        if self._ordered:
            self._display_order = np.argsort(np.asarray(times, dtype=np.int64), kind="stable")
            self._times = np.asarray(times, dtype=np.int64)
        self._rgb = VideoReformatter()
        self._used = False
        self.frames_decoded = 0  # frames the decoder produced, over all calls

    def _check_packets(self) -> None:
        """The file must hold the data its packets claim: the demuxer marks a packet whose data
        the file ends inside as corrupt. (Frames are counted from the packets, not from the
        header, so a header that claims more is not believed; an MP4/MOV cut short is refused
        before opening, see ``file_checks.container_truncation``.)"""
        if self._packets and self._packets[-1].is_corrupt:
            claimed = int(self._stream.frames or 0) or len(self._packets)
            raise VideoDecodeError(self.path, f"the file is cut short: its data end inside "
                                   f"frame {len(self._packets) - 1} of the {claimed} its "
                                   f"header claims")

    def close(self) -> None:
        self._packets = []
        self._container.close()

    def get_frames(self, wanted: np.ndarray) -> np.ndarray:
        """uint8 RGB ``[N,H,W,3]`` of the distinct increasing frame numbers ``wanted``."""
        wanted = np.asarray(wanted, dtype=np.int64)
        if self._ordered:
            positions = self._display_order[wanted]
            slot_of = {int(self._times[p]): i for i, p in enumerate(positions)}
            first = self._first_packet(positions)
            last = int(positions.max())
        else:
            slot_of = {int(n): i for i, n in enumerate(wanted)}
            first, last = 0, len(self._packets) - 1
        out: List[np.ndarray] = [None] * len(wanted)  # type: ignore[list-item]
        found = self._run_decoder(first, last, slot_of, out)
        if found < len(wanted):
            raise VideoDecodeError(self.path, f"reports {self.num_frames} frames but only "
                                   f"{found} of the {len(wanted)} wanted decode")
        return np.stack(out)

    def _first_packet(self, positions: np.ndarray) -> int:
        """The last key frame packet before every wanted packet (in decoding order) that is
        shown no later than the first wanted frame."""
        earliest, first_time = int(positions.min()), int(self._times[positions].min())
        for position in range(earliest, -1, -1):
            packet = self._packets[position]
            if packet.is_keyframe and self._times[position] <= first_time:
                return position
        return 0

    def _run_decoder(self, first: int, last: int, slot_of: Dict[int, int],
                     out: List[np.ndarray]) -> int:
        context = self._stream.codec_context
        if self._used:
            context.flush_buffers()  # forget the previous call's frames and end of stream
        self._used = True
        found, skipping, count = 0, None, 0
        for position in range(first, len(self._packets)):
            packet = self._packets[position]
            skip = self._ordered and (position > last or packet.pts not in slot_of)
            if skip != skipping:
                context.skip_frame = "NONREF" if skip else "DEFAULT"
                skipping = skip
            for frame in context.decode(packet):
                found, count = self._keep(frame, slot_of, out, found, count)
            if found == len(out):
                return found
        context.skip_frame = "DEFAULT"
        for frame in context.decode(None):  # the frames still held back for reordering
            found, count = self._keep(frame, slot_of, out, found, count)
        return found

    def _keep(self, frame: Any, slot_of: Dict[int, int], out: List[np.ndarray], found: int,
              count: int) -> Tuple[int, int]:
        self.frames_decoded += 1
        key = frame.pts if self._ordered else count
        slot = slot_of.get(key)
        if slot is not None and out[slot] is None:
            out[slot] = self._rgb.reformat(frame, format="rgb24", threads=1).to_ndarray()
            found += 1
        return found, count + 1


class _DLPackBatch:
    """Hands a decord NDArray to ``numpy.from_dlpack`` (decord's own ``to_dlpack`` capsule)."""

    def __init__(self, batch: Any) -> None:
        self.batch = batch

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self.batch.to_dlpack()

    def __dlpack_device__(self) -> Tuple[int, int]:
        return (1, 0)  # kDLCPU


def _as_numpy(batch: Any) -> np.ndarray:
    """A decord batch as a read-only numpy array sharing its memory (no copy of the clip);
    a copy when the zero-copy hand-over is not available."""
    try:
        frames = np.from_dlpack(_DLPackBatch(batch))
    except (AttributeError, TypeError, BufferError, RuntimeError):
        return batch.asnumpy()
    frames.setflags(write=False)
    return frames


def file_signature(path: str) -> Optional[Tuple[int, int]]:
    """(modification time in ns, size) of a file, or None when it cannot be read."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _check_file(path: str) -> None:
    """Refuse, before a decoder sees it, a file that is missing, empty, an image (decoders
    open a PNG/JPEG as a one-frame video) or a container cut short (its index claims frames
    whose data are gone): the same answer for both backends and for every clip of the file."""
    if not os.path.exists(path):
        raise VideoDecodeError(path, "file not found")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
        image = image_format(head)
        truncation = None if image else container_truncation(path)
    except OSError as err:
        raise VideoDecodeError(path, f"cannot read: {_short(err)}") from None
    if image:
        raise VideoDecodeError(path, f"is a {image} image, not a video")
    if truncation:
        raise VideoDecodeError(path, f"the file is incomplete: {truncation}")


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

    ``backend``: ``decord`` (default) or ``pyav``; both give the same frames. ``pyav`` decodes only
    what the wanted frames need (see :class:`PyAVReader`), which is faster on H.264/HEVC.
    ``num_threads`` applies to decord. ``fit_short`` (off by default, as in PaddleVideo): a
    video shorter than the clip's span is sampled over its whole length rather than padded with
    its last frame (:func:`sample_clip_indices`).

    Reads: ``filename``, ``temporal_sample_index``, ``temporal_num_clips`` (test),
    ``short_cycle_idx`` (optional).
    Writes: ``imgs`` (uint8 ``[num_frames,H,W,3]`` RGB), ``frame_indices`` (int64
    ``[num_frames]``), ``video_num_frames``, ``video_fps``.
    """

    def __init__(self, num_frames: int, sampling_rate: int, default_sampling_rate: int = 2,
                 target_fps: float = 30, test_mode: bool = False, backend: str = "decord",
                 num_threads: int = 0, test_cache_mb: float = 128,
                 fit_short: bool = False) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"DecodeSampler: unknown backend '{backend}', expected {BACKENDS}")
        self.num_frames, self.sampling_rate = int(num_frames), int(sampling_rate)
        self.default_sampling_rate, self.target_fps = int(default_sampling_rate), target_fps
        self.test_mode, self.backend, self.num_threads = test_mode, backend, num_threads
        self.test_cache_bytes = int(test_cache_mb * 2**20)
        self.fit_short = bool(fit_short)
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
                                            i / views, self.fit_short) for i in group]
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
                                          source.fps, self.target_fps, index / views,
                                          self.fit_short)
        else:
            start_fraction = float(pipeline_rng().uniform(0.0, 1.0))
            indices = sample_clip_indices(source.num_frames, self.num_frames,
                                          self._sampling_rate(results), source.fps,
                                          self.target_fps, start_fraction, self.fit_short)
            try:
                frames = source.get_frames(indices)
            finally:
                source.close()
        results.update(imgs=frames, frame_indices=indices, video_num_frames=source.num_frames,
                       video_fps=source.fps)
        return results
