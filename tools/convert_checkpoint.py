"""Convert PySlowFast or PyTorchVideo SlowFast weights to a ``.pdparams`` file, without PyTorch.

    python tools/convert_checkpoint.py SLOWFAST_8x8_R50.pkl --from pyslowfast \
        -c configs/recognition/slowfast/slowfast_multigrid.yaml -o data/SlowFast_8x8_pt.pdparams

Reads ``.pyth``/``.pt``/``.pth`` (PyTorch zip or legacy format) and PySlowFast's Caffe2 ``.pkl``,
maps every tensor to the model built from ``-c``, checks every shape and writes the weights only
if all of them fit (``--allow_missing`` writes what fits and drops a classifier of another
size). The output loads with ``main.py --test -w``, ``-w`` and ``tools/export_model.py -p``.
See docs/convert.md.
"""
import argparse
import os
import sys
from typing import List, Optional


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        "Convert PySlowFast / PyTorchVideo SlowFast weights to .pdparams")
    parser.add_argument("source", help="PyTorch checkpoint (.pyth/.pt/.pth) or PySlowFast "
                                       "Caffe2 .pkl")
    parser.add_argument("--from", dest="source_kind", required=True,
                        choices=["pyslowfast", "pytorchvideo"],
                        help="which project wrote the checkpoint (decides the names)")
    parser.add_argument("-c", "--config", required=True,
                        help="config describing the same network (e.g. slowfast.yaml for 4x16)")
    parser.add_argument("-o", "--output", required=True, help="output .pdparams path")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. --override MODEL.head.num_classes=600")
    parser.add_argument("--allow_missing", action="store_true",
                        help="write the tensors that fit even if some are missing or unmapped; "
                             "a classifier with another number of classes is dropped")
    return parser.parse_args(argv)


def _count(names: List[str], what: str) -> str:
    return f"{len(names)} {what}" if names else ""


def convert(args: argparse.Namespace) -> int:
    from paddlevideo.convert.slowfast import convert_state_dict, select_state_dict
    from paddlevideo.convert.torch_format import read_checkpoint
    from paddlevideo.modeling import build_model
    from paddlevideo.utils import get_config
    from paddlevideo.utils.checkpoint import save

    if os.path.abspath(args.source) == os.path.abspath(args.output):
        raise ValueError("the output path must differ from the source checkpoint")
    cfg = get_config(args.config, overrides=args.override)
    # the file is read first: a wrong file is reported before the model is built
    obj, fmt, opaque = read_checkpoint(args.source)
    state, scheme, used = select_state_dict(obj, fmt, args.source_kind, label=args.source)
    if cfg.MODEL.backbone.get("pretrained"):
        cfg.MODEL.backbone.pretrained = ""  # the converted weights replace it
    model = build_model(cfg.MODEL)
    model_shapes = {name: list(t.shape) for name, t in model.state_dict().items()}
    trainable = {name for name, _ in model.named_parameters()}
    conversion = convert_state_dict(state, scheme, model_shapes, args.allow_missing,
                                    label=args.source)
    save(conversion.state, args.output)

    others = sorted(str(k) for k in obj if str(k) not in used) if isinstance(obj, dict) else []
    n_params = sum(conversion.state[k].size for k in conversion.state if k in trainable)
    print(f"Read {args.source} ({fmt}, {scheme} names); weights from top-level key(s) "
          f"{', '.join(used)}" + (f"; not used: {', '.join(others)}" if others else ""))
    print(f"Converted {len(conversion.state)} of {len(model_shapes)} model tensors "
          f"({n_params:,} trainable parameters) -> {args.output}")
    skipped = ", ".join(filter(None, [_count(conversion.ignored, "bookkeeping entries"),
                                      _count(sorted(set(opaque)), "opaque objects")]))
    if skipped:
        print(f"Skipped {skipped} (no weights)")
    for title, items in ([("dropped classifier", conversion.dropped_head)]
                         + conversion.problems()):
        print(f"WARNING {title} ({len(items)}): {', '.join(items[:25])}"
              + (f" ... and {len(items) - 25} more" if len(items) > 25 else ""))
    if conversion.dropped_head:
        print("The file has no classifier: main.py -w fine-tunes from it with a fresh head "
              "(as -o skip_head=True does; see docs/finetune.md)")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
    from paddlevideo.convert.slowfast import ConversionError
    from paddlevideo.convert.torch_format import TorchFormatError
    from paddlevideo.utils.config import ConfigError
    from paddlevideo.utils.entry_point import run_entry_point

    # a source that cannot be converted or an output that cannot be written (FileWriteError
    # names the file): exit 1; a config error: 2
    return run_entry_point(lambda: convert(args), {
        ConfigError: 2, ConversionError: 1, TorchFormatError: 1, ValueError: 1, OSError: 1})


if __name__ == "__main__":
    sys.exit(main())
