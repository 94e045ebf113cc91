"""The whole job on a fresh machine: demo data → train with validation → test → export → predict
→ the timeline of a stitched validation video.

    python tools/run_demo.py            (what `make demo` runs)

Each step runs the same command a user would type, printed before it runs.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "configs/recognition/slowfast/slowfast_demo.yaml"


def run(cmd: list, title: str) -> None:
    print(f"\n==> {title}\n$ {' '.join(shlex.quote(c) for c in cmd)}", flush=True)
    start = time.time()
    # Paddle computes on one CPU thread unless told otherwise; the demo uses every core
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    result = subprocess.run(cmd, cwd=ROOT, env=env)
    if result.returncode != 0:
        sys.exit(f"demo step failed ({title}), exit code {result.returncode}")
    print(f"    ({title}: {time.time() - start:.0f} s)", flush=True)


def stitch_validation_videos(val_list: str, out_path: str, classes: int = 4,
                             per_class: int = 2) -> list:
    """Join the first ``per_class`` validation videos of each of the first ``classes`` labels
    into one H.264 video (a long video holding several actions); returns ``(label, seconds)``
    per part, in order."""
    sys.path.insert(0, ROOT)
    import numpy as np

    from paddlevideo.loader.demo_data import encode_h264
    from paddlevideo.loader.pipelines.decode import VideoSource

    chosen: dict = {}
    with open(val_list, encoding="utf-8") as f:
        for line in f:
            path, label = line.rsplit(maxsplit=1)
            if len(chosen.get(label, [])) < per_class and (label in chosen or
                                                           len(chosen) < classes):
                chosen.setdefault(label, []).append(path)
    parts, frames, fps = [], [], 30.0
    for label, paths in chosen.items():
        for path in paths:
            source = VideoSource(path, "pyav")
            frames.append(source.get_frames(np.arange(source.num_frames)))
            fps = source.fps
            source.close()
        parts.append((label, sum(len(f) for f in frames[-len(paths):]) / fps))
    encode_h264(out_path, np.concatenate(frames), fps)
    return parts


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default="data/demo")
    parser.add_argument("--output_dir", default="output/SlowFastDemo")
    parser.add_argument("--export_dir", default="inference/SlowFastDemo")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument("--train_per_class", type=int, default=None,
                        help="training videos per class (default: make_demo_data.py's)")
    parser.add_argument("--val_per_class", type=int, default=None,
                        help="validation videos per class (default: make_demo_data.py's)")
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args()
    py = sys.executable
    start = time.time()
    data_dir = args.data_dir
    overrides = ["-o", f"DATASET.train.file_path={data_dir}/train.list",
                 "-o", f"DATASET.valid.file_path={data_dir}/val.list",
                 "-o", f"DATASET.test.file_path={data_dir}/val.list",
                 "-o", f"label_file={data_dir}/label_list.txt",
                 "-o", f"output_dir={args.output_dir}"]
    if args.epochs:
        overrides += ["-o", f"epochs={args.epochs}",
                      "-o", f"OPTIMIZER.learning_rate.max_epoch={args.epochs}"]
    if not os.path.isfile(os.path.join(ROOT, data_dir, "val.list")):
        sizes = [arg for name in ("train_per_class", "val_per_class")
                 if getattr(args, name) for arg in (f"--{name}", str(getattr(args, name)))]
        run([py, "tools/make_demo_data.py", data_dir, *sizes], "generate the demo dataset")
    else:
        print(f"==> demo dataset already in {data_dir} (delete it to regenerate)")
    run([py, "main.py", "-c", CONFIG, "--validate", *overrides], "train with validation")
    best = os.path.join(args.output_dir, "SlowFastDemo_best.pdparams")
    run([py, "main.py", "--test", "-c", CONFIG, "-w", best, *overrides],
        "multi-view test of the best checkpoint")
    with open(os.path.join(ROOT, data_dir, "val.list"), encoding="utf-8") as f:
        video = f.readline().rsplit(maxsplit=1)[0]
    exported = os.path.join(ROOT, "tools", "export_model.py")
    if os.path.isfile(exported):
        run([py, "tools/export_model.py", "-c", CONFIG, "-p", best, "-o", args.export_dir],
            "export for Paddle Inference")
        # the predictions run on the fastest CPU engine: OpenVINO reads its own IR
        model_args = ["--model_file", f"{args.export_dir}/SlowFastDemo.pdmodel",
                      "--params_file", f"{args.export_dir}/SlowFastDemo.pdiparams"]
        if openvino_installed():
            run([py, "tools/export_model.py", "-c", CONFIG, "-p", best, "-o", args.export_dir,
                 "--format", "openvino"], "export for OpenVINO")
            model_args = ["--model_file", f"{args.export_dir}/SlowFastDemo.xml"]
        run([py, "tools/predict.py", "--input_file", video, "--config", CONFIG, *model_args,
             "--label_file", f"{data_dir}/label_list.txt", "--use_gpu=False"],
            "predict one demo video")
        timeline_outputs = demo_timeline(py, data_dir, model_args)
    print(f"\nDemo finished in {time.time() - start:.0f} s.\n"
          f"  data:        {data_dir}/ (train.list, val.list, label_list.txt, videos/)\n"
          f"  training:    {args.output_dir}/ (train.log, config.yaml, vdl/, checkpoints,"
          f" SlowFastDemo_best.pdparams)\n"
          f"  test:        {args.output_dir}/test_predictions.csv,"
          f" test_per_class_accuracy.csv\n"
          f"  inference:   {args.export_dir}/")
    if os.path.isfile(exported):
        print(f"  timeline:    {timeline_outputs}")
    return 0


def openvino_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def demo_timeline(py: str, data_dir: str, model_args: list) -> str:
    """Stitch validation videos of several classes into one and run the timeline on it."""
    stitched = os.path.join(data_dir, "stitched_val.mp4")
    print(f"\n==> stitch validation videos of several classes into {stitched}", flush=True)
    parts = stitch_validation_videos(os.path.join(ROOT, data_dir, "val.list"),
                                     os.path.join(ROOT, stitched))
    start = 0.0
    for label, seconds in parts:
        print(f"    {start:6.2f} - {start + seconds:6.2f} s  class {label}")
        start += seconds
    outputs = os.path.join(data_dir, "timeline")
    os.makedirs(os.path.join(ROOT, outputs), exist_ok=True)  # predict.py checks --output's folder
    run([py, "tools/predict.py", "--input_file", stitched, "--config", CONFIG, *model_args,
         "--label_file", f"{data_dir}/label_list.txt", "--use_gpu=False", "--timeline",
         "--output", f"{outputs}/timeline.json",
         "--output_video", f"{outputs}/stitched_val_annotated.mp4",
         "--output_timeline_png", f"{outputs}/timeline.png"],
        "timeline of the stitched validation video")
    return (f"{outputs}/ (timeline.json, timeline_segments.csv, stitched_val_annotated.mp4,"
            f" timeline.png)")


if __name__ == "__main__":
    sys.exit(main())
