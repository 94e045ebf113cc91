"""Predict the action in a video (or in every video of a folder) with an exported model.

    python tools/predict.py --input_file data/example.avi \
        --config configs/recognition/slowfast/slowfast.yaml \
        --model_file inference/SlowFast/SlowFast.pdmodel \
        --params_file inference/SlowFast/SlowFast.pdiparams --use_gpu=False --use_tensorrt=False

Prints, per video, ``Current video file``, ``top-k class``, ``top-k score`` and the class name;
``--output results.json`` also writes every result as JSON. Exit status 1 if any video failed.
"""
import argparse
import json
import os
import sys
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
    parser = argparse.ArgumentParser("Predict actions in videos with an exported SlowFast model")
    parser.add_argument("-i", "--input_file", required=True, help="a video file or a folder")
    parser.add_argument("-c", "--config", required=True, help="config file path")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="config override (e.g. INFERENCE.target_size=224)")
    parser.add_argument("--model_file", required=True, help=".pdmodel, .json or .onnx")
    parser.add_argument("--params_file", default=None, help=".pdiparams (not for .onnx)")
    parser.add_argument("-b", "--batch_size", type=int, default=1,
                        help="videos per model run (folder input)")
    parser.add_argument("--use_gpu", type=str2bool, default=True,
                        help="run on the GPU (falls back to the CPU with a warning)")
    parser.add_argument("--use_tensorrt", type=str2bool, default=False)
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32",
                        help="TensorRT precision")
    parser.add_argument("--enable_mkldnn", type=str2bool, default=True,
                        help="oneDNN kernels on the CPU (much faster for 3D convolutions)")
    parser.add_argument("--cpu_threads", type=int, default=None)
    parser.add_argument("--top_k", type=int, default=1)
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


def main(argv=None) -> int:
    args = parse_args(argv)
    # Paddle's C++ INFO lines ("New Executor is Running") would mix with the tool's output.
    os.environ.setdefault("GLOG_minloglevel", "1")
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
    # Paddle warns at import about a compiler cache that only matters for custom C++ ops.
    warnings.filterwarnings("ignore", message="No ccache found")
    from tqdm import tqdm

    from paddlevideo.inference import Predictor, list_videos, prediction_record
    from paddlevideo.inference.engines import EngineError
    from paddlevideo.inference.labels import LabelMapError
    from paddlevideo.inference.timeline_cli import (
        check_timeline_args,
        run_timeline_command,
        wants_timeline,
    )
    from paddlevideo.utils import ConfigError, get_config
    from paddlevideo.utils.fileio import write_text_atomic

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
        cfg = get_config(args.config, overrides=args.override)
        predictor = Predictor(args.model_file, args.params_file, cfg, use_gpu=args.use_gpu,
                              use_tensorrt=args.use_tensorrt, precision=args.precision,
                              enable_mkldnn=args.enable_mkldnn, cpu_threads=args.cpu_threads,
                              batch_size=args.batch_size, top_k=args.top_k,
                              label_file=args.label_file, num_views=args.num_views)
    except (ConfigError, EngineError, LabelMapError, ValueError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    if timeline:
        return run_timeline_command(args, predictor)

    records, failures = [], []
    try:
        for path, predictions, error in predict_all(predictor, paths, args.batch_size, folder):
            if error is not None:
                print(f"Error: cannot predict {path}: {error}", file=sys.stderr)
                failures.append({"file": path, "error": error})
                continue
            # tqdm.write keeps the progress bar (stderr) off the printed lines (stdout).
            tqdm.write(format_prediction(path, predictions), file=sys.stdout)
            records.append(prediction_record(path, predictions))
    except LabelMapError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
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
