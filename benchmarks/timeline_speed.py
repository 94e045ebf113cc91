"""Timeline speed: seconds of video per second of wall time, side by side in one run.

    python benchmarks/timeline_speed.py [--seconds 60 --naive_seconds 10 --threads N]

Writes a 640x360 30 fps H.264 video of ``--seconds`` into a temporary folder, builds SlowFast
4x16 at 256 from slowfast.yaml (random weights: speed does not depend on their values), exports
it for Paddle Inference (oneDNN, ``--threads`` threads) and measures, with a 1 s stride:
  (0) the model alone on windows preprocessed beforehand (the bound for the others);
  (a) ``Predictor.timeline`` (decoding and preprocessing in a thread beside the model);
  (b) the same writing the annotated video (``output_video``);
  (a') ``Predictor.timeline`` with the fastest engine (``auto`` on the OpenVINO IR: bf16 where
      the CPU has it);
  (c) the naive way in one process: per window, cut the window out into a clip file (decode
      from a seek, re-encode) and call ``Predictor.predict`` on it; run on the windows of the
      first ``--naive_seconds`` and reported as strides covered per wall second, so it
      compares with (a) as is;
  (d) the naive way from the shell: the same cut clips, one ``tools/predict.py`` command each
      (``--naive_cli_windows`` of them).
Then the peak memory (max RSS of a child process) of (a) on a 1-minute and a 10-minute video
(``--memory_minutes``), measured with the narrow test model (width 8, 8 frames, 64 px) so that
it finishes in minutes; the frames and windows held are the same kind as for the full model.
Targets: (a) >= 1.0x real time, (b) within 15% of (a), (a) >= 5x (c) and (d), (a') >= 5x real
time, 10-minute peak within 10% of the 1-minute one. Prints the ratios; exit status 1 if a
target is missed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from typing import Dict, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "recognition", "slowfast", "slowfast.yaml")
FASTEST_TARGET = 5.0  # seconds of video per wall second, fastest engine, 1 s stride
NARROW = ["MODEL.backbone.width_per_group=8", "MODEL.head.width_per_group=8",
          "INFERENCE.num_frames=8", "INFERENCE.target_size=64"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--naive_seconds", type=int, default=10)
    parser.add_argument("--naive_cli_windows", type=int, default=3)
    parser.add_argument("--stride", type=float, default=1.0)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--memory_minutes", type=int, nargs=2, default=[1, 10])
    parser.add_argument("--skip_memory", action="store_true")
    parser.add_argument("--skip_speed", action="store_true")
    parser.add_argument("--memory_child", nargs=3, metavar=("VIDEO", "MODEL_DIR", "CONFIG"),
                        help=argparse.SUPPRESS)
    return parser.parse_args()


def make_video(path: str, seconds: int, width: int = 640, height: int = 360,
               fps: int = 30) -> None:
    """A panning texture with a moving disc, encoded frame by frame (never all in memory)."""
    import av
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    coarse = rng.uniform(0, 255, (height // 8, width // 4, 3)).astype(np.float32)
    texture = np.clip(cv2.resize(coarse, (width * 3, height), interpolation=cv2.INTER_CUBIC),
                      0, 255).astype(np.uint8)
    total = seconds * fps
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for t in range(total):
            shift = (t * 3) % (width * 2)
            frame = np.ascontiguousarray(texture[:, shift: shift + width])
            cv2.circle(frame, (int(width * (0.1 + 0.8 * (t % 150) / 150)), height // 2),
                       height // 6, (250, 40, 40), -1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def export_model(overrides, out_dir: str,
                 fmt: str = "pdmodel") -> Tuple[Dict[str, str], str]:
    import paddle

    from paddlevideo.inference import export_inference_model
    from paddlevideo.modeling import build_model
    from paddlevideo.utils import dump_config, get_config

    cfg = get_config(CONFIG, overrides=overrides)
    paddle.seed(0)
    model = build_model(cfg.MODEL)
    model.eval()
    paths = export_inference_model(model, cfg, out_dir, "SlowFast", fmt)
    config_path = os.path.join(out_dir, "config.yaml")
    dump_config(cfg, config_path)
    return paths, config_path


def make_predictor(paths: Dict[str, str], config: str, threads: int, batch_size: int,
                   engine: str = "paddle"):
    """Paddle Inference + oneDNN, or (``engine="auto"``) the fastest engine for the export."""
    from paddlevideo.inference import EngineOptions, Predictor

    options = EngineOptions(engine=engine, enable_mkldnn=True, cpu_threads=threads,
                            batch_size=batch_size)
    return Predictor(paths["model"], paths.get("params"), config, engine=options)


def fastest_engine_run(args: argparse.Namespace, video: str, warm: str, tmp: str):
    """``(name, (speed, windows, wall s, model s))`` of the timeline with the fastest engine
    (``auto`` on the OpenVINO IR of the same model)."""
    paths, config = export_model([], os.path.join(tmp, "full_openvino"), "openvino")
    predictor = make_predictor(paths, config, args.threads, args.batch_size, engine="auto")
    predictor.timeline(warm, stride=args.stride)
    model_before = predictor.timings.model
    result = predictor.timeline(video, stride=args.stride)
    name = f"timeline, fastest engine ({predictor.engine_choice.describe()})"
    return name, (result.speed, len(result.windows), result.wall_seconds,
                  predictor.timings.model - model_before)


def window_starts(predictor, seconds: int, stride: float) -> Tuple[list, int]:
    """Start frames of the windows of the first ``seconds`` of a 30 fps video, and the frames
    a window spans."""
    from paddlevideo.inference import WindowPreprocessor

    plan = WindowPreprocessor(predictor.preprocess).plan(30.0, stride)
    span, starts = int(math.ceil(plan.span)), []
    while plan.start(len(starts)) + span <= seconds * 30:
        starts.append(plan.start(len(starts)))
    return starts, span


def cut_clip(video: str, start: int, span: int, out: str) -> None:
    """Frames ``[start, start + span)`` of a 30 fps ``video`` re-encoded into ``out``, as a
    user cutting windows out of a long video does (seek to a key frame, decode, encode)."""
    import av
    import numpy as np

    from paddlevideo.loader.demo_data import encode_h264

    with av.open(video) as container:
        stream = container.streams.video[0]
        container.seek(int(start / 30 / stream.time_base), stream=stream, backward=True)
        frames = []
        for frame in container.decode(stream):
            if int(round(frame.pts * stream.time_base * 30)) >= start:
                frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == span:
                break
    encode_h264(out, np.stack(frames), 30)


def model_alone(predictor, video: str, seconds: int, stride: float) -> Tuple[float, int, float]:
    """``(speed, windows, model seconds)`` of the model by itself on the windows of the first
    ``seconds``, preprocessed beforehand: the bound the timeline can reach."""
    import numpy as np

    from paddlevideo.inference import WindowPreprocessor
    from paddlevideo.inference.frame_stream import FrameStream

    windows = WindowPreprocessor(predictor.preprocess)
    starts, span = window_starts(predictor, seconds, stride)
    frames = [frame for (_, frame), _ in zip(FrameStream(video), range(starts[-1] + span))]
    plan = windows.plan(30.0, stride)
    clips = [windows(np.stack([frames[i] for i in plan.frame_indices(k)]))
             for k in range(len(starts))]
    started = time.perf_counter()
    for slow, fast in clips:
        predictor.run_model(slow[None], fast[None])
    wall = time.perf_counter() - started
    return len(starts) * stride / wall, len(starts), wall


def naive_speed(predictor, video: str, seconds: int, stride: float,
                folder: str) -> Tuple[float, int, float]:
    """``(speed, windows, wall seconds)`` when each window is cut into a clip file and given
    to ``Predictor.predict`` in this process; each window moves the timeline on by one
    stride, so speed compares with (a) as is."""
    starts, span = window_starts(predictor, seconds, stride)
    started = time.perf_counter()
    for start in starts:
        clip = os.path.join(folder, "cut.mp4")
        cut_clip(video, start, span, clip)
        predictor.predict(clip)
    wall = time.perf_counter() - started
    return len(starts) * stride / wall, len(starts), wall


def naive_cli_speed(predictor, paths: Dict[str, str], config: str, video: str, windows: int,
                    stride: float, threads: int, folder: str) -> Tuple[float, int, float]:
    """As :func:`naive_speed`, but one ``tools/predict.py`` command per cut clip (a shell
    loop over clips), on the first ``windows`` windows."""
    starts, span = window_starts(predictor, 10**4, stride)
    started = time.perf_counter()
    for start in starts[:windows]:
        clip = os.path.join(folder, "cut.mp4")
        cut_clip(video, start, span, clip)
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "predict.py"),
                        "--input_file", clip, "--config", config, "--model_file",
                        paths["model"], "--params_file", paths["params"], "--use_gpu=False",
                        "--cpu_threads", str(threads)], check=True, capture_output=True,
                       cwd=ROOT)
    wall = time.perf_counter() - started
    return windows * stride / wall, windows, wall


def memory_child(video: str, model_dir: str, config: str) -> None:
    """Run a timeline and print its peak RSS (MB) as JSON (the parent compares two).

    The peak is ``VmHWM`` of ``/proc/self/status``: it belongs to this process's own memory
    map, whereas ``getrusage``'s ``ru_maxrss`` carries the parent's peak over ``fork``.
    """
    paths = {"model": os.path.join(model_dir, "SlowFast.pdmodel"),
             "params": os.path.join(model_dir, "SlowFast.pdiparams")}
    predictor = make_predictor(paths, config, 1, 1)
    result = predictor.timeline(video, stride=1.0)
    with open("/proc/self/status", encoding="ascii") as status:
        peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    peak_mb = peak_kb / 1024
    print(json.dumps({"peak_mb": peak_mb, "windows": len(result.windows),
                      "duration": result.duration}))


def peak_memory(video: str, model_dir: str, config: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--memory_child", video, model_dir, config],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def speed_runs(args: argparse.Namespace, tmp: str) -> bool:
    """Runs (a), (b), (c) on the full model; prints the table; True if the targets are met."""
    video = os.path.join(tmp, "video.mp4")
    make_video(video, args.seconds)
    paths, config = export_model([], os.path.join(tmp, "full"))
    predictor = make_predictor(paths, config, args.threads, args.batch_size)
    warm = os.path.join(tmp, "warm.mp4")
    make_video(warm, 3)
    predictor.timeline(warm, stride=args.stride)  # kernel selection, caches
    runs = {}
    speed, windows, wall = model_alone(predictor, video, min(args.naive_seconds, args.seconds),
                                       args.stride)
    runs[f"model alone on preprocessed windows (first {args.naive_seconds} s)"] = (
        speed, windows, wall, wall)
    for name, output in (("timeline", None),
                         ("timeline + annotated video", os.path.join(tmp, "out.mp4"))):
        model_before = predictor.timings.model
        result = predictor.timeline(video, stride=args.stride, output_video=output)
        runs[name] = (result.speed, len(result.windows), result.wall_seconds,
                      predictor.timings.model - model_before)
    fastest_name, fastest = fastest_engine_run(args, video, warm, tmp)
    runs[fastest_name] = fastest
    model_before = predictor.timings.model
    naive, windows, wall = naive_speed(predictor, video, min(args.naive_seconds, args.seconds),
                                       args.stride, tmp)
    runs[f"naive: Predictor.predict per cut clip (first {args.naive_seconds} s)"] = (
        naive, windows, wall, predictor.timings.model - model_before)
    cli, windows, wall = naive_cli_speed(predictor, paths, config, video, args.naive_cli_windows,
                                         args.stride, args.threads, tmp)
    runs[f"naive: tools/predict.py per cut clip (first {windows} windows)"] = (
        cli, windows, wall, float("nan"))
    print(f"SlowFast 4x16 at 256, {args.seconds} s 640x360 30 fps video, stride "
          f"{args.stride} s, {args.threads} threads, batch {args.batch_size}")
    print("| run | video s / wall s | vs timeline | wall s / window | model s / window "
          "| other s / window |\n|---|---|---|---|---|---|")
    plain_speed = runs["timeline"][0]
    for name, (speed, count, wall, model) in runs.items():
        split = "n/a | n/a" if math.isnan(model) else \
            f"{model / count:.3f} | {(wall - model) / count:.3f}"
        print(f"| {name} | {speed:.2f} | {speed / plain_speed:.2f} | {wall / count:.3f} | "
              f"{split} |")
    annotated_speed = runs["timeline + annotated video"][0]
    checks = [(f"timeline >= 1x real time: {plain_speed:.2f}x", plain_speed >= 1.0),
              (f"annotated video within 15% of the timeline: {annotated_speed / plain_speed:.2f}",
               annotated_speed >= 0.85 * plain_speed),
              (f"timeline >= 5x the naive shell loop: {plain_speed / cli:.1f}x",
               plain_speed >= 5 * cli),
              (f"timeline >= 5x the naive in-process loop: {plain_speed / naive:.1f}x",
               plain_speed >= 5 * naive),
              (f"fastest engine's timeline >= {FASTEST_TARGET:g}x real time: {fastest[0]:.2f}x",
               fastest[0] >= FASTEST_TARGET)]
    for text, met in checks:
        print(f"target: {text} {'met' if met else 'MISSED'}")
    return all(met for _, met in checks)


def memory_runs(args: argparse.Namespace, tmp: str) -> bool:
    """Peak RSS of a timeline on the two video lengths (narrow model); True if within 10%."""
    narrow_paths, narrow_config = export_model(NARROW, os.path.join(tmp, "narrow"))
    peaks = []
    for minutes in args.memory_minutes:
        long_video = os.path.join(tmp, f"long_{minutes}.mp4")
        make_video(long_video, minutes * 60)
        peaks.append(peak_memory(long_video, os.path.dirname(narrow_paths["model"]),
                                 narrow_config))
        os.remove(long_video)
    print("| video | windows | peak RSS MB |\n|---|---|---|")
    for minutes, peak in zip(args.memory_minutes, peaks):
        print(f"| {minutes} min | {peak['windows']} | {peak['peak_mb']:.0f} |")
    ratio = peaks[1]["peak_mb"] / peaks[0]["peak_mb"]
    print(f"peak memory {args.memory_minutes[1]} min / {args.memory_minutes[0]} min: {ratio:.3f}")
    return ratio <= 1.10


def main() -> int:
    args = parse_args()
    sys.path.insert(0, ROOT)
    os.environ.setdefault("GLOG_minloglevel", "2")
    if args.memory_child:
        memory_child(*args.memory_child)
        return 0
    with tempfile.TemporaryDirectory(prefix="timeline_speed_") as tmp:
        ok = True if args.skip_speed else speed_runs(args, tmp)
        ok = (True if args.skip_memory else memory_runs(args, tmp)) and ok
    print("targets met" if ok else "a target was missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
