"""``main.py --test`` as a whole run: the dynamic graph against the CPU fast path, side by side.

    python benchmarks/test_speed.py [--config configs/recognition/slowfast/slowfast_small.yaml
                                     --videos 24 --rounds 1 --views 10x3]

Writes ``--videos`` synthetic motion videos (8 classes, 160x120, 64 frames) and a test list
into a temporary folder, saves the config's model with its initial weights (speed does not
depend on their values), then runs ``main.py --test -c CONFIG -w W`` as a fresh process, A B A
B for ``--rounds`` rounds: once with ``-o cpu_fast_path=dygraph`` (the backbone's eval forward
in the dynamic graph) and once with the default ``auto`` (the inference engine on an in-memory
export, every core). Prints the wall time of each whole run (start-up, decoding, export and the
engine included), the ratio, the engine the fast path used, and whether the two runs'
``test_predictions.csv`` give the same top-1 per video. Target: the fast path at least 2x
faster as a whole run; exit status 1 if it is missed or a top-1 differs.
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEEDUP_TARGET = 2.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=os.path.join(
        ROOT, "configs", "recognition", "slowfast", "slowfast_small.yaml"))
    parser.add_argument("--videos", type=int, default=24, help="test videos (8 classes)")
    parser.add_argument("--rounds", type=int, default=1, help="A B rounds")
    parser.add_argument("--views", default="10x3",
                        help="temporal x spatial views per video (PaddleVideo's test: 10x3)")
    return parser.parse_args()


def prepare(folder: str, args: argparse.Namespace) -> Tuple[str, List[str]]:
    """The weights file and the ``-o`` overrides every run shares."""
    import paddle

    from paddlevideo.loader.demo_data import make_demo_dataset
    from paddlevideo.modeling import build_model
    from paddlevideo.utils import get_config

    per_class = max(1, args.videos // 8)
    data = make_demo_dataset(os.path.join(folder, "data"), classes=8, train_per_class=0,
                             val_per_class=per_class, seed=0, width=160, height=120,
                             frames=64, fps=30, workers=2)
    temporal, spatial = (int(x) for x in args.views.lower().split("x"))
    overrides = [f"label_file={data['label_list']}", "MODEL.head.num_classes=8",
                 f"DATASET.test.file_path={data['val_list']}",
                 f"DATASET.test.num_ensemble_views={temporal}",
                 f"DATASET.test.num_spatial_crops={spatial}",
                 f"METRIC.num_ensemble_views={temporal}", f"METRIC.num_spatial_crops={spatial}"]
    cfg = get_config(args.config, overrides=overrides)
    paddle.seed(0)
    weights = os.path.join(folder, "initial.pdparams")
    paddle.save(build_model(cfg.MODEL).state_dict(), weights)
    return weights, overrides


def run_test(args: argparse.Namespace, weights: str, overrides: List[str], path: str,
             out_dir: str) -> Tuple[float, str]:
    """Wall seconds of one whole ``main.py --test`` process and its log."""
    command = [sys.executable, os.path.join(ROOT, "main.py"), "--test", "-c", args.config,
               "-w", weights]
    for item in overrides + [f"cpu_fast_path={path}", f"output_dir={out_dir}"]:
        command += ["-o", item]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"main.py --test ({path}) failed:\n{proc.stderr[-3000:]}")
    with open(os.path.join(out_dir, "test.log")) as f:
        return seconds, f.read()


def top1_per_video(out_dir: str) -> Dict[str, str]:
    with open(os.path.join(out_dir, "test_predictions.csv")) as f:
        return {row["video"]: row["top1_id"] for row in csv.DictReader(f)}


def main() -> int:
    args = parse_args()
    sys.path.insert(0, ROOT)
    from paddlevideo.utils.cpu_features import cpu_description

    print(f"CPU: {cpu_description()}")
    times: Dict[str, List[float]] = {"dygraph": [], "auto": []}
    with tempfile.TemporaryDirectory(prefix="test_speed_") as folder:
        weights, overrides = prepare(folder, args)
        engine = ""
        for round_ in range(args.rounds):
            for path in ("dygraph", "auto"):
                out_dir = os.path.join(folder, f"{path}_{round_}")
                seconds, log = run_test(args, weights, overrides, path, out_dir)
                times[path].append(seconds)
                found = re.search(r"Test forward: (.+?) on (\d+) CPU threads", log)
                engine = engine or (f"{found.group(1)}, {found.group(2)} threads" if found
                                    and path == "auto" else "")
                print(f"round {round_ + 1}: {path:8s} {seconds:7.1f} s", flush=True)
        same = top1_per_video(os.path.join(folder, "dygraph_0")) == \
            top1_per_video(os.path.join(folder, "auto_0"))
    plain, fast = statistics.median(times["dygraph"]), statistics.median(times["auto"])
    ratio = plain / fast
    print(f"\n{os.path.basename(args.config)}, {args.videos} videos x {args.views} views, "
          f"median of {args.rounds} round(s)")
    print("| path | whole run s | speed-up |\n|---|---|---|")
    print(f"| dygraph (cpu_fast_path=dygraph) | {plain:.1f} | 1.00 |")
    print(f"| auto: {engine or 'no engine logged'} | {fast:.1f} | {ratio:.2f} |")
    print(f"\nsame top-1 per video: {'yes' if same else 'NO'}; target >= {SPEEDUP_TARGET}x: "
          f"{'met' if ratio >= SPEEDUP_TARGET else 'missed'}")
    return 0 if same and ratio >= SPEEDUP_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
