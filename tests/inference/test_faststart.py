"""MP4s over a server without range requests (Python's http.server): the annotated video we
write streams (index first); a file with its index at the end gets a message that says why it
cannot, and what fixes it, instead of a reconnect loop."""
import functools
import http.server
import threading

import numpy as np
import pytest

from paddlevideo.inference.annotate import AnnotatedVideoWriter
from paddlevideo.inference.frame_stream import FrameStream, StreamError
from tests.conftest import write_video


@pytest.fixture()
def file_server(tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.handle_error = lambda *args: None  # the decoder hanging up mid-file is expected
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_index_at_the_end_without_range_requests_says_so(file_server):
    folder, base = file_server
    rng = np.random.default_rng(0)  # noise: large enough that the decoder must seek
    write_video(folder / "late_index.mp4", rng.integers(0, 256, (90, 120, 160, 3), np.uint8))
    with pytest.raises(StreamError) as caught:
        list(FrameStream(f"{base}/late_index.mp4", reconnects=1))
    message = str(caught.value)
    assert "range requests" in message and "faststart" in message
    assert "reconnects failed" not in message


def test_annotated_video_streams_from_a_server_without_range_requests(file_server):
    folder, base = file_server
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (90, 120, 160, 3), np.uint8)
    writer = AnnotatedVideoWriter(str(folder / "annotated.mp4"), 160, 120, 30.0)
    writer.add_frames(list(enumerate(frames)))
    writer.close([])
    stream = FrameStream(f"{base}/annotated.mp4", reconnects=0)
    indices, decoded = zip(*stream)
    assert list(indices) == list(range(90)) and all(f.shape == (120, 160, 3) for f in decoded)
