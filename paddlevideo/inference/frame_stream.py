"""Frames of a file, URL, camera or standard input, decoded once, in order, one at a time.

``FrameStream(source)`` yields ``(index, frame)`` with ``frame`` uint8 ``[H,W,3]`` RGB, or
``None`` for a frame that is missing or damaged (a corrupt stretch of the file). Frame numbers
come from the presentation times, so frames lost in a damaged stretch leave a gap that is
reported as ``None`` frames rather than shifting every later frame. Nothing is kept but the
frame being handed out.

Sources: a path; ``http(s)://``, ``rtsp://``, ``rtmp://`` (and other FFmpeg URLs) read by PyAV;
a camera index (``0``) or ``/dev/videoN`` read by OpenCV; ``-`` for a stream on standard input
(a format that needs no seeking: MPEG-TS, Matroska, or MP4 with its index first).
"""
from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Tuple

import numpy as np

NETWORK_SCHEMES = ("http", "https", "rtsp", "rtmp", "rtmps", "udp", "tcp", "srt", "hls")
LIVE_SCHEMES = ("rtsp", "rtmp", "rtmps", "udp", "tcp", "srt")
Frame = Optional[np.ndarray]


class StreamError(RuntimeError):
    """A source that cannot be opened or read; the message names it."""


def source_kind(source: str) -> str:
    """``file``, ``url``, ``camera`` or ``stdin``."""
    if source == "-":
        return "stdin"
    if re.fullmatch(r"\d+", source) or re.fullmatch(r"/dev/video\d+", source):
        return "camera"
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    return "url" if scheme in NETWORK_SCHEMES else "file"


def is_live_source(source: str) -> bool:
    """Cameras and streaming protocols run in real time; files, HTTP and pipes are read as fast
    as they come unless told otherwise."""
    kind = source_kind(source)
    return kind == "camera" or (kind == "url" and source.split("://", 1)[0].lower()
                                in LIVE_SCHEMES)


@dataclass
class StreamInfo:
    """What is known when the source opens: ``fps``, frame size, ``num_frames`` (0 when the
    length is unknown, as for live sources)."""

    fps: float
    width: int
    height: int
    num_frames: int
    rate: Any  # the frame rate as a Fraction where the container gives one


class FrameStream:
    """Sequential frames of ``source`` (see the module docstring).

    ``reconnects``: how many times a dropped network stream is reopened before the stream
    ends with :class:`StreamError`; ``timeout``: seconds to wait for a network source.
    Counters: ``decode_errors`` (packets the decoder rejected), ``lost_frames`` (``None`` frames
    handed out), ``reconnected``.
    """

    def __init__(self, source: str, reconnects: int = 3, timeout: float = 10.0) -> None:
        self.source, self.kind = source, source_kind(source)
        self.reconnects, self.timeout = int(reconnects), float(timeout)
        self.decode_errors = self.lost_frames = self.reconnected = 0
        self._container: Any = None
        self._capture: Any = None
        if self.kind == "file" and not os.path.isfile(source):
            raise StreamError(f"{source}: file not found")
        self.info = self._open_camera() if self.kind == "camera" else self._open_pyav()

    # -- opening -------------------------------------------------------------------------
    def _open_pyav(self) -> StreamInfo:
        import av

        target = "pipe:0" if self.kind == "stdin" else self.source
        options = {}
        if self.kind == "url":
            options = {"rw_timeout": str(int(self.timeout * 1e6))}
            if self.source.lower().startswith("rtsp"):
                options["rtsp_transport"] = "tcp"
        try:
            self._container = av.open(target, options=options, timeout=self.timeout)
            stream = self._container.streams.video[0]
        except IndexError:
            self.close()
            raise StreamError(f"{self.source}: no video stream") from None
        except Exception as err:  # FFmpeg reports unreachable hosts, bad files... as errors
            self.close()
            raise StreamError(unseekable_reason(self.source, self.timeout)
                              or f"{self.source}: cannot open: {_short(err)}") from None
        stream.thread_type = "AUTO"  # frame threads: decoding keeps ahead of the model
        self._stream = stream
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 30.0
        frames = int(stream.frames or 0)
        if not frames and stream.duration and stream.time_base and self.kind == "file":
            frames = int(round(float(stream.duration * stream.time_base) * fps))
        return StreamInfo(fps, stream.codec_context.width, stream.codec_context.height,
                          frames, rate)

    def _open_camera(self) -> StreamInfo:
        import cv2

        device = int(self.source) if self.source.isdigit() else self.source
        self._capture = cv2.VideoCapture(device)
        if not self._capture.isOpened():
            raise StreamError(f"{self.source}: cannot open the camera")
        fps = float(self._capture.get(cv2.CAP_PROP_FPS)) or 30.0
        return StreamInfo(fps, int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                          int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), 0, None)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        # the decoder's frame threads end when the last reference to its stream goes: a
        # process forked later (loader workers) must not inherit a decoder with threads
        self._stream = None
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    # -- reading -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Tuple[int, Frame]]:
        if self.kind == "camera":
            yield from self._camera_frames()
            return
        next_index = 0
        for index, frame in self._pyav_frames():
            if index < next_index:
                continue  # a late frame out of a damaged stretch, its slot already passed
            while next_index < index:  # frames the damaged stretch swallowed
                self.lost_frames += 1
                yield next_index, None
                next_index += 1
            if frame is None:
                self.lost_frames += 1
            yield index, frame
            next_index = index + 1
        if self.kind == "file":
            while next_index < self.info.num_frames:  # a damaged end of the file
                self.lost_frames += 1
                yield next_index, None
                next_index += 1

    def _pyav_frames(self) -> Iterator[Tuple[int, Frame]]:
        """``(index from the presentation time, frame or None if damaged)``; reopens a network
        stream that drops, up to ``reconnects`` times in all."""
        base_index, last = 0, -1
        while True:
            try:
                for index, frame in self._decode_all(base_index):
                    last = max(last, index)
                    yield index, frame
                return
            except StreamError:
                raise
            except Exception as err:  # the connection dropped (or the file ended badly)
                if self.kind != "url":
                    return
                self._reopen(_short(err))
                # A live stream goes on where it is now; a file over HTTP starts again from its
                # beginning, and the frames already handed out are passed over by number.
                base_index = last + 1 if is_live_source(self.source) else 0

    def _reopen(self, reason: str) -> None:
        """Open the URL again, waiting longer before each try; :class:`StreamError` once
        ``reconnects`` tries are spent."""
        while self.reconnected < self.reconnects:
            self.reconnected += 1
            time.sleep(min(2.0 ** self.reconnected / 4, 4.0))
            self.close()
            try:
                self.info = self._open_pyav()
                return
            except StreamError as err:
                reason = str(err)
        # a file that needs seeking fails the same way every time: say so, and what fixes it
        raise StreamError(unseekable_reason(self.source, self.timeout) or
                          f"{self.source}: stream lost, {self.reconnected} reconnects "
                          f"failed: {reason}")

    def _decode_all(self, base_index: int) -> Iterator[Tuple[int, Frame]]:
        import av

        stream, first_pts, count = self._stream, None, 0
        time_base = float(stream.time_base) if stream.time_base else 0.0
        for packet in self._container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                self.decode_errors += 1  # a damaged packet; the gap shows in the frame times
                continue
            for frame in frames:
                if frame.pts is not None and time_base and first_pts is None:
                    first_pts = frame.pts
                if frame.pts is not None and first_pts is not None:
                    index = base_index + int(round((frame.pts - first_pts) * time_base
                                                   * self.info.fps))
                else:
                    index = base_index + count
                count += 1
                if getattr(frame, "is_corrupt", False):
                    yield index, None
                else:
                    yield index, frame.to_ndarray(format="rgb24")

    def _camera_frames(self) -> Iterator[Tuple[int, Frame]]:
        import cv2

        index = 0
        while self._capture is not None:
            ok, bgr = self._capture.read()
            if not ok:
                return
            yield index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            index += 1


def unseekable_reason(url: str, timeout: float = 10.0) -> Optional[str]:
    """Why an ``http(s)`` MP4 cannot be read, when the cause is that the server answers no
    range requests and the file keeps its index (``moov``) after its data, so the decoder would
    have to seek; None when that is not the cause (or the server cannot be asked)."""
    import struct
    import urllib.request

    if not url.lower().startswith(("http://", "https://")):
        return None
    try:
        request = urllib.request.Request(url, headers={"Range": "bytes=0-65535"})
        with urllib.request.urlopen(request, timeout=min(timeout, 5.0)) as response:
            if response.status == 206:
                return None  # range requests work: seeking is not the problem
            head = response.read(65536)
    except Exception:  # unreachable, refused...: the caller's own message stands
        return None
    offset = 0
    while offset + 8 <= len(head):  # top-level boxes until the first mdat or moov
        size, kind = struct.unpack(">I4s", head[offset:offset + 8])
        if kind == b"moov":
            return None
        if kind == b"mdat":
            return (f"{url}: cannot seek in this stream: the server does not answer HTTP range "
                    f"requests and the MP4 keeps its index (moov) after the video data. Serve "
                    f"it from a server with range requests, or rewrite it with the index first "
                    f"(a \"faststart\" MP4: ffmpeg -i in.mp4 -c copy -movflags +faststart "
                    f"out.mp4)")
        if size < 8:
            return None
        offset += size
    return None


def _short(err: Exception) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}"


def stdin_is_terminal() -> bool:
    """True when ``-`` would wait for a person to type a video."""
    return sys.stdin is not None and sys.stdin.isatty()
