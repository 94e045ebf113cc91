"""``tools/serve.py`` as a real process on a loopback port: predictions, concurrency, timeline
jobs, hostile inputs, tokens. One server (with a token, a 4 MB upload limit and one allowed URL
prefix) serves the whole module."""
import functools
import http.server
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.inference.timeline_helpers import CLASSES, three_action_video
from tests.serving.server_helpers import (
    Server,
    clip_video,
    decoding_workers,
    multipart,
    send_body,
    top_level_boxes,
)

pytestmark = pytest.mark.slow
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class RecordingHandler(http.server.SimpleHTTPRequestHandler):
    """Python's file server (no range requests), remembering every path asked for."""

    asked = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).asked.append(self.path)
        super().do_GET()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An http.server over a folder with ``allowed/`` (a clip) and ``private/`` (a clip)."""
    root = tmp_path_factory.mktemp("web")
    for sub in ("allowed", "private"):
        (root / sub).mkdir()
        (root / sub / "clip.mp4").write_bytes(clip_video(1).read_bytes())
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(RecordingHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def server(files):
    srv = Server("--token", TOKEN, "--max_upload_mb", "4", "--allow_url_prefix",
                 f"{files}/allowed/")
    yield srv
    srv.stop()


def test_upload_gives_the_known_class_with_the_asked_top_k_and_views(server):
    for index, name in enumerate(CLASSES):
        status, answer = server.upload("/v1/predict", clip_video(index), headers=AUTH)
        assert status == 200, answer
        assert answer["top_k"][0]["class_name"] == name and answer["top_k"][0]["class_id"] == \
            index
        assert len(answer["top_k"]) == 3 and answer["num_views"] == 1 and answer["ms"] > 0
        scores = [item["score"] for item in answer["top_k"]]
        assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1, 1e-4)
    status, answer = server.upload("/v1/predict", clip_video(2), "?top_k=2&views=3",
                                   headers=AUTH)
    assert status == 200 and len(answer["top_k"]) == 2 and answer["num_views"] == 3
    assert answer["top_k"][0]["class_name"] == CLASSES[2]
    status, answer = server.upload("/v1/predict", clip_video(2), "?views=0", headers=AUTH)
    assert status == 422 and "views" in answer["error"]
    status, answer = server.upload("/v1/timeline", clip_video(2), "?stride=0.01", headers=AUTH)
    assert status == 422 and "stride" in answer["error"]


def test_24_concurrent_uploads_all_get_their_class(server):
    def one(i):
        return i % 3, server.upload("/v1/predict", clip_video(i % 3), headers=AUTH)

    before = decoded(server)
    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(one, range(24)))
    for label, (status, answer) in results:
        assert status == 200, answer
        assert answer["top_k"][0]["class_name"] == CLASSES[label]
    assert decoded(server) - before == 24


def decoded(server) -> int:
    _, _, text = server.request("GET", "/metrics", headers=AUTH)
    line = next(x for x in text.decode().splitlines() if x.startswith("pv_videos_decoded_total"))
    return int(line.split()[1])


def test_timeline_job_gives_segments_and_a_faststart_video_of_every_frame(server, tmp_path):
    import av

    status, answer = server.upload("/v1/timeline", three_action_video(), "?stride=0.25",
                                   headers=AUTH)
    assert status == 202, answer
    job = server.wait_job(answer["job"], headers=AUTH)
    assert job["status"] == "done", job
    timeline = job["timeline"]
    assert [s["class_name"] for s in timeline["segments"]] == list(CLASSES)
    assert [s["end"] for s in timeline["segments"][:2]] == pytest.approx([2.0, 4.0], abs=0.5)
    assert job["progress"] == pytest.approx(6.0, abs=0.1) and timeline["file"] == \
        "three_actions.mp4"
    assert "/tmp" not in json.dumps(job)  # no server path reaches a client
    # the video link carries its own key, so a <video> element needs no header
    status, headers, data = server.request("GET", job["video"])
    assert status == 200 and headers["content-type"] == "video/mp4"
    boxes = top_level_boxes(data)
    assert boxes.index("moov") < boxes.index("mdat")  # index first: plays while downloading
    path = tmp_path / "annotated.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 180
    status, _, _ = server.request("GET", job["video"].split("?")[0])
    assert status == 401


def test_not_a_video_is_a_4xx_json_reason(server, tmp_path):
    rng = np.random.default_rng(0)
    png = b"\x89PNG\r\n\x1a\n" + rng.bytes(2000)
    mp4 = clip_video(0).read_bytes()
    cases = {"random": (rng.bytes(50_000), 415, "not a video"),
             "png": (png, 415, "PNG image"),
             "cut": (mp4[: len(mp4) // 3], 422, "not a readable video")}
    for name, (data, code, words) in cases.items():
        body, content_type = multipart({"video": (f"{name}.mp4", data)})
        status, _, raw = server.request("POST", "/v1/predict", body,
                                        {"Content-Type": content_type, **AUTH})
        answer = json.loads(raw)
        assert status == code and words in answer["error"], (name, answer)
        assert list(answer) == ["error"] and "Traceback" not in answer["error"]
    status, answer = server.json("POST", "/v1/predict", b"plain text",
                                 {"Content-Type": "text/plain", **AUTH})
    assert status == 400 and "multipart" in answer["error"]


def test_oversize_upload_is_cut_off_with_413_without_holding_it(server):
    chunk = b"\0" * 2**20
    body, content_type = multipart({"video": ("big.mp4", b"")})
    start = body[:body.index(b"\r\n\r\n") + 4]  # the part's headers; 256 MB of data follow
    peak_before = server.pid_status("VmHWM")
    status, text, sent = send_body(server.port, "/v1/predict",
                                   [start] + [chunk] * 256, {"Content-Type": content_type, **AUTH})
    assert status == 413 and "limit of 4 MB" in json.loads(text)["error"]
    assert sent < 128 * 2**20  # cut off long before the end of the 256 MB
    assert server.pid_status("VmHWM") - peak_before < 64 * 1024  # kB
    # a declared length over the limit is refused before any of the body is read
    status, text, sent = send_body(server.port, "/v1/predict", [start] + [chunk] * 256,
                                   {"Content-Type": content_type, **AUTH},
                                   length=len(start) + 256 * len(chunk))
    assert status == 413 and "limit of 4 MB" in json.loads(text)["error"]
    assert server.pid_status("VmHWM") - peak_before < 64 * 1024


def test_urls_outside_the_allowed_prefix_are_refused_and_never_read(server, files):
    RecordingHandler.asked.clear()
    for url in ("file:///etc/passwd", "/etc/passwd", "etc/passwd", "ftp://127.0.0.1/x.mp4",
                f"{files}/private/clip.mp4", f"{files}/allowed/../private/clip.mp4",
                f"{files}/allowed/%2e%2e/private/clip.mp4"):
        status, answer = server.json("POST", "/v1/predict", json.dumps({"url": url}).encode(),
                                     {"Content-Type": "application/json", **AUTH})
        assert status == 403 and "refused" in answer["error"], (url, answer)
    assert RecordingHandler.asked == []  # nothing was fetched for any of them
    status, answer = server.json("POST", "/v1/predict",
                                 json.dumps({"url": f"{files}/allowed/clip.mp4"}).encode(),
                                 {"Content-Type": "application/json", **AUTH})
    assert status == 200 and answer["top_k"][0]["class_name"] == CLASSES[1]
    assert RecordingHandler.asked == ["/allowed/clip.mp4"]


def test_missing_or_wrong_token_is_401_except_health(server):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        for method, path in (("GET", "/metrics"), ("GET", "/v1/jobs/abc"),
                             ("POST", "/v1/predict"), ("POST", "/v1/timeline")):
            status, response_headers, raw = server.request(method, path, b"", headers)
            assert status == 401, (method, path, headers)
            assert "bearer token" in json.loads(raw)["error"]
            assert response_headers["www-authenticate"] == "Bearer"
    status, answer = server.json("GET", "/healthz")
    assert status == 200 and answer["status"] == "ok" and answer["classes"] == 3
    status, _, page = server.request("GET", "/")
    assert status == 200 and b"<video" in page and b"://" not in page  # nothing from outside


def test_unknown_job_and_route_are_json_404(server):
    status, answer = server.json("GET", "/v1/jobs/nope", headers=AUTH)
    assert status == 404 and "nope" in answer["error"]
    status, answer = server.json("GET", "/v2/anything", headers=AUTH)
    assert status == 404 and list(answer) == ["error"]
    _, _, metrics = server.request("GET", "/metrics", headers=AUTH)
    assert 'route="other",status="404"' in metrics.decode() and "anything" not in \
        metrics.decode()


def test_a_crashed_decoder_is_a_422_and_new_workers_take_over(server):
    import os
    import signal
    import time

    workers = decoding_workers(server.process.pid)
    assert len(workers) == 2  # --workers 2, started at warm-up
    os.kill(workers[0], signal.SIGKILL)  # what a decoder crash on a hostile file does
    time.sleep(1)
    status, answer = server.upload("/v1/predict", clip_video(0), headers=AUTH)
    assert status == 422 and "decoder crashed" in answer["error"], answer
    status, answer = server.upload("/v1/predict", clip_video(1), headers=AUTH)
    assert status == 200 and answer["top_k"][0]["class_name"] == CLASSES[1]
    replaced = decoding_workers(server.process.pid)
    assert replaced and workers[0] not in replaced
    assert "A decoding worker died" in server.log()
