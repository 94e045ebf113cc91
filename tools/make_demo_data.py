"""Write the synthetic motion dataset used by configs/recognition/slowfast/slowfast_demo.yaml.

    python tools/make_demo_data.py data/demo [--classes 8 --train_per_class 64 --val_per_class 8]

Creates OUT_DIR/videos/*.mp4 (H.264), OUT_DIR/train.list and OUT_DIR/val.list (absolute paths,
"path label" per line) and OUT_DIR/label_list.txt ("id name" per line, Kinetics format).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from paddlevideo.loader.demo_data import MOTION_CLASSES, make_demo_dataset  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", help="output folder (created if missing)")
    parser.add_argument("--classes", type=int, default=8,
                        help=f"number of motion classes, at most {len(MOTION_CLASSES)}")
    parser.add_argument("--train_per_class", type=int, default=64)
    parser.add_argument("--val_per_class", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--frames", type=int, default=32, help="frames per video")
    parser.add_argument("--fps", type=float, default=30)
    parser.add_argument("--workers", type=int, default=2, help="encoding processes")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.time()
    try:
        paths = make_demo_dataset(args.out_dir, classes=args.classes,
                                  train_per_class=args.train_per_class,
                                  val_per_class=args.val_per_class, seed=args.seed,
                                  width=args.width, height=args.height, frames=args.frames,
                                  fps=args.fps, workers=args.workers)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    count = args.classes * (args.train_per_class + args.val_per_class)
    print(f"wrote {count} videos to {paths['videos']} in {time.time() - start:.1f} s\n"
          f"  train list: {paths['train_list']}\n  val list:   {paths['val_list']}\n"
          f"  labels:     {paths['label_list']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
