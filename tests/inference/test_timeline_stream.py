"""``FrameStream``: sources told apart, damaged stretches as ``None`` frames, HTTP with a
dropped connection, unreachable hosts as one line."""
import http.server
import threading

import numpy as np
import pytest

from paddlevideo.inference.frame_stream import (
    FrameStream,
    StreamError,
    is_live_source,
    source_kind,
)
from tests.conftest import frame_numbers, numbered_frames, write_video


def test_source_kinds_and_live_defaults():
    assert [source_kind(s) for s in ("-", "0", "/dev/video2", "rtsp://cam/1",
                                     "https://x/v.mp4", "clip.mp4", "C:/v.mp4")] == \
        ["stdin", "camera", "camera", "url", "url", "file", "file"]
    assert [is_live_source(s) for s in ("0", "rtmp://h/app", "http://h/v.mp4", "-",
                                        "v.mp4")] == [True, True, False, False, False]


def test_frames_come_in_order_numbered_from_their_times(tmp_path):
    path = write_video(tmp_path / "n.mp4", numbered_frames(40), fps=30)
    stream = FrameStream(str(path))
    indices, frames = zip(*stream)
    assert list(indices) == list(range(40)) and stream.info.num_frames == 40
    assert frame_numbers(np.stack(frames)).tolist() == list(range(40))


def damaged_copy(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (72 + 120, 96, 3), dtype=np.uint8)
    path = write_video(tmp_path / "noise.mp4", np.stack([base[t:t + 72] for t in range(120)]),
                       fps=30)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + len(data) // 10] = rng.integers(0, 256, len(data) // 10,
                                                         dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    return damaged


def test_damaged_stretch_is_none_frames_and_keeps_the_numbering(tmp_path):
    stream = FrameStream(str(damaged_copy(tmp_path)))
    items = list(stream)
    assert [i for i, _ in items] == list(range(120))  # every slot, none shifted
    lost = [i for i, frame in items if frame is None]
    assert lost and 20 < lost[0] and lost[-1] < 110  # only the middle is lost
    assert stream.lost_frames == len(lost) and stream.decode_errors > 0


class DropOnceHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``data``; the first request is cut off half-way."""

    data = b""
    requests = 0

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).requests += 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.data)))
        self.end_headers()
        if self.requests == 1:
            self.wfile.write(self.data[:len(self.data) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(self.data)


def test_dropped_http_stream_is_reopened_and_no_frame_repeats(tmp_path):
    path = write_video(tmp_path / "n.mp4", numbered_frames(60), fps=30, faststart=True)
    DropOnceHandler.data, DropOnceHandler.requests = path.read_bytes(), 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DropOnceHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        stream = FrameStream(f"http://127.0.0.1:{server.server_address[1]}/n.mp4")
        indices, frames = zip(*stream)
    finally:
        server.shutdown()
    assert stream.reconnected == 1 and DropOnceHandler.requests == 2
    assert list(indices) == list(range(60))
    assert frame_numbers(np.stack(frames)).tolist() == list(range(60))


def test_unreachable_url_and_missing_file_are_one_line_errors(tmp_path):
    with pytest.raises(StreamError, match=r"^http://127\.0\.0\.1:9/v\.mp4: cannot open: ") as e:
        FrameStream("http://127.0.0.1:9/v.mp4", timeout=2)
    assert "\n" not in str(e.value)
    with pytest.raises(StreamError, match="missing.mp4: file not found"):
        FrameStream(str(tmp_path / "missing.mp4"))


def test_camera_index_is_read_with_opencv_in_rgb(tmp_path, monkeypatch):
    import cv2

    frames = numbered_frames(20).copy()
    frames[..., 0] = 230  # a red tint: BGR handed out as it comes would show it in blue
    path = write_video(tmp_path / "cam.avi", frames, fps=25, codec="mjpeg")
    opened = []
    real_capture = cv2.VideoCapture

    def fake_camera(device):  # no camera here: the device reads a file through OpenCV
        opened.append(device)
        return real_capture(str(path))

    monkeypatch.setattr(cv2, "VideoCapture", fake_camera)
    stream = FrameStream("0")
    indices, frames = zip(*stream)
    assert opened == [0] and stream.info.fps == 25 and stream.info.num_frames == 0
    assert list(indices) == list(range(20))
    decoded = np.stack(frames).astype(np.float64)
    assert decoded.shape == (20, 64, 96, 3)
    assert np.abs(decoded[..., 0].mean() - 230) < 6
    green_levels = decoded[..., 1].reshape(20, -1).mean(axis=1)
    assert np.round((green_levels - 8) / 4).astype(int).tolist() == list(range(20))
