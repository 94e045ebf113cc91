"""Export a trained SlowFast model for Paddle Inference, ONNX Runtime or OpenVINO.

    python tools/export_model.py -c configs/recognition/slowfast/slowfast.yaml \
        -p data/SlowFast.pdparams -o inference/SlowFast [--format pdmodel|json|onnx|openvino]

writes ``inference/SlowFast/SlowFast.pdmodel`` + ``SlowFast.pdiparams`` (default), then reloads
the exported model and checks it against the dynamic model on the same random input.
"""
import argparse
import os
import sys
import warnings

FORMATS = ("pdmodel", "json", "onnx", "openvino")
MAX_DIFF = 1e-4


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser("Export a SlowFast model for inference")
    parser.add_argument("-c", "--config", required=True, help="config file path")
    parser.add_argument("-p", "--pretrained_params", required=True,
                        help="trained weights (.pdparams)")
    parser.add_argument("-o", "--output_path", default="./inference", help="output folder")
    parser.add_argument("--save_name", default=None,
                        help="file name stem (default: the config's model_name)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. --override INFERENCE.target_size=224")
    parser.add_argument("--format", choices=FORMATS, default="pdmodel",
                        help="pdmodel (Paddle Inference, legacy program), json (Paddle 3 PIR "
                             "program), onnx (through paddle2onnx) or openvino (IR .xml + .bin, "
                             "through ONNX)")
    parser.add_argument("--check_batch_size", type=int, default=1,
                        help="batch size of the random input used to check the export")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # The legacy program format needs the old IR selected before paddle is first imported. When
    # paddle is already imported (main() called from Python), the export's own IR guard selects
    # it, and the process's environment is left as it was: later Paddle code reads the variable.
    if args.format == "pdmodel" and "paddle" not in sys.modules:
        os.environ["FLAGS_enable_pir_api"] = "0"
    # Paddle's C++ INFO lines ("New Executor is Running") would mix with the tool's output.
    os.environ.setdefault("GLOG_minloglevel", "1")
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
    # Paddle warns at import about a compiler cache that only matters for custom C++ ops.
    warnings.filterwarnings("ignore", message="No ccache found")

    from paddlevideo.inference.engines import EngineError
    from paddlevideo.inference.export import ExportError
    from paddlevideo.inference.openvino_engine import INSTALL_HINT, openvino_available
    from paddlevideo.utils.entry_point import run_entry_point

    if args.format == "openvino" and not openvino_available():
        print(f"Error: --format openvino needs the openvino package: {INSTALL_HINT}",
              file=sys.stderr)
        return 2
    # one line for every failure a user can meet: a config (2), weights (2), disk (1), an
    # exported model that cannot be read back (a file cut short: 1)
    return run_entry_point(lambda: export(args), {ExportError: 1, EngineError: 1})


def export(args: argparse.Namespace) -> int:
    from paddlevideo.inference.export import (
        compare_with_dynamic,
        export_inference_model,
        input_shapes_from_config,
    )
    from paddlevideo.modeling import build_model
    from paddlevideo.utils import get_config
    from paddlevideo.utils.checkpoint import load_weights

    cfg = get_config(args.config, overrides=args.override)
    save_name = args.save_name or cfg["model_name"]
    if cfg.MODEL.backbone.get("pretrained"):
        cfg.MODEL.backbone.pretrained = ""  # the full weights below replace it
    shapes = input_shapes_from_config(cfg)
    print(f"Building model ({save_name}) from {args.config}...")
    model = build_model(cfg.MODEL)
    print(f"Loading params from {args.pretrained_params}...")
    load_weights(model, args.pretrained_params)  # a missing or unfit file: one line, exit 2
    model.eval()
    paths = export_inference_model(model, cfg, args.output_path, save_name, args.format)
    print(f"Saved {args.format} model with inputs slow_input {shapes.slow_shape()} and "
          f"fast_input {shapes.fast_shape()}: " + ", ".join(paths.values()))
    diff = compare_with_dynamic(model, paths, cfg, batch_size=args.check_batch_size)
    print(f"Largest difference between the exported and the dynamic model: {diff:.3e}")
    if not diff <= MAX_DIFF:
        print(f"Error: the exported model {paths['model']} disagrees with the dynamic model "
              f"(largest difference {diff:.3e} > {MAX_DIFF:g})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
