"""Per-view latency of SlowFast 4x16 at 256 in every engine and precision, side by side.

    python benchmarks/inference_speed.py [--rounds 3 --threads N --batch 4 --calib_clips 8]

Prints the CPU model and the features the engines use, writes a 10-second 340x256 30 fps H.264
video into a temporary folder, builds the 4x16 model from slowfast.yaml (random weights: speed
does not depend on their values), exports it (.pdmodel, ONNX, OpenVINO IR), quantizes the IR to
int8 with NNCF on ``--calib_clips`` clips of the video, and times the model on preprocessed views
at batch 1 and at ``--batch`` (the timeline's batch) for:
  the dynamic graph (eval, ``paddle.no_grad``); Paddle Inference without and with oneDNN (fp32);
  ONNX Runtime; OpenVINO fp32, bf16 (where the CPU has AVX512-BF16 or AMX) and int8,
each as ms per view and its ratio to Paddle Inference + oneDNN. All use ``--threads`` threads;
medians over rounds, after one warm-up run each. Preprocessing (decode included) is timed once.
Targets (batch 1): Paddle Inference + oneDNN >= 4x the dynamic graph per video (preprocessing
included) with preprocessing under 25% of it; OpenVINO fp32 >= 1.2x, bf16 >= 2.2x, int8 >= 3x
Paddle Inference + oneDNN. Exit status 1 if a target is missed. ``-o KEY=VALUE`` shrinks the
model for a quick smoke run (e.g. ``-o MODEL.backbone.width_per_group=8``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "recognition", "slowfast", "slowfast.yaml")
SPEEDUP_TARGET, PREPROCESS_SHARE_TARGET = 4.0, 0.25
BASE = "Paddle Inference + oneDNN"
ENGINE_TARGETS = {"OpenVINO fp32": 1.2, "OpenVINO bf16": 2.2, "OpenVINO int8": 3.0}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="CPU threads for every engine (default: all cores)")
    parser.add_argument("--batch", type=int, default=4,
                        help="the second batch size timed (the timeline's)")
    parser.add_argument("--calib_clips", type=int, default=8,
                        help="clips NNCF calibrates the int8 model on")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="config override (a smaller model for a smoke run)")
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


def time_model(run: Callable, slow, fast, rounds: int) -> float:
    """Median seconds of ``run(slow, fast)`` after one warm-up."""
    import numpy as np

    run(slow, fast)  # the first run pays for allocation and kernel selection
    samples: List[float] = []
    for _ in range(rounds):
        start = time.perf_counter()
        run(slow, fast)
        samples.append(time.perf_counter() - start)
    return float(np.median(samples))


def time_preprocess(cfg, video: str, rounds: int) -> Tuple[float, Tuple]:
    """Median seconds to decode and preprocess one view, and the view ``(slow, fast)``."""
    import numpy as np

    from paddlevideo.inference import ClipPreprocessor

    samples, clip = [], None
    for _ in range(rounds + 1):
        # A fresh pipeline each time: the test-mode decoder keeps the last clip it decoded.
        start = time.perf_counter()
        clip = ClipPreprocessor(cfg, num_views=1)(video)
        samples.append(time.perf_counter() - start)
    return float(np.median(samples[1:])), clip


def int8_model(ir: str, cfg, video: str, clips: int, out_dir: str) -> Optional[str]:
    """NNCF int8 of the IR calibrated on ``clips`` views of ``video``; None without nncf."""
    try:
        import nncf  # noqa: F401
    except ImportError:
        print("note: nncf not installed, int8 left out (pip install nncf)")
        return None
    import openvino as ov

    from paddlevideo.inference import ClipPreprocessor
    from paddlevideo.inference.quantize import quantize_clips, read_float_model

    slow, fast = ClipPreprocessor(cfg, num_views=clips)(video)
    calibration = [(slow[i:i + 1], fast[i:i + 1]) for i in range(clips)]
    path = os.path.join(out_dir, "SlowFast_int8.xml")
    ov.save_model(quantize_clips(read_float_model(ir), calibration, "fast"), path,
                  compress_to_fp16=False)
    return path


def build_engines(cfg, model, video: str, out_dir: str, args) -> Dict[str, Callable]:
    from paddlevideo.inference import EngineOptions, create_engine, export_inference_model
    from paddlevideo.inference.export import dynamic_probs
    from paddlevideo.inference.openvino_engine import cpu_has_bf16

    threads = args.threads
    pdmodel = export_inference_model(model, cfg, out_dir, "SlowFast", "pdmodel")
    onnx = export_inference_model(model, cfg, out_dir, "SlowFast", "onnx")
    ir = export_inference_model(model, cfg, out_dir, "SlowFast", "openvino")
    engines: Dict[str, Callable] = {
        "dynamic graph (eval)": lambda slow, fast: dynamic_probs(model, slow, fast)}
    for label, mkldnn in (("Paddle Inference", False), (BASE, True)):
        engines[label] = create_engine(pdmodel["model"], pdmodel["params"], EngineOptions(
            engine="paddle", enable_mkldnn=mkldnn, cpu_threads=threads)).run
    engines["ONNX Runtime"] = create_engine(onnx["model"], options=EngineOptions(
        engine="onnxruntime", cpu_threads=threads)).run
    precisions = ["fp32"] + (["bf16"] if cpu_has_bf16() else [])
    for precision in precisions:
        engines[f"OpenVINO {precision}"] = create_engine(ir["model"], options=EngineOptions(
            engine="openvino", precision=precision, cpu_threads=threads)).run
    int8 = int8_model(ir["model"], cfg, video, args.calib_clips, out_dir)
    if int8:
        engines["OpenVINO int8"] = create_engine(int8, options=EngineOptions(
            precision="int8", cpu_threads=threads)).run
    return engines


def check_targets(results: Dict[str, Dict[int, float]], preprocess: float) -> bool:
    """Print each target with its measured value; True when all are met."""
    base = results[BASE][1]
    dynamic = (results["dynamic graph (eval)"][1] + preprocess) / (base + preprocess)
    share = preprocess / (preprocess + base)
    checks = [(f"{BASE} >= {SPEEDUP_TARGET:g}x dynamic graph per video (preprocessing "
               f"included): {dynamic:.2f}x", dynamic >= SPEEDUP_TARGET),
              (f"preprocessing < {PREPROCESS_SHARE_TARGET:.0%} of {BASE}'s total: "
               f"{share:.1%}", share < PREPROCESS_SHARE_TARGET)]
    for label, target in ENGINE_TARGETS.items():
        if label in results:
            ratio = base / results[label][1]
            checks.append((f"{label} >= {target:g}x {BASE}: {ratio:.2f}x", ratio >= target))
        else:
            print(f"target: {label} >= {target:g}x {BASE}: not measured on this machine")
    for text, met in checks:
        print(f"target: {text} {'met' if met else 'MISSED'}")
    return all(met for _, met in checks)


def main() -> int:
    args = parse_args()
    # The dynamic graph takes its thread count from these, read when paddle loads.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    sys.path.insert(0, ROOT)
    import numpy as np
    import paddle

    from paddlevideo.modeling import build_model
    from paddlevideo.utils import get_config
    from paddlevideo.utils.cpu_features import cpu_description

    cfg = get_config(CONFIG, overrides=args.override)
    print(f"CPU: {cpu_description()}")
    with tempfile.TemporaryDirectory(prefix="inference_speed_") as tmp:
        video = os.path.join(tmp, "video_10s_340x256.mp4")
        make_video(video)
        paddle.seed(0)
        model = build_model(cfg.MODEL)
        model.eval()
        engines = build_engines(cfg, model, video, os.path.join(tmp, "export"), args)
        preprocess, (slow, fast) = time_preprocess(cfg, video, args.rounds)
        batches = {1: (slow, fast),
                   args.batch: (np.repeat(slow, args.batch, 0), np.repeat(fast, args.batch, 0))}
        print(f"SlowFast 4x16, views of {list(fast.shape[1:])}, {args.threads} threads, median "
              f"of {args.rounds} rounds; preprocessing {1000 * preprocess:.1f} ms per view")
        print(f"{'engine':<28}{'ms/view b1':>11}{'vs base':>9}"
              f"{f'ms/view b{args.batch}':>12}{'vs base':>9}")
        results: Dict[str, Dict[int, float]] = {}
        for label, run in engines.items():
            results[label] = {b: time_model(run, *arrays, args.rounds) / b
                              for b, arrays in batches.items()}
        for label, per_view in results.items():
            row = f"{label:<28}"
            for b in batches:
                row += f"{1000 * per_view[b]:>11.1f}{results[BASE][b] / per_view[b]:>8.2f}x"
            print(row)
    return 0 if check_targets(results, preprocess) else 1


if __name__ == "__main__":
    sys.exit(main())
