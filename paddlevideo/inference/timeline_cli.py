"""``tools/predict.py --timeline``: windows, segments, JSON/CSV, annotated videos and PNGs.

Called by the tool with its parsed arguments; prints one block per input, a line per window
as it is decided for live sources, and returns the exit status.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

from .frame_stream import StreamError, is_live_source, source_kind, stdin_is_terminal
from .timeline import segments_csv, segments_csv_path
from .timeline_runner import TimelineResult

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")


def wants_timeline(args: argparse.Namespace) -> bool:
    """``--timeline``, or an input that only a timeline can read (URL, camera, ``-``)."""
    return bool(args.timeline) or source_kind(args.input_file) != "file"


def check_timeline_args(args: argparse.Namespace) -> Optional[str]:
    """The first problem with the timeline flags, as one line, or None."""
    if args.stride is not None and args.stride <= 0:
        return f"--stride must be positive, got {args.stride}"
    if args.max_seconds is not None and args.max_seconds <= 0:
        return f"--max_seconds must be positive, got {args.max_seconds}"
    if args.reconnects < 0:
        return f"--reconnects must be 0 or more, got {args.reconnects}"
    kind = source_kind(args.input_file)
    if kind == "stdin" and stdin_is_terminal():
        return "--input_file -: standard input is a terminal; pipe a video into it"
    if kind == "file" and not os.path.exists(args.input_file):
        return f"input not found: {args.input_file}"
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


def timeline_record(result: TimelineResult, predictor: Any) -> Dict[str, Any]:
    """One input's JSON entry: the file's top-k (window probabilities averaged) plus the
    timeline."""
    top_k: List[Dict[str, Any]] = []
    if result.prob_sum is not None:
        top_k = [{"class_id": c, "class_name": n, "score": s} for c, n, s in
                 predictor.top_classes(result.prob_sum / len(result.windows))]
    return {"file": result.source, "top_k": top_k, "fps": result.fps,
            "duration": round(result.duration, 4), "speed": round(result.speed, 4),
            "wall_seconds": round(result.wall_seconds, 3),
            "windows": [w.record() for w in result.windows],
            "segments": [s.record() for s in result.segments],
            "skipped_windows": result.skipped, "dropped_windows": result.dropped,
            "interrupted": result.interrupted, "error": result.error,
            "stream": result.stream_stats,
            "output_video": result.output_video}


def format_timeline(result: TimelineResult) -> str:
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


def print_window(window: Any, lag: float) -> None:
    print(f"[{window.start:8.2f} - {window.end:8.2f} s] {window.top_k[0][1]} "
          f"{window.score:.3f}  (lag {lag:.2f} s)", flush=True)


def run_one(predictor: Any, source: str, args: argparse.Namespace,
            several: bool) -> Tuple[Optional[TimelineResult], Optional[str]]:
    """``(result, None)`` or ``(None, error line)`` for one input."""
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
        from .annotate import timeline_png

        timeline_png(png, result.segments, result.duration, source)
        result.output_png = png
    return result, None


def run_timeline_command(args: argparse.Namespace, predictor: Any) -> int:
    """Every input of ``args.input_file`` through ``predictor``; writes ``--output`` JSON and
    its segments CSV; exit status 1 if an input failed, 130 after Ctrl-C."""
    from ..utils.fileio import write_text_atomic
    from .predictor import list_videos

    several = source_kind(args.input_file) == "file" and os.path.isdir(args.input_file)
    sources = list_videos(args.input_file) if several else [args.input_file]
    if not sources:
        print(f"Error: no video files in {args.input_file}", file=sys.stderr)
        return 1
    records, failures, interrupted = [], [], False
    for source in sources:
        result, error = run_one(predictor, source, args, several)
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
