"""Predict the action in a video (or in every video of a folder) with an exported model.

    python tools/predict.py --input_file data/example.avi \
        --config configs/recognition/slowfast/slowfast.yaml \
        --model_file inference/SlowFast/SlowFast.pdmodel \
        --params_file inference/SlowFast/SlowFast.pdiparams --use_gpu=False --use_tensorrt=False

Prints, per video, ``Current video file``, ``top-k class``, ``top-k score`` and the class name;
``--output results.json`` also writes every result as JSON. ``--timeline`` (or a URL, camera
index or ``-`` as input) slides the clip window over the whole video: windows, segments, a CSV,
annotated videos and pictures. The engine (``--engine``, ``--precision``) is printed once on
stderr. Exit status 1 if any video failed, 2 for arguments that cannot work (checked before any
work), 130 after Ctrl-C. ``--help`` lists every option.
"""
import argparse
import json
import os
import sys
import time
import warnings
from typing import List, Optional, Tuple

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
# Paddle warns at import about a compiler cache that only matters for custom C++ ops.
warnings.filterwarnings("ignore", message="No ccache found")
from paddlevideo.inference.engine_flags import (  # noqa: E402
    add_engine_arguments,
    engine_options,
    str2bool,
)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")



def parse_args(argv=None) -> argparse.Namespace:
    """PaddleVideo's predict flags (booleans spelled ``True``/``true``/``t``/``1`` or
    ``False``/``false``/``f``/``0``), plus ``--top_k``, ``--label_file``, ``--num_views`` and
    ``--output``."""
    parser = argparse.ArgumentParser(
        "Predict actions in videos with an exported SlowFast model",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("-i", "--input_file", required=True, help="a video file or a folder")
    parser.add_argument("-c", "--config", required=True, help="config file path")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="config override (e.g. INFERENCE.target_size=224)")
    parser.add_argument("--model_file", required=True,
                        help=".pdmodel, .json, .onnx or OpenVINO .xml")
    parser.add_argument("--params_file", default=None,
                        help=".pdiparams (for .pdmodel and .json only)")
    add_engine_arguments(parser)
    parser.add_argument("-b", "--batch_size", type=int, default=1,
                        help="videos per model run (folder input)")
    parser.add_argument("--enable_benchmark", type=str2bool, metavar="BOOL", default=False,
                        help="print preprocess / inference / postprocess ms per video (after "
                             "one warm-up run)")
    parser.add_argument("--time_test_file", type=str2bool, metavar="BOOL", default=False,
                        help="print the wall time of predicting the input (all its videos)")
    parser.add_argument("--top_k", type=int, default=1, help="classes printed per video")
    parser.add_argument("--label_file", default=None,
                        help="'<id> <name>' lines (default: the config's label_file, else "
                             "data/k400/Kinetics-400_label_list.txt)")
    parser.add_argument("--num_views", type=int, default=1,
                        help="clips spread over the video, scores averaged (1: the centred clip)")
    parser.add_argument("--output", default=None, help="write all results to this JSON file")
    # Timeline of long videos and live streams; a URL, camera index or '-' as --input_file
    # implies --timeline.
    timeline = parser.add_argument_group("timeline (long videos and live streams)")
    timeline.add_argument("--timeline", action="store_true",
                          help="slide the clip window over the whole video: windows, segments")
    timeline.add_argument("--stride", type=float, default=None,
                          help="seconds between windows (default: half a window)")
    timeline.add_argument("--output_video", default=None,
                          help="annotated copy of the video (a folder for several inputs)")
    timeline.add_argument("--output_timeline_png", default=None,
                          help="a picture of the timeline (a folder for several inputs)")
    timeline.add_argument("--max_seconds", type=float, default=None,
                          help="stop after this many seconds of video")
    timeline.add_argument("--live", type=str2bool, default=None,
                          help="skip windows to keep up with the source (default: True for "
                               "cameras, rtsp and rtmp)")
    timeline.add_argument("--reconnects", type=int, default=3,
                          help="reopen a dropped network stream this many times")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace):
    """The one-line reason the arguments cannot work, or None; checked before any work."""
    for name in ("batch_size", "top_k", "num_views", "gpu_mem"):
        if getattr(args, name) < 1:
            return f"--{name} must be at least 1, got {getattr(args, name)}"
    if args.cpu_threads is not None and args.cpu_threads < 1:
        return f"--cpu_threads must be at least 1, got {args.cpu_threads}"
    if args.output:
        folder = os.path.dirname(os.path.abspath(args.output))
        if os.path.isdir(args.output):
            return f"--output {args.output} is a folder; give a file name such as results.json"
        if not os.path.isdir(folder):
            return f"--output {args.output}: folder {folder} does not exist"
        if not os.access(folder, os.W_OK):
            return f"--output {args.output}: folder {folder} is not writable"
    return None


def print_benchmark(timings, batch_size: int) -> None:
    """Per-stage milliseconds per video, as PaddleVideo's benchmark reports them."""
    stages = timings.ms_per_video()
    print(f"[Benchmark] {timings.videos} videos, batch size {batch_size} (after one warm-up "
          f"run)")
    for name in ("preprocess", "inference", "postprocess", "total"):
        print(f"[Benchmark] {name}_time(ms): {stages[name]:.2f} per video")


def format_prediction(path: str, predictions) -> str:
    """PaddleVideo's lines for one video, plus the class name of each of the top k."""
    lines = [f"Current video file: {path}"]
    for rank, (class_id, name, score) in enumerate(predictions, start=1):
        lines += [f"\ttop-{rank} class: {class_id}", f"\ttop-{rank} score: {score}",
                  f"\ttop-{rank} class name: {name}"]
    return "\n".join(lines)


def predict_all(predictor, paths, batch_size: int, show_progress: bool):
    """Yield ``(path, predictions or None, error or None)``; a failing batch is retried video
    by video so one bad file does not hide the others."""
    from tqdm import tqdm

    from paddlevideo.loader import VideoDecodeError

    progress = tqdm(total=len(paths), unit="video", disable=not show_progress, file=sys.stderr)
    for start in range(0, len(paths), batch_size):
        batch = paths[start:start + batch_size]
        try:
            results = list(zip(batch, predictor.predict_batch(batch), [None] * len(batch)))
        except VideoDecodeError:
            results = []
            for path in batch:
                try:
                    results.append((path, predictor.predict(path), None))
                except VideoDecodeError as err:
                    results.append((path, None, err.reason))
        for result in results:
            progress.update(1)
            yield result
    progress.close()


def build_predictor(args: argparse.Namespace):
    """The Predictor the flags describe; the engine choice and the model files are checked
    first (a malformed file handed to Paddle can crash the process instead of raising)."""
    from paddlevideo.inference import Predictor
    from paddlevideo.inference.engines import check_model_files, choose_engine
    from paddlevideo.utils import get_config

    options = engine_options(args, args.batch_size)
    choose_engine(args.model_file, options)
    check_model_files(args.model_file, args.params_file)
    cfg = get_config(args.config, overrides=args.override)
    return Predictor(args.model_file, args.params_file, cfg, engine=options, top_k=args.top_k,
                     label_file=args.label_file, num_views=args.num_views)


def warm_up(predictor, batch_size: int) -> None:
    """One untimed model run on zero clips of the model's geometry, so the benchmark leaves out
    one-off set-up costs (a video is not used: its decoded frames would stay cached)."""
    import numpy as np

    shapes = predictor.preprocess.shapes
    batch = batch_size * predictor.preprocess.num_views
    predictor.engine.run(np.zeros(shapes.slow_shape(batch), np.float32),
                         np.zeros(shapes.fast_shape(batch), np.float32))


def wants_timeline(args: argparse.Namespace) -> bool:
    """``--timeline``, or an input that only a timeline can read (URL, camera, ``-``)."""
    from paddlevideo.inference.frame_stream import source_kind

    return bool(args.timeline) or source_kind(args.input_file) != "file"


def check_timeline_args(args: argparse.Namespace) -> Optional[str]:
    """The first problem with the timeline flags, as one line, or None."""
    from paddlevideo.inference.frame_stream import source_kind, stdin_is_terminal

    if args.stride is not None and args.stride <= 0:
        return f"--stride must be positive, got {args.stride}"
    if args.max_seconds is not None and args.max_seconds <= 0:
        return f"--max_seconds must be positive, got {args.max_seconds}"
    if args.reconnects < 0:
        return f"--reconnects must be 0 or more, got {args.reconnects}"
    kind = source_kind(args.input_file)
    if kind == "stdin" and stdin_is_terminal():
        return "--input_file -: standard input is a terminal; pipe a video into it"
    several = kind == "file" and os.path.isdir(args.input_file)
    if args.output_video and not several and not args.output_video.lower().endswith(
            VIDEO_SUFFIXES):
        return f"--output_video {args.output_video}: expected a file ending in " \
               f"{', '.join(VIDEO_SUFFIXES)}"
    for flag, target in (("--output_video", args.output_video),
                         ("--output_timeline_png", args.output_timeline_png)):
        # a read-only place fails only at the first frame written, deep in the encoder
        folder = target if target and several else os.path.dirname(os.path.abspath(target or "."))
        if target and os.path.isdir(folder) and not os.access(folder, os.W_OK):
            return f"{flag} {target}: folder {folder} is not writable"
    return None


def resolve_inputs(args: argparse.Namespace, timeline: bool) -> Tuple[Optional[str], List[str]]:
    """``(problem or None, inputs)``: the videos of a folder, the one file, or the stream."""
    from paddlevideo.inference import list_videos
    from paddlevideo.inference.frame_stream import source_kind

    is_file = source_kind(args.input_file) == "file"
    if is_file and not os.path.exists(args.input_file):
        return f"input not found: {args.input_file}", []
    if timeline:
        problem = check_timeline_args(args)
        if problem:
            return problem, []
    folder = is_file and os.path.isdir(args.input_file)
    paths = list_videos(args.input_file) if folder else [args.input_file]
    if not paths:
        return f"no video files in {args.input_file}", []
    return None, paths


def main(argv=None) -> int:
    args = parse_args(argv)
    problem = check_args(args)
    if problem:
        print(f"Error: {problem}", file=sys.stderr)
        return 2
    if args.disable_glog:
        # Paddle's C++ INFO lines ("New Executor is Running") would mix with the tool's output.
        os.environ.setdefault("GLOG_minloglevel", "1")
    # Paddle warns at import about a compiler cache that only matters for custom C++ ops.
    warnings.filterwarnings("ignore", message="No ccache found")
    from paddlevideo.utils.entry_point import run_entry_point

    # every failure a user can meet is one line (exit 2 bad input, 1 failed run, 130 Ctrl-C)
    return run_entry_point(lambda: predict(args))


def predict(args: argparse.Namespace) -> int:
    """Predict every input as the flags say; returns the exit status."""
    from paddlevideo.inference.engines import EngineError
    from paddlevideo.inference.labels import LabelMapError
    from paddlevideo.utils import ConfigError

    timeline = wants_timeline(args)
    problem, paths = resolve_inputs(args, timeline)
    if problem:
        print(f"Error: {problem}", file=sys.stderr)
        return 2
    try:
        predictor = build_predictor(args)
    except (ConfigError, EngineError, LabelMapError, ValueError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    print(f"Engine: {predictor.engine_choice.describe()}", file=sys.stderr)
    if timeline:
        return run_timeline_command(args, predictor, paths)
    folder = os.path.isdir(args.input_file)
    if args.enable_benchmark:
        warm_up(predictor, min(args.batch_size, len(paths)))
    start = time.perf_counter()
    try:
        code = report_predictions(predictor, paths, args, folder)
    except LabelMapError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    if args.time_test_file:
        seconds = time.perf_counter() - start
        print(f"Predicted {args.input_file} ({len(paths)} videos) in {seconds:.3f} s, "
              f"{1000 * seconds / len(paths):.1f} ms per video")
    if args.enable_benchmark:
        print_benchmark(predictor.timings, args.batch_size)
    return code


def report_predictions(predictor, paths, args: argparse.Namespace, folder: bool) -> int:
    """Print (and with ``--output`` write) every video's result; 1 if any video failed."""
    from tqdm import tqdm

    from paddlevideo.inference import prediction_record
    from paddlevideo.utils.fileio import write_text_atomic

    records, failures = [], []
    for path, predictions, error in predict_all(predictor, paths, args.batch_size, folder):
        if error is not None:
            print(f"Error: cannot predict {path}: {error}", file=sys.stderr)
            failures.append({"file": path, "error": error})
            continue
        # tqdm.write keeps the progress bar (stderr) off the printed lines (stdout).
        tqdm.write(format_prediction(path, predictions), file=sys.stdout)
        records.append(prediction_record(path, predictions))
    if args.output:
        write_text_atomic(args.output,
                          json.dumps({"results": records, "failed": failures}, indent=2))
    if failures:
        print(f"{len(failures)} of {len(paths)} videos failed: "
              + ", ".join(item["file"] for item in failures), file=sys.stderr)
        return 1
    return 0


def output_name(source: str, folder: Optional[str], several: bool, suffix: str) -> Optional[str]:
    """Where one input's annotated video / PNG goes: ``folder`` itself for one input, else
    ``folder/<input stem><suffix>``."""
    if not folder:
        return None
    if not several:
        os.makedirs(os.path.dirname(os.path.abspath(folder)), exist_ok=True)
        return folder
    os.makedirs(folder, exist_ok=True)
    stem = os.path.splitext(os.path.basename(source.rstrip("/")))[0] or "stream"
    return os.path.join(folder, stem + suffix)


def format_timeline(result) -> str:
    """The printed block of one input: segments and a summary line."""
    lines = [f"Timeline of {result.source}: {result.duration:.2f} s at {result.fps:g} fps, "
             f"{len(result.windows)} windows, {len(result.segments)} segments"]
    for seg in result.segments:
        lines.append(f"\t{seg.start:8.2f} - {seg.end:8.2f} s  {seg.class_name} "
                     f"(class {seg.class_id}, score {seg.score:.3f})")
    notes = [f"speed {result.speed:.2f}x real time"]
    if result.skipped:
        notes.append(f"{len(result.skipped)} windows skipped (damaged or missing frames)")
    if result.dropped:
        notes.append(f"{result.dropped} windows dropped to keep up with the stream")
    if result.interrupted:
        notes.append("stopped by Ctrl-C")
    lines.append("\t" + ", ".join(notes))
    return "\n".join(lines)


def print_window(window, lag: float) -> None:
    print(f"[{window.start:8.2f} - {window.end:8.2f} s] {window.top_k[0][1]} "
          f"{window.score:.3f}  (lag {lag:.2f} s)", flush=True)


def timeline_one(predictor, source: str, args: argparse.Namespace, several: bool):
    """``(result, None)`` or ``(None, error line)`` for one input."""
    from paddlevideo.inference.frame_stream import StreamError, is_live_source

    live = is_live_source(source) if args.live is None else args.live
    video = output_name(source, args.output_video, several, ".mp4")
    try:
        result = predictor.timeline(source, stride=args.stride, output_video=video,
                                    max_seconds=args.max_seconds, live=live,
                                    reconnects=args.reconnects,
                                    on_window=print_window if live else None)
    except StreamError as err:
        return None, str(err)
    png = output_name(source, args.output_timeline_png, several, "_timeline.png")
    if png:
        from paddlevideo.inference.annotate import timeline_png

        timeline_png(png, result.segments, result.duration, source)
        result.output_png = png
    return result, None


def run_timeline_command(args: argparse.Namespace, predictor, sources: List[str]) -> int:
    """Every input through ``predictor.timeline``; writes ``--output`` JSON and its segments
    CSV; exit status 1 if an input failed, 130 after Ctrl-C."""
    from paddlevideo.inference.timeline import segments_csv, segments_csv_path
    from paddlevideo.inference.timeline_runner import timeline_record
    from paddlevideo.utils.fileio import write_text_atomic

    several = len(sources) > 1 or sources[0] != args.input_file  # a folder's videos
    records, failures, interrupted = [], [], False
    for source in sources:
        result, error = timeline_one(predictor, source, args, several)
        if error is not None:
            print(f"Error: {error}", file=sys.stderr)
            failures.append({"file": source, "error": error})
            continue
        if result.error is not None:  # the stream was lost part-way: keep what it gave
            print(f"Error: {result.error}", file=sys.stderr)
            failures.append({"file": source, "error": result.error})
        print(format_timeline(result), flush=True)
        for label, path in (("annotated video", result.output_video),
                            ("timeline picture", result.output_png)):
            if path:
                print(f"\t{label}: {path}")
        records.append(timeline_record(result, predictor))
        if result.interrupted:
            interrupted = True
            break
    if args.output:
        write_text_atomic(args.output,
                          json.dumps({"results": records, "failed": failures}, indent=2))
        write_text_atomic(segments_csv_path(args.output), segments_csv(records))
    if interrupted:
        return 130
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
