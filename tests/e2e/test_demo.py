"""The user's journey of `make demo`, scaled down: data → train → test → export → predict →
timeline of a stitched validation video."""
import json
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_demo_runs_every_step_and_names_the_predicted_class(tmp_path):
    data, out, export = tmp_path / "data", tmp_path / "out", tmp_path / "inference"
    cmd = [sys.executable, "tools/run_demo.py", "--data_dir", str(data), "--output_dir", str(out),
           "--export_dir", str(export), "--epochs", "1", "--train_per_class", "2",
           "--val_per_class", "1"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    stdout = proc.stdout
    for step in ("generate the demo dataset", "train with validation",
                 "multi-view test of the best checkpoint", "export for Paddle Inference",
                 "predict one demo video", "timeline of the stitched validation video"):
        assert f"==> {step}" in stdout
    # 8 validation videos, one per class; the prediction names a class of the label map
    assert "over 8 videos" in stdout
    names = (data / "label_list.txt").read_text().split()[1::2]
    predicted = stdout.split("top-1 class name: ")[1].split()[0]
    assert predicted in names
    assert (export / "SlowFastDemo.pdmodel").is_file()
    assert (out / "SlowFastDemo_best.pdparams").is_file()
    assert (out / "test_predictions.csv").read_text().count("\n") == 9  # header + 8 videos
    assert "Demo finished" in stdout
    # one validation video of each of 4 classes (1 per class here), 32 frames each
    timeline = data / "timeline"
    [record] = json.loads((timeline / "timeline.json").read_text())["results"]
    assert abs(record["duration"] - 128 / 30) < 1e-3 and record["segments"]
    assert {s["class_name"] for s in record["segments"]} <= set(names)
    assert (timeline / "timeline_segments.csv").read_text().startswith("file,start,end")
    assert (timeline / "stitched_val_annotated.mp4").stat().st_size > 0
    assert (timeline / "timeline.png").is_file()
    assert f"timeline:    {data}/timeline/" in stdout
