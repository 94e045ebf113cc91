"""Per-video prediction latency of SlowFast 4x16 at 256: dynamic graph vs exported engines.

    python benchmarks/inference_speed.py [--rounds 3 --threads N]

Writes a 10-second 340x256 30 fps H.264 video into a temporary folder, builds the 4x16 model from
slowfast.yaml (random weights: speed does not depend on their values), exports it as .pdmodel and
ONNX, and times one view at batch 1 through the same deterministic preprocessing (decode
included) for:
  (a) the dynamic-graph model in eval mode under ``paddle.no_grad``;
  (b) Paddle Inference without oneDNN (MKLDNN); (c) Paddle Inference with oneDNN;
  (d) ONNX Runtime.
All use the same number of CPU threads. Medians over rounds, after one warm-up run each.
Targets: (c) at least 4x faster than (a) in total per-video time; preprocessing under 25% of
(c)'s total. Exit status 1 if a target is missed.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Callable, Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "recognition", "slowfast", "slowfast.yaml")
SPEEDUP_TARGET, PREPROCESS_SHARE_TARGET = 4.0, 0.25


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="CPU threads for every engine (default: all cores)")
    return parser.parse_args()


def make_video(path: str, width: int = 340, height: int = 256, seconds: int = 10,
               fps: int = 30) -> None:
    """A panning texture with a moving disc, so the encoder sees natural-looking motion."""
    import cv2
    import numpy as np

    from paddlevideo.loader.demo_data import encode_h264

    rng = np.random.default_rng(0)
    coarse = rng.uniform(0, 255, (height // 8, width // 4, 3)).astype(np.float32)
    texture = cv2.resize(coarse, (width * 2, height), interpolation=cv2.INTER_CUBIC)
    frames = np.empty((seconds * fps, height, width, 3), np.uint8)
    for t in range(len(frames)):
        frame = np.clip(texture[:, t: t + width], 0, 255).astype(np.uint8)
        cv2.circle(frame, (int(width * (0.2 + 0.6 * t / len(frames))), height // 2),
                   height // 6, (250, 40, 40), -1)
        frames[t] = frame
    encode_h264(path, frames, fps)


def time_runs(preprocess: Callable, run: Callable, video: str,
              rounds: int) -> Tuple[float, float]:
    """Median ``(preprocess seconds, model seconds)`` per video after one warm-up."""
    import numpy as np

    samples: List[Tuple[float, float]] = []
    for index in range(rounds + 1):
        start = time.perf_counter()
        slow, fast = preprocess(video)
        mid = time.perf_counter()
        run(slow, fast)
        end = time.perf_counter()
        if index:  # the first run pays for allocation and kernel selection
            samples.append((mid - start, end - mid))
    return float(np.median([s[0] for s in samples])), float(np.median([s[1] for s in samples]))


def build_engines(cfg, model, out_dir: str, threads: int) -> Dict[str, Callable]:
    from paddlevideo.inference import EngineOptions, create_engine, export_inference_model
    from paddlevideo.inference.export import dynamic_probs

    pdmodel = export_inference_model(model, cfg, out_dir, "SlowFast", "pdmodel")
    onnx = export_inference_model(model, cfg, out_dir, "SlowFast", "onnx")
    engines: Dict[str, Callable] = {
        "dynamic graph (eval)": lambda slow, fast: dynamic_probs(model, slow, fast)}
    for label, mkldnn in (("Paddle Inference", False), ("Paddle Inference + MKLDNN", True)):
        engine = create_engine(pdmodel["model"], pdmodel["params"],
                               EngineOptions(enable_mkldnn=mkldnn, cpu_threads=threads))
        engines[label] = engine.run
    engines["ONNX Runtime"] = create_engine(onnx["model"],
                                            options=EngineOptions(cpu_threads=threads)).run
    return engines


def main() -> int:
    args = parse_args()
    # The dynamic graph takes its thread count from these, read when paddle loads.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    sys.path.insert(0, ROOT)
    import paddle

    from paddlevideo.inference import ClipPreprocessor
    from paddlevideo.modeling import build_model
    from paddlevideo.utils import get_config

    cfg = get_config(CONFIG)
    with tempfile.TemporaryDirectory(prefix="inference_speed_") as tmp:
        video = os.path.join(tmp, "video_10s_340x256.mp4")
        make_video(video)
        paddle.seed(0)
        model = build_model(cfg.MODEL)
        model.eval()
        engines = build_engines(cfg, model, os.path.join(tmp, "export"), args.threads)

        def preprocess(path: str):
            # A fresh pipeline each time: the test-mode decoder keeps the last clip it decoded,
            # and a repeated video must be decoded again to measure decoding.
            return ClipPreprocessor(cfg, num_views=1)(path)

        print(f"SlowFast 4x16, one view of 32x256x256 at batch 1, {args.threads} threads, "
              f"10 s 340x256 video, median of {args.rounds} rounds")
        print(f"{'engine':<28}{'preprocess s':>13}{'model s':>10}{'total s':>10}"
              f"{'preproc %':>11}{'speed-up':>10}")
        results = {}
        for label, run in engines.items():
            pre, net = time_runs(preprocess, run, video, args.rounds)
            results[label] = (pre, net)
            base = sum(results["dynamic graph (eval)"])
            print(f"{label:<28}{pre:>13.3f}{net:>10.3f}{pre + net:>10.3f}"
                  f"{100 * pre / (pre + net):>10.1f}%{base / (pre + net):>9.2f}x")
    base = sum(results["dynamic graph (eval)"])
    pre, net = results["Paddle Inference + MKLDNN"]
    speedup, share = base / (pre + net), pre / (pre + net)
    ok_speed, ok_share = speedup >= SPEEDUP_TARGET, share < PREPROCESS_SHARE_TARGET
    print(f"target: Paddle Inference + MKLDNN >= {SPEEDUP_TARGET:g}x dynamic graph: "
          f"{speedup:.2f}x {'met' if ok_speed else 'MISSED'}")
    print(f"target: preprocessing < {PREPROCESS_SHARE_TARGET:.0%} of the total: "
          f"{share:.1%} {'met' if ok_share else 'MISSED'}")
    return 0 if ok_speed and ok_share else 1


if __name__ == "__main__":
    sys.exit(main())
