"""The service under pressure and at its end: a full queue answers 429 with Retry-After, SIGTERM
finishes the accepted jobs and exits 0; bad flags stop ``tools/serve.py`` in one line."""
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.inference.helpers import REPO_ROOT, work_dir
from tests.inference.timeline_helpers import CLASSES, FPS, clip_frames, three_action_video
from tests.serving.server_helpers import (
    Server,
    alive,
    clip_video,
    decoding_workers,
    send_body,
)

BOUNDARY = "b0undary"


def stalled_upload():
    """The start of an upload, then nothing for longer than the server waits."""
    yield (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"video\"; "
           f"filename=\"s.mp4\"\r\n\r\n").encode() + b"\0" * 1000
    time.sleep(3)
    yield b"\0" * 1000

pytestmark = pytest.mark.slow


def test_full_queue_is_429_and_sigterm_finishes_accepted_jobs_then_exits_0():
    server = Server("--max_queue", "2", "--shutdown_timeout", "120")
    try:
        jobs = []
        for _ in range(2):
            status, answer = server.upload("/v1/timeline", three_action_video())
            assert status == 202, answer
            jobs.append(answer["job"])
        status, headers, raw = server.request("POST", "/v1/predict", b"",
                                              {"Content-Type": "multipart/form-data"})
        assert status == 429 and "queue is full" in raw.decode()
        assert int(headers["retry-after"]) >= 1
        _, first = server.json("GET", f"/v1/jobs/{jobs[0]}")
        assert first["status"] in ("queued", "running")  # the signal comes mid-work
        workers = decoding_workers(server.process.pid)
        assert len(workers) == 2
        started = time.monotonic()
        assert server.terminate(timeout=120) == 0
        assert not any(alive(pid) for pid in workers)  # shut down with the service
        assert time.monotonic() - started < 120
        log = server.log()
        for job in jobs:  # both accepted jobs ran to the end before the exit
            assert f"timeline job {job} done" in log
        assert "Traceback" not in log
    finally:
        server.stop()


def long_video():
    """96 s: the three clips sixteen times over (far longer to process than the 1 s bound)."""
    from tests.conftest import write_video

    path = work_dir() / "forty_eight_actions.mp4"
    if not path.exists():
        write_video(path, np.concatenate(clip_frames() * 16), fps=FPS)
    return path


def test_private_folder_jobs_expire_slow_uploads_time_out_and_sigterm_is_bounded(tmp_path):
    server = Server("--max_queue", "1", "--job_ttl", "2", "--upload_timeout", "1",
                    "--shutdown_timeout", "1", env={"TMPDIR": str(tmp_path)})
    try:
        folder, = tmp_path.glob("paddlevideo-serve-*")
        assert folder.stat().st_mode & 0o777 == 0o700
        status, answer = server.upload("/v1/timeline", three_action_video())
        assert status == 202
        status, _ = server.upload("/v1/predict", clip_video(0))
        assert status == 429
        job = server.wait_job(answer["job"])
        assert job["status"] == "done"
        status, answer2 = server.upload("/v1/predict", clip_video(0))
        assert status == 200 and answer2["top_k"][0]["class_name"] == CLASSES[0]
        # the uploads are gone; the finished job keeps only its annotated video
        assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == \
            [f"job-{answer['job']}", f"job-{answer['job']}/annotated.mp4"]
        _, _, metrics = server.request("GET", "/metrics")
        assert 'pv_requests_total{route="/v1/predict",status="429"} 1' in metrics.decode()
        assert "pv_queue_depth 0" in metrics.decode()
        status, text, _ = send_body(server.port, "/v1/predict", stalled_upload(),
                                    {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
        assert status == 408 and "longer than 1 s" in text
        time.sleep(2.5)
        status, gone = server.json("GET", f"/v1/jobs/{answer['job']}")
        assert status == 404 and "expired" in gone["error"]
        assert list(folder.iterdir()) == []
        # SIGTERM during a job longer than --shutdown_timeout: the wait is bounded, exit 0
        status, answer = server.upload("/v1/timeline", long_video())
        assert status == 202
        code = server.terminate()
        assert code == 0, server.log()[-3000:]  # the log says why (a signal is negative)
        log = server.log()
        assert "timeline jobs still running after 1 s; stopping anyway" in log
        assert f"timeline job {answer['job']} done" not in log and "Traceback" not in log
        assert not folder.exists()
    finally:
        server.stop()


@pytest.mark.parametrize("flags, words", [
    (["--max_queue", "0"], "--max_queue must be at least 1"),
    (["--allow_url_prefix", "file:///"], "only http:// and https:// prefixes"),
    (["--model_file", "/nonexistent/model.pdmodel"], "model file not found"),
])
def test_bad_flags_stop_in_one_line_with_exit_2(flags, words):
    command = [sys.executable, str(REPO_ROOT / "tools" / "serve.py"), "-c",
               str(REPO_ROOT / "configs" / "recognition" / "slowfast" / "slowfast.yaml"),
               "--model_file", "m.pdmodel", "--params_file", "m.pdiparams", *flags]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and words in errors[0] and "Traceback" not in done.stderr


def test_decoding_workers_end_with_a_killed_server():
    # a SIGKILL runs no shutdown code: the workers must still not outlive the service
    server = Server()
    try:
        workers = decoding_workers(server.process.pid)
        assert len(workers) == 2 and all(alive(pid) for pid in workers)
        server.process.kill()
        server.process.wait(30)
        deadline = time.monotonic() + 20
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(pid) for pid in workers)
    finally:
        server.stop()
