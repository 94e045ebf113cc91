"""int8 post-training quantization of an exported SlowFast model for the OpenVINO engine.

    python tools/quantize.py -c configs/recognition/slowfast/slowfast.yaml \
        --model_file inference/SlowFast/SlowFast.xml --calib_list data/k400/val.list \
        [--num_samples 300] -o inference/SlowFast_int8

Reads an ``.xml`` (``tools/export_model.py --format openvino``), ``.onnx`` or a Paddle program
(``.pdmodel``/``.json`` with ``--params_file``), decodes ``--num_samples`` videos spread over
the list with the prediction preprocessing, runs NNCF's post-training quantization and writes
``OUT_DIR/<name>_int8.xml`` + ``.bin`` and ``OUT_DIR/quantization.json`` (how it was made). Then
prints the share of calibration clips on which int8 and fp32 give the same top-1 class and the
top-1 accuracy of each against the list's labels, and warns when the agreement is under 98 % or
int8's accuracy is more than 1 point under fp32's. Run the result with ``tools/predict.py
--precision int8``.
Exit status 2 for bad arguments (checked before any work), 1 if quantization failed.
"""
import argparse
import os
import sys
import warnings


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        "Quantize an exported SlowFast model to int8 (OpenVINO + NNCF)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="config file path")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="config override (e.g. INFERENCE.target_size=224)")
    parser.add_argument("--model_file", required=True,
                        help="fp32 model: OpenVINO .xml, .onnx, or .pdmodel/.json")
    parser.add_argument("--params_file", default=None, help=".pdiparams of a Paddle program")
    parser.add_argument("--calib_list", required=True,
                        help="'<video path> <label>' list of calibration videos")
    parser.add_argument("--data_prefix", default=None,
                        help="folder the list's relative paths are under")
    parser.add_argument("--num_samples", type=int, default=300,
                        help="calibration videos (spread over the list), one clip each")
    parser.add_argument("--bias_correction", choices=("full", "fast"), default="full",
                        help="NNCF bias correction: full (more accurate) or fast (quicker)")
    parser.add_argument("-o", "--output_dir", required=True, help="folder for the int8 model")
    parser.add_argument("--save_name", default=None,
                        help="file name stem (default: the model file's stem)")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace):
    """The one-line reason the arguments cannot work, or None."""
    if args.num_samples < 1:
        return f"--num_samples must be at least 1, got {args.num_samples}"
    for flag, path in (("--config", args.config), ("--model_file", args.model_file),
                       ("--calib_list", args.calib_list)):
        if not os.path.isfile(path):
            return f"{flag} {path}: file not found"
    if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
        return f"-o {args.output_dir} is a file; give a folder"
    return None


def main(argv=None) -> int:
    args = parse_args(argv)
    problem = check_args(args)
    if problem:
        print(f"Error: {problem}", file=sys.stderr)
        return 2
    os.environ.setdefault("GLOG_minloglevel", "1")
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
    warnings.filterwarnings("ignore", message="No ccache found")
    from paddlevideo.inference import quantize as q
    from paddlevideo.loader.dataset.list_file import ListFileError
    from paddlevideo.utils import ConfigError, get_config

    try:
        cfg = get_config(args.config, overrides=args.override)
        float_model = q.read_float_model(args.model_file, args.params_file)
        import nncf  # noqa: F401 - checked before the clips are decoded
    except ImportError:
        print("Error: quantization needs the nncf package: pip install nncf (or pip install "
              ".[quantize])", file=sys.stderr)
        return 2
    except (ConfigError, ListFileError, q.QuantizeError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    try:
        return quantize(args, cfg, float_model)
    except (ListFileError, q.QuantizeError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ListFileError) else 1


def quantize(args: argparse.Namespace, cfg, float_model) -> int:
    from paddlevideo.inference import quantize as q

    print(f"Decoding up to {args.num_samples} calibration clips from {args.calib_list}...",
          flush=True)
    clips, labels, skipped = q.calibration_clips(cfg, args.calib_list, args.num_samples,
                                                 args.data_prefix)
    for path in skipped:
        print(f"Warning: skipped {path}: cannot be decoded", file=sys.stderr)
    print(f"Quantizing {args.model_file} on {len(clips)} clips...", flush=True)
    int8_model = q.quantize_clips(float_model, clips, args.bias_correction)
    scores = q.compare_top1(float_model, int8_model, clips, labels)
    agreement = scores["agreement"]
    report = q.QuantizeReport(source_model=os.path.abspath(args.model_file),
                              calib_list=os.path.abspath(args.calib_list),
                              num_samples=args.num_samples, clips_used=len(clips),
                              clips_skipped=skipped, top1_agreement=round(agreement, 4),
                              fp32_top1=round(scores["fp32_top1"], 4),
                              int8_top1=round(scores["int8_top1"], 4),
                              bias_correction=args.bias_correction,
                              versions=q.package_versions())
    name = args.save_name or os.path.splitext(os.path.basename(args.model_file))[0]
    paths = q.save_int8_model(int8_model, report, args.output_dir, name)
    print(f"Saved int8 model: {paths['model']}, {paths['weights']} ({paths['report']})")
    print(f"Top-1 agreement with fp32 on the {len(clips)} calibration clips: "
          f"{100 * agreement:.1f}%")
    print(f"Top-1 accuracy on them (the list's labels): fp32 {100 * scores['fp32_top1']:.1f}%, "
          f"int8 {100 * scores['int8_top1']:.1f}%")
    if scores["int8_top1"] < scores["fp32_top1"] - q.ACCURACY_DROP_LIMIT:
        print(f"Warning: int8 is {100 * (scores['fp32_top1'] - scores['int8_top1']):.1f} "
              f"points less accurate than fp32 on these clips (more than "
              f"{100 * q.ACCURACY_DROP_LIMIT:.0f}): calibrate on more or more typical clips, "
              f"or keep fp32/bf16", file=sys.stderr)
    if agreement < q.AGREEMENT_THRESHOLD:
        print(f"Warning: int8 changes the top-1 class on {100 * (1 - agreement):.1f}% of the "
              f"clips (more than {100 * (1 - q.AGREEMENT_THRESHOLD):.0f}%): the quantization "
              f"hurts accuracy; calibrate on more or more typical clips, or keep fp32/bf16",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
