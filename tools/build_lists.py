"""Write the list files of a folder of clips sorted into one sub-folder per class.

    python tools/build_lists.py data/my_videos --out data/my_lists --group '_g([0-9]+)_' --check

writes ``label_list.txt`` (``id name``, ids from 0 in sorted folder order), ``train.list`` and
``val.list`` (and ``test.list`` with --test_fraction), one ``path label`` per line. The split is
stratified per class and seeded; with --group REGEX every clip whose first capture group (matched
on the file name) has the same text stays on one side. --check decodes every clip as
tools/check_videos.py does and leaves the bad ones out. Prints a per-class table and the
``main.py`` command that fine-tunes on the lists. Bad input: one line, exit 2, nothing written.
"""
from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import shlex
import sys
from multiprocessing import Pool
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from paddlevideo.loader.dataset.class_folders import (  # noqa: E402
    SPLITS,
    ClassFolderError,
    FolderScan,
    check_fractions,
    compile_group,
    scan_class_folders,
    split_clips,
)
from paddlevideo.utils.fileio import write_text_atomic  # noqa: E402

LIST_NAMES = {"train": "train.list", "val": "val.list", "test": "test.list"}
LABEL_NAME = "label_list.txt"
FINETUNE_CONFIG = "configs/recognition/slowfast/slowfast_finetune.yaml"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video_root", help="folder with one sub-folder of videos per class")
    parser.add_argument("--out", required=True, help="folder the lists are written to")
    parser.add_argument("--val_fraction", type=float, default=0.2)
    parser.add_argument("--test_fraction", type=float, default=0.0)
    parser.add_argument("--group", default=None,
                        help="regex whose first group names a clip's source video, e.g. "
                             "'_g([0-9]+)_' (UCF-101) or '^(.*)_[0-9]+\\.avi$'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true",
                        help="decode every clip and leave the bad ones out")
    parser.add_argument("--min_frames", type=int, default=1, help="with --check")
    parser.add_argument("--workers", type=int, default=1, help="with --check")
    parser.add_argument("--relative", action="store_true",
                        help="paths relative to VIDEO_ROOT (use it as data_prefix)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace lists already in --out")
    return parser.parse_args(argv)


def check_out_folder(out: str, overwrite: bool) -> None:
    """Refuse a folder that already holds list files (another data set's) unless ``overwrite``."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ClassFolderError(f"--out {out}: exists and is not a folder")
    if not os.path.isdir(out) or overwrite:
        return
    present = sorted(n for n in os.listdir(out) if n.endswith(".list") or n == LABEL_NAME)
    if present:
        raise ClassFolderError(f"--out {out} already holds {', '.join(present)}; choose another "
                               f"folder or pass --overwrite")


@functools.lru_cache(maxsize=1)
def _check_videos_tool():
    """tools/check_videos.py as a module (its ``check_video`` is the test --check runs)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_videos.py")
    spec = importlib.util.spec_from_file_location("check_videos_tool", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_job(job: Tuple[str, int]) -> Tuple[str, Optional[str]]:
    path, min_frames = job
    return path, _check_videos_tool().check_video(path, min_frames)


def drop_bad_videos(scan: FolderScan, min_frames: int, workers: int) -> List[Tuple[str, str]]:
    """Decode every clip (check_videos' test); the bad ones leave ``scan``. Returns them as
    ``(path, reason)``."""
    jobs = [(os.path.join(scan.root, p), min_frames) for n in scan.classes for p in scan.videos[n]]
    if workers > 1:
        with Pool(workers) as pool:
            results = pool.map(_check_job, jobs)
    else:
        results = [_check_job(job) for job in jobs]
    bad_abs = {path: reason for path, reason in results if reason is not None}
    bad = []
    for name in list(scan.classes):
        kept = []
        for rel in scan.videos[name]:
            reason = bad_abs.get(os.path.join(scan.root, rel))
            if reason is None:
                kept.append(rel)
            else:
                bad.append((rel, reason))
        if not kept:
            raise ClassFolderError(f"class folder {os.path.join(scan.root, name)}: none of its "
                                   f"{len(scan.videos[name])} videos can be decoded")
        scan.videos[name] = kept
    return bad


def class_table(classes: List[str], splits: Dict[str, List[Tuple[str, int]]]) -> str:
    """``id | class | train | val [| test]`` rows plus a total row."""
    counts = {s: [0] * len(classes) for s in splits}
    for split, clips in splits.items():
        for _, label in clips:
            counts[split][label] += 1
    width = max(len("class"), *(len(c) for c in classes))
    head = f"{'id':>4}  {'class':<{width}}" + "".join(f"  {s:>6}" for s in splits)
    rows = [head, "-" * len(head)]
    for i, name in enumerate(classes):
        rows.append(f"{i:>4}  {name:<{width}}" + "".join(f"  {counts[s][i]:>6}" for s in splits))
    rows.append(f"{'':>4}  {'total':<{width}}" + "".join(f"  {len(splits[s]):>6}"
                                                          for s in splits))
    return "\n".join(rows)


def finetune_command(out: str, root: str, relative: bool, has_test: bool) -> str:
    """The ``main.py`` command that fine-tunes Kinetics weights on these lists."""
    q = shlex.quote
    parts = ["python main.py", f"-c {FINETUNE_CONFIG}", "--validate", "-w SlowFast.pdparams",
             f"-o label_file={q(os.path.join(out, LABEL_NAME))}",
             f"-o DATASET.train.file_path={q(os.path.join(out, LIST_NAMES['train']))}",
             f"-o DATASET.valid.file_path={q(os.path.join(out, LIST_NAMES['val']))}"]
    test_list = LIST_NAMES["test"] if has_test else LIST_NAMES["val"]
    parts.append(f"-o DATASET.test.file_path={q(os.path.join(out, test_list))}")
    if relative:
        parts += [f"-o DATASET.{m}.data_prefix={q(root)}" for m in ("train", "valid", "test")]
    return " \\\n    ".join(parts)


def write_lists(out: str, scan: FolderScan, splits: Dict[str, List[Tuple[str, int]]],
                relative: bool) -> None:
    root = os.path.abspath(scan.root)
    write_text_atomic(os.path.join(out, LABEL_NAME),
                      "".join(f"{i} {name}\n" for i, name in enumerate(scan.classes)))
    for split, clips in splits.items():
        lines = [f"{p if relative else os.path.join(root, p)} {label}\n" for p, label in clips]
        write_text_atomic(os.path.join(out, LIST_NAMES[split]), "".join(lines))


def report_skipped(scan: FolderScan, bad: List[Tuple[str, str]]) -> None:
    for name in scan.empty_classes:
        print(f"empty class folder left out: {name}/")
    if scan.skipped:
        print(f"{len(scan.skipped)} entries are not listed:")
        for path, reason in scan.skipped:
            print(f"  {path}: {reason}")
    if bad:
        print(f"{len(bad)} videos fail the check and are not listed:")
        for path, reason in bad:
            print(f"  {path}: {reason}")


def build(args: argparse.Namespace) -> int:
    """Every check first, then the files; raises ClassFolderError on bad input."""
    check_fractions(args.val_fraction, args.test_fraction)
    group = compile_group(args.group) if args.group else None
    check_out_folder(args.out, args.overwrite)
    scan = scan_class_folders(args.video_root)
    bad = drop_bad_videos(scan, args.min_frames, args.workers) if args.check else []
    splits, matched = split_clips(scan, args.val_fraction, args.test_fraction, args.seed, group)
    report_skipped(scan, bad)
    total = sum(len(v) for v in splits.values())
    if group is None:
        print("no --group: clips cut from one source video may straddle train and val")
    elif matched < total:
        print(f"--group matched {matched} of {total} clips; each other clip counts as its own "
              f"source")
    write_lists(args.out, scan, splits, args.relative)
    print(class_table(scan.classes, splits))
    written = [LABEL_NAME] + [LIST_NAMES[s] for s in SPLITS if s in splits]
    print(f"wrote {', '.join(written)} to {args.out} ({len(scan.classes)} classes)")
    if args.relative:
        print(f"paths are relative to VIDEO_ROOT: data_prefix: {os.path.abspath(scan.root)}")
    print("fine-tune from Kinetics-400 weights (docs/finetune.md):\n" + finetune_command(
        args.out, os.path.abspath(scan.root), args.relative, "test" in splits))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        return build(args)
    except ClassFolderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # FileWriteError names the file
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
