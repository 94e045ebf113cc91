"""Predict the action in a video (or in every video of a folder) with an exported model.

    python tools/predict.py --input_file data/example.avi \
        --config configs/recognition/slowfast/slowfast.yaml \
        --model_file inference/SlowFast/SlowFast.pdmodel \
        --params_file inference/SlowFast/SlowFast.pdiparams --use_gpu=False --use_tensorrt=False

Prints, per video, ``Current video file``, ``top-k class``, ``top-k score`` and the class name;
``--output results.json`` also writes every result as JSON. Exit status 1 if any video failed,
2 for arguments that cannot work (checked before any work). ``--help`` lists every option.
"""
import argparse
import json
import os
import sys
import time
import warnings


def str2bool(value: str) -> bool:
    """PaddleVideo's boolean flags: ``--use_gpu=True`` / ``--use_gpu False``."""
    text = str(value).strip().lower()
    if text in ("true", "t", "1", "yes", "y"):
        return True
    if text in ("false", "f", "0", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


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
    parser.add_argument("--model_file", required=True, help=".pdmodel, .json or .onnx")
    parser.add_argument("--params_file", default=None, help=".pdiparams (not for .onnx)")
    parser.add_argument("-b", "--batch_size", type=int, default=1,
                        help="videos per model run (folder input)")
    parser.add_argument("--use_gpu", type=str2bool, metavar="BOOL", default=True,
                        help="run on the GPU (without one: a one-line note, then the CPU)")
    parser.add_argument("--use_xpu", type=str2bool, metavar="BOOL", default=False,
                        help="run on a Kunlun XPU (needs Paddle's XPU build)")
    parser.add_argument("--use_npu", type=str2bool, metavar="BOOL", default=False,
                        help="run on an Ascend NPU (needs the paddle-custom-npu plugin)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32",
                        help="TensorRT precision")
    parser.add_argument("--ir_optim", type=str2bool, metavar="BOOL", default=True,
                        help="Paddle Inference graph optimisation (operator fusion)")
    parser.add_argument("--use_tensorrt", type=str2bool, metavar="BOOL", default=False,
                        help="TensorRT subgraphs (GPU build with TensorRT)")
    parser.add_argument("--gpu_mem", type=int, default=8000,
                        help="MB of GPU memory Paddle Inference starts with")
    parser.add_argument("--enable_benchmark", type=str2bool, metavar="BOOL", default=False,
                        help="print preprocess / inference / postprocess ms per video (after "
                             "one warm-up run)")
    parser.add_argument("--enable_mkldnn", type=str2bool, metavar="BOOL", default=True,
                        help="oneDNN kernels on the CPU (much faster for 3D convolutions)")
    parser.add_argument("--cpu_threads", type=int, default=None,
                        help="CPU math threads (None: Paddle's choice)")
    parser.add_argument("--disable_glog", type=str2bool, metavar="BOOL", default=True,
                        help="hide Paddle Inference's C++ INFO log (False: show it on stderr)")
    parser.add_argument("--time_test_file", type=str2bool, metavar="BOOL", default=False,
                        help="print the wall time of predicting the input (all its videos)")
    parser.add_argument("--top_k", type=int, default=1, help="classes printed per video")
    parser.add_argument("--label_file", default=None,
                        help="'<id> <name>' lines (default: the config's label_file, else "
                             "data/k400/Kinetics-400_label_list.txt)")
    parser.add_argument("--num_views", type=int, default=1,
                        help="clips spread over the video, scores averaged (1: the centred clip)")
    parser.add_argument("--output", default=None, help="write all results to this JSON file")
    # Timeline of long videos and live streams (paddlevideo/inference/timeline_cli.py); a URL,
    # camera index or '-' as --input_file implies --timeline.
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
    """The Predictor the flags describe; the model files are checked first (a malformed file
    handed to Paddle can crash the process instead of raising)."""
    from paddlevideo.inference import Predictor
    from paddlevideo.inference.engines import EngineOptions, check_model_files
    from paddlevideo.utils import get_config

    EngineOptions(precision=args.precision, cpu_threads=args.cpu_threads,
                  batch_size=args.batch_size, gpu_mem=args.gpu_mem, use_xpu=args.use_xpu,
                  use_npu=args.use_npu).check()
    check_model_files(args.model_file, args.params_file)
    cfg = get_config(args.config, overrides=args.override)
    return Predictor(args.model_file, args.params_file, cfg, use_gpu=args.use_gpu,
                     use_tensorrt=args.use_tensorrt, precision=args.precision,
                     enable_mkldnn=args.enable_mkldnn, cpu_threads=args.cpu_threads,
                     batch_size=args.batch_size, top_k=args.top_k,
                     label_file=args.label_file, num_views=args.num_views,
                     ir_optim=args.ir_optim, gpu_mem=args.gpu_mem, use_xpu=args.use_xpu,
                     use_npu=args.use_npu, disable_glog=args.disable_glog)


def warm_up(predictor, batch_size: int) -> None:
    """One untimed model run on zero clips of the model's geometry, so the benchmark leaves out
    one-off set-up costs (a video is not used: its decoded frames would stay cached)."""
    import numpy as np

    shapes = predictor.preprocess.shapes
    batch = batch_size * predictor.preprocess.num_views
    predictor.engine.run(np.zeros(shapes.slow_shape(batch), np.float32),
                         np.zeros(shapes.fast_shape(batch), np.float32))


def main(argv=None) -> int:
    args = parse_args(argv)
    problem = check_args(args)
    if problem:
        print(f"Error: {problem}", file=sys.stderr)
        return 2
    if args.disable_glog:
        # Paddle's C++ INFO lines ("New Executor is Running") would mix with the tool's output.
        os.environ.setdefault("GLOG_minloglevel", "1")
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
    # Paddle warns at import about a compiler cache that only matters for custom C++ ops.
    warnings.filterwarnings("ignore", message="No ccache found")
    from paddlevideo.utils.entry_point import run_entry_point

    # every failure a user can meet is one line (exit 2 bad input, 1 failed run, 130 Ctrl-C)
    return run_entry_point(lambda: predict(args))


def predict(args: argparse.Namespace) -> int:
    """Predict every input as the flags say; returns the exit status."""
    from paddlevideo.inference import list_videos
    from paddlevideo.inference.engines import EngineError
    from paddlevideo.inference.labels import LabelMapError
    from paddlevideo.inference.timeline_cli import (
        check_timeline_args,
        run_timeline_command,
        wants_timeline,
    )
    from paddlevideo.utils import ConfigError

    timeline = wants_timeline(args)
    problem = check_timeline_args(args) if timeline else None
    if problem:
        print(f"Error: {problem}", file=sys.stderr)
        return 1
    if not timeline and not os.path.exists(args.input_file):
        print(f"Error: input not found: {args.input_file}", file=sys.stderr)
        return 1
    folder = os.path.isdir(args.input_file)
    paths = list_videos(args.input_file) if folder else [args.input_file]
    if not paths:
        print(f"Error: no video files in {args.input_file}", file=sys.stderr)
        return 1
    try:
        predictor = build_predictor(args)
    except (ConfigError, EngineError, LabelMapError, ValueError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    if timeline:
        return run_timeline_command(args, predictor)
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


if __name__ == "__main__":
    sys.exit(main())
