"""Scan every video of a list file and report the ones that cannot be used for training.

    python tools/check_videos.py data/k400/train.list --data_prefix data/k400 --workers 4 \
        --out data/k400/train_clean.list

Each video is opened and its first, middle and last frames are decoded (this catches missing,
empty, corrupt and truncated files, images under a video name, files without a video stream
and streams that report more frames than they hold). With --min_frames, shorter videos are
reported too. Prints a table of bad files and reasons, writes the list without them (--out), and
exits with status 1 when any video is bad (2 when the list itself cannot be read or the cleaned
list cannot be written).
"""
from __future__ import annotations

import argparse
import os
import sys
from multiprocessing import Pool
from typing import List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tqdm import tqdm  # noqa: E402

from paddlevideo.loader.dataset.list_file import ListFileError, read_video_list  # noqa: E402
from paddlevideo.loader.pipelines.decode import VideoDecodeError, VideoSource  # noqa: E402
from paddlevideo.utils.fileio import read_utf8_lines, write_text_atomic  # noqa: E402


def check_video(path: str, min_frames: int = 1, backend: str = "decord") -> Optional[str]:
    """``None`` when the video is usable, else the reason it is not."""
    try:
        source = VideoSource(path, backend=backend, num_threads=1)
        if source.num_frames < min_frames:
            return f"only {source.num_frames} frames, fewer than --min_frames {min_frames}"
        last = source.num_frames - 1
        source.get_frames(sorted({0, last // 2, last}))
    except VideoDecodeError as err:
        return err.reason
    return None


def _check_job(job: Tuple[int, str, int, str]) -> Tuple[int, str, Optional[str]]:
    line_no, path, min_frames, backend = job
    return line_no, path, check_video(path, min_frames, backend)


def format_table(bad: List[Tuple[int, str, str]]) -> str:
    """Rows of ``line | path | reason`` with aligned columns."""
    rows = [("line", "path", "reason")] + [(str(n), p, r) for n, p, r in bad]
    width_line = max(len(r[0]) for r in rows)
    width_path = max(len(r[1]) for r in rows)
    lines = [f"{a:>{width_line}}  {b:<{width_path}}  {c}" for a, b, c in rows]
    lines.insert(1, "-" * min(len(lines[0]) + 40, 160))
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("list", help="list file, one '<path> <label>' per line")
    parser.add_argument("--data_prefix", default=None, help="folder relative paths start from")
    parser.add_argument("--min_frames", type=int, default=1,
                        help="report videos with fewer frames (default 1: only empty streams)")
    parser.add_argument("--workers", type=int, default=1, help="parallel checking processes")
    parser.add_argument("--backend", default="decord", choices=["decord", "pyav"])
    parser.add_argument("--out", default=None, help="write the list without the bad videos here")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        videos = read_video_list(args.list, args.data_prefix)
    except (ListFileError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    jobs = [(v["line"], v["filename"], args.min_frames, args.backend) for v in videos]
    bad: List[Tuple[int, str, str]] = []
    progress = tqdm(total=len(jobs), desc="checking videos", unit="video", file=sys.stderr)
    with Pool(args.workers) if args.workers > 1 else _Serial() as pool:
        for line_no, path, reason in pool.imap_unordered(_check_job, jobs):
            if reason is not None:
                bad.append((line_no, path, reason))
            progress.update(1)
    progress.close()
    bad.sort()
    if bad:
        print(f"{len(bad)} of {len(jobs)} videos are bad:\n{format_table(bad)}")
    else:
        print(f"all {len(jobs)} videos are readable")
    if args.out:
        bad_lines = {n for n, _, _ in bad}
        kept = [line for n, line in enumerate(read_utf8_lines(args.list), start=1)
                if line.strip() and n not in bad_lines]  # numbered as read_video_list does
        try:
            write_text_atomic(args.out, "".join(line + "\n" for line in kept))
        except OSError as err:  # FileWriteError names the file
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"wrote {len(kept)} good videos to {args.out}")
    return 1 if bad else 0


class _Serial:
    """Pool stand-in for --workers 1 (no extra process)."""

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def imap_unordered(self, func, jobs):
        return map(func, jobs)


if __name__ == "__main__":
    from paddlevideo.utils.entry_point import run_entry_point

    sys.exit(run_entry_point(main, {ListFileError: 2}))
