"""``tools/predict.py --timeline``: JSON and CSV format, stdin, URLs and bad input."""
import json
import os
import subprocess
import sys

import pytest

from tests.inference.helpers import REPO_ROOT
from tests.inference.timeline_helpers import CLASSES, three_action_video, three_class_export

TOOL = REPO_ROOT / "tools" / "predict.py"


def run_tool(*args, stdin=None, timeout=300):
    paths = three_class_export()
    cmd = [sys.executable, str(TOOL), "--config", paths["config"], "--model_file",
           paths["model"], "--params_file", paths["params"], "--use_gpu=False", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, timeout=timeout,
                          stdin=stdin, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))


def test_timeline_json_csv_and_png(tmp_path):
    out = tmp_path / "results.json"
    proc = run_tool("--input_file", str(three_action_video()), "--timeline", "--top_k", "2",
                    "--output", str(out), "--output_timeline_png", str(tmp_path / "t.png"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    [record] = json.loads(out.read_text())["results"]
    assert record["file"] == str(three_action_video())
    assert record["fps"] == 30 and record["duration"] == 6.0 and record["speed"] > 0
    assert [s["class_name"] for s in record["segments"]] == list(CLASSES)
    assert set(record["segments"][0]) >= {"start", "end", "class_id", "class_name", "score"}
    window = record["windows"][3]
    assert window["start"] == pytest.approx(24 / 30, abs=1e-4)
    assert window["end"] == pytest.approx(40 / 30, abs=1e-4)
    assert [k["class_name"] for k in window["top_k"]][0] == window["class_name"]
    assert len(window["top_k"]) == 2 and record["skipped_windows"] == []
    csv_lines = (tmp_path / "results_segments.csv").read_text().splitlines()
    assert csv_lines[0] == "file,start,end,class_id,class_name,score"
    assert [line.split(",")[4] for line in csv_lines[1:]] == list(CLASSES)
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    assert "move_left (class 0" in proc.stdout and "speed" in proc.stdout


def test_piped_stream_on_stdin_prints_windows_as_they_come(tmp_path):
    out = tmp_path / "stdin.json"
    with open(three_action_video(), "rb") as video:
        proc = run_tool("--input_file", "-", "--live", "True", "--stride", "1",
                        "--output", str(out), stdin=video)
    assert proc.returncode == 0, proc.stderr[-2000:]
    window_lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("[")]
    record = json.loads(out.read_text())["results"][0]
    assert len(window_lines) == len(record["windows"]) > 0
    assert "(lag " in window_lines[0]
    assert len(record["windows"]) + record["dropped_windows"] == 6  # starts 0, 1, ... 5 s


def test_unreachable_url_is_a_one_line_error():
    proc = run_tool("--input_file", "http://127.0.0.1:9/stream.mp4", "--reconnects", "0")
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1
    assert errors[0].startswith("Error: http://127.0.0.1:9/stream.mp4: cannot open: ")


@pytest.mark.parametrize("flags, message", [
    (["--stride", "0"], "--stride must be positive, got 0.0"),
    (["--max_seconds", "-1"], "--max_seconds must be positive, got -1.0"),
    (["--output_video", "out.txt"],
     "--output_video out.txt: expected a file ending in .mp4, .mkv, .mov, .avi"),
])
def test_bad_timeline_flags_are_refused_before_work(flags, message):
    proc = run_tool("--input_file", str(three_action_video()), "--timeline", *flags)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == f"Error: {message}"


def test_missing_file_in_timeline_mode_is_named():
    proc = run_tool("--input_file", "no/such/video.mp4", "--timeline")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "Error: input not found: no/such/video.mp4"


def test_ctrl_c_on_a_live_stream_stops_cleanly_and_writes_what_it_has(tmp_path):
    import signal
    import threading

    paths = three_class_export()
    out, video = tmp_path / "live.json", tmp_path / "live.mp4"
    cmd = [sys.executable, str(TOOL), "--config", paths["config"], "--model_file",
           paths["model"], "--params_file", paths["params"], "--use_gpu=False",
           "--input_file", "-", "--live", "True", "--output", str(out),
           "--output_video", str(video)]
    data = three_action_video().read_bytes()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=False, cwd=REPO_ROOT,
                            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    try:
        proc.stdin.write(data[:len(data) * 2 // 3])  # the stream stays open: more may come
        proc.stdin.flush()
        first = proc.stdout.readline().decode()
        assert first.startswith("[") and "(lag " in first
        # stdin stays open until the process ends, so only Ctrl-C can stop it; its output is
        # read meanwhile, so that a full pipe never blocks it
        outputs = {}
        readers = [threading.Thread(target=lambda name=name, pipe=pipe: outputs.__setitem__(
            name, pipe.read())) for name, pipe in (("out", proc.stdout), ("err", proc.stderr))]
        for reader in readers:
            reader.start()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        for reader in readers:
            reader.join(timeout=10)
        stdout, stderr = first.encode() + outputs.get("out", b""), outputs.get("err", b"")
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr.decode()[-2000:]
    assert "stopped by Ctrl-C" in stdout.decode()
    [record] = json.loads(out.read_text())["results"]
    assert record["interrupted"] is True and record["windows"]
    assert record["segments"][0]["class_name"] == CLASSES[0]
    assert video.stat().st_size > 0


def test_folder_gives_one_annotated_video_and_picture_per_input(tmp_path):
    import av

    folder = tmp_path / "videos"
    folder.mkdir()
    os.symlink(three_action_video(), folder / "a.mp4")
    os.symlink(three_action_video(), folder / "b.mp4")
    out = tmp_path / "out"
    proc = run_tool("--input_file", str(folder), "--timeline", "--stride", "1",
                    "--output_video", str(out), "--output_timeline_png", str(out),
                    "--output", str(tmp_path / "all.json"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "a_timeline.png", "b.mp4",
                                                     "b_timeline.png"]
    records = json.loads((tmp_path / "all.json").read_text())["results"]
    assert [r["output_video"] for r in records] == [str(out / "a.mp4"), str(out / "b.mp4")]
    with av.open(str(out / "b.mp4")) as container:
        assert container.streams.video[0].frames == 180
