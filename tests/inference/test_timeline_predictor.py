"""``Predictor.timeline``: the same arrays as ``predict``, three known actions found in order,
the annotated video, HTTP input, damaged files, short videos, bounded buffering, live drops."""
import functools
import http.server
import threading
import time

import av
import numpy as np
import pytest

from paddlevideo.inference import WindowPreprocessor
from paddlevideo.inference.annotate import class_colour
from paddlevideo.loader.pipelines.decode import VideoSource
from tests.conftest import write_video
from tests.inference.timeline_helpers import (
    BOUNDARIES,
    CLASSES,
    FPS,
    clip_frames,
    three_action_video,
    three_class_predictor,
)


@pytest.fixture(scope="module")
def predictor():
    return three_class_predictor(batch_size=4)


@pytest.fixture(scope="module")
def timeline(predictor):
    return predictor.timeline(str(three_action_video()))


def serve(folder):
    """A loopback HTTP server of ``folder`` in a thread; returns ``(server, base_url)``."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_window_arrays_equal_the_arrays_predict_gives_for_the_same_frames(predictor, tmp_path):
    windows = WindowPreprocessor(predictor.preprocess)
    # a video exactly one window long: the window is the clip predict takes
    plan = windows.plan(FPS, None)
    one = write_video(tmp_path / "one.mp4", clip_frames()[1][:int(plan.span)], fps=FPS)
    frames = VideoSource(str(one), "pyav").get_frames(np.arange(int(plan.span)))
    slow, fast = windows(frames[plan.frame_indices(0)])
    expected_slow, expected_fast = predictor.preprocess(str(one))
    np.testing.assert_array_equal(slow, expected_slow[0])
    np.testing.assert_array_equal(fast, expected_fast[0])
    # window 5 of the long video: the test pipeline's steps on the decoder's frames
    source = VideoSource(str(three_action_video()), "pyav")
    clip = source.get_frames(plan.frame_indices(5))
    pipeline_out = {"imgs": clip, "spatial_sample_index": 0, "spatial_num_clips": 1}
    for step in predictor.preprocess.pipeline.steps[1:]:
        pipeline_out = step(pipeline_out)
    np.testing.assert_array_equal(windows(clip)[1], pipeline_out["imgs"][1])


def test_three_actions_give_three_segments_in_order_within_one_stride(timeline):
    segments = timeline.segments
    assert [s.class_name for s in segments] == list(CLASSES)
    stride = timeline.windows[1].start - timeline.windows[0].start
    assert stride == pytest.approx(8 / FPS)  # default: half of a 16-frame window
    for segment, boundary in zip(segments, BOUNDARIES):
        assert abs(segment.end - boundary) <= stride
    assert segments[0].start == 0.0 and segments[-1].end == pytest.approx(6.0)
    assert all(s.score > 0.8 for s in segments)
    assert timeline.duration == pytest.approx(6.0) and timeline.fps == FPS
    # windows of a 180-frame video, 8 frames apart, 16 long: starts 0, 8, ..., 160
    assert len(timeline.windows) == 21 and timeline.skipped == [] and timeline.dropped == 0
    assert timeline.speed > 0


def test_window_buffer_stays_within_one_window(timeline):
    # 16-frame windows 8 frames apart: at most one window span plus the frame arriving
    assert timeline.stream_stats["max_buffered_frames"] <= 17


def test_same_video_over_http_gives_the_same_timeline(predictor, timeline):
    server, base = serve(three_action_video().parent)
    try:
        remote = predictor.timeline(f"{base}/{three_action_video().name}")
    finally:
        server.shutdown()
    assert [w.top_k for w in remote.windows] == [w.top_k for w in timeline.windows]
    assert [s.record() for s in remote.segments] == [s.record() for s in timeline.segments]


def test_annotated_video_keeps_every_frame_and_draws_the_timeline(predictor, tmp_path):
    out = tmp_path / "annotated.mp4"
    result = predictor.timeline(str(three_action_video()), output_video=str(out))
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and float(stream.average_rate) == FPS
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 180 and frames[0].shape == (96, 96, 3)
    # the label box is drawn dark at the top left over a brighter background
    assert frames[0][:4, :4].mean() < 30
    # last frame: the strip (bottom rows) shows each segment in its class colour
    strip = frames[-1][-3].astype(int)
    for segment in result.segments:
        x = int((segment.start + segment.end) / 2 / 6.0 * 96)
        assert np.abs(strip[x] - class_colour(segment.class_id)).max() < 40, segment


def test_damaged_middle_reports_skipped_windows_and_still_finishes(predictor, tmp_path):
    data = bytearray(three_action_video().read_bytes())
    rng = np.random.default_rng(0)
    middle = len(data) // 2
    data[middle:middle + len(data) // 12] = rng.integers(0, 256, len(data) // 12,
                                                         dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    result = predictor.timeline(str(damaged), output_video=str(tmp_path / "out.mp4"))
    assert result.skipped and all("damaged or missing" in s["reason"] for s in result.skipped)
    assert len(result.windows) + len(result.skipped) == 21
    assert result.stream_stats["lost_frames"] > 0
    # the first and last action are untouched by the damage in the middle
    assert result.segments[0].class_name == CLASSES[0]
    assert result.segments[-1].class_name == CLASSES[-1]
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 180


def test_video_shorter_than_a_window_gives_one_padded_window(predictor, tmp_path):
    short = write_video(tmp_path / "short.mp4", clip_frames()[2][:10], fps=FPS)
    result = predictor.timeline(str(short))
    [window] = result.windows
    expected = predictor.predict(str(short))
    assert window.top_k[0][0] == expected[0][0]
    assert window.score == pytest.approx(expected[0][2], abs=1e-5)
    assert (window.start, window.end) == (0.0, pytest.approx(10 / FPS))


def test_live_source_drops_windows_when_the_model_is_slower(predictor, monkeypatch):
    run_model = predictor.run_model

    def slow_model(slow, fast):
        time.sleep(0.15)
        return run_model(slow, fast)

    monkeypatch.setattr(predictor, "run_model", slow_model)
    seen = []
    result = predictor.timeline(str(three_action_video()), live=True,
                                on_window=lambda w, lag: seen.append(lag))
    assert result.dropped > 0
    assert len(result.windows) + result.dropped == 21
    assert len(seen) == len(result.windows) and all(lag >= 0 for lag in seen)


def test_max_seconds_stops_early(predictor):
    result = predictor.timeline(str(three_action_video()), max_seconds=1.0)
    assert result.duration == pytest.approx(1.0)
    assert all(w.end <= 1.0 + 1e-6 for w in result.windows) and len(result.windows) == 2


class AlwaysDropHandler(http.server.BaseHTTPRequestHandler):
    """Serves the first half of ``data`` and then closes the connection, every time."""

    data = b""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.data)))
        self.end_headers()
        self.wfile.write(self.data[:len(self.data) // 2])
        self.wfile.flush()
        self.connection.shutdown(2)


def test_stream_lost_for_good_keeps_what_was_decided(predictor):
    AlwaysDropHandler.data = three_action_video().read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AlwaysDropHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/three.mp4"
    try:
        result = predictor.timeline(url, reconnects=1)
    finally:
        server.shutdown()
    assert result.error.startswith(f"{url}: stream lost, 1 reconnects failed")
    assert 0 < len(result.windows) < 21 and result.stream_stats["reconnects"] == 1
    assert result.segments[0].class_name == CLASSES[0]
