"""Parameter count and compute of the model a config describes.

    python tools/summary.py -c configs/recognition/slowfast/slowfast.yaml --FLOPs

Prints the parameters per top-level part (backbone, head) and in total; with ``--FLOPs`` also
the multiply-accumulates (GMACs, what video papers call GFLOPs) of one clip at the config's test
size: the test decode sampler's ``num_frames`` and the test ``MultiCrop.target_size``.
"""
import argparse
import os
import sys
from typing import Dict, List, Optional, Tuple


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        "Parameter count and GMACs of a config's model",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="config file path")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. -o MODEL.head.num_classes=600")
    parser.add_argument("--FLOPs", action="store_true", dest="flops",
                        help="also count the GMACs of one clip at the config's test size")
    return parser.parse_args(argv)


def clip_size_at_test(cfg) -> Tuple[int, int, int]:
    """``(num_frames, crop, alpha)`` of a test clip: ``PIPELINE.test`` (decode sampler,
    ``MultiCrop``, ``PackOutput``), else ``MODEL.head`` / ``MODEL.backbone``."""
    test = (cfg.get("PIPELINE") or {}).get("test") or {}
    steps = {name: (args or {}) for step in test.get("transform") or []
             for name, args in step.items()}
    head, backbone = cfg["MODEL"].get("head") or {}, cfg["MODEL"].get("backbone") or {}
    frames = (test.get("decode_sampler") or {}).get("num_frames", head.get("num_frames"))
    crop = steps.get("MultiCrop", {}).get("target_size", head.get("crop_size"))
    alpha = steps.get("PackOutput", {}).get("alpha", backbone.get("alpha"))
    return int(frames), int(crop), int(alpha)


def parameter_counts(model) -> Dict[str, int]:
    """``{top-level part: parameter count}`` plus ``total`` and ``trainable`` (BN running
    statistics are buffers, not parameters, and are left out)."""
    counts: Dict[str, int] = {}
    trainable = 0
    for name, param in model.named_parameters():
        part = name.split(".", 1)[0]
        counts[part] = counts.get(part, 0) + int(param.size)
        trainable += int(param.size) if param.trainable else 0
    counts["total"] = sum(counts.values())
    counts["trainable"] = trainable
    return counts


def summarize(cfg, with_flops: bool) -> str:
    """The report's text for ``cfg``'s model."""
    import paddle

    from paddlevideo.modeling import build_model
    from paddlevideo.modeling.flops import count_gmacs, slowfast_inputs

    paddle.seed(0)
    model = build_model(cfg["MODEL"])
    model.eval()
    backbone, head = cfg["MODEL"]["backbone"]["name"], cfg["MODEL"]["head"]["name"]
    lines = [f"Model: {cfg.get('model_name', '?')} ({cfg['MODEL']['framework']}: {backbone} + "
             f"{head})", "Parameters:"]
    for part, count in parameter_counts(model).items():
        lines.append(f"  {part:<10} {count:>12,d}  ({count / 1e6:.2f} M)")
    if with_flops:
        frames, crop, alpha = clip_size_at_test(cfg)
        gmacs = count_gmacs(model, slowfast_inputs(frames, crop, alpha), mode="infer")
        lines.append(f"GMACs per clip ({frames} frames of {crop}x{crop}, slow pathway "
                     f"{frames // alpha} frames): {gmacs:.4g}")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
    from paddlevideo.utils import get_config
    from paddlevideo.utils.entry_point import run_entry_point

    def work() -> int:
        print(summarize(get_config(args.config, overrides=args.override), args.flops))
        return 0

    return run_entry_point(work)  # a config error: one line, exit 2


if __name__ == "__main__":
    sys.exit(main())
