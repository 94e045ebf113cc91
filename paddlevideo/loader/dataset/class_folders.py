"""A folder of clips sorted into one sub-folder per class → class names and a seeded,
stratified train/val[/test] split (what ``tools/build_lists.py`` writes as list files).

Class ids follow the sorted folder names from 0. With a ``group`` pattern, clips whose pattern
group has the same text (one source video) all land on one side of the split, whichever class
folder they are in, so near-duplicate clips never leak from training into validation.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".flv", ".mpeg", ".mpg", ".m4v",
                    ".wmv", ".3gp", ".ts", ".mts", ".m2ts", ".ogv", ".vob")
SPLITS = ("train", "val", "test")


class ClassFolderError(ValueError):
    """A video root, class folder or split setting that cannot give list files (one line)."""


@dataclass
class FolderScan:
    """What a scan of a video root found.

    ``videos[name]`` holds the paths (relative to the root, ``/``-separated, sorted) of class
    ``name``'s clips; ``classes`` are the names with clips, sorted (their index is the class id);
    ``skipped`` lists ``(path, reason)`` of everything left out; ``empty_classes`` the folders
    holding nothing at all (reported, not classes)."""

    root: str
    classes: List[str]
    videos: Dict[str, List[str]]
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    empty_classes: List[str] = field(default_factory=list)


def is_video_name(name: str) -> bool:
    """Whether ``name`` has a video extension (any letter case)."""
    return name.lower().endswith(VIDEO_EXTENSIONS)


def _scan_class(root: str, name: str, skipped: List[Tuple[str, str]]) -> Tuple[List[str], int]:
    """Video paths under class folder ``name`` (sub-folders included) and the count of other
    entries seen; hidden entries and non-video files go to ``skipped``."""
    videos, others = [], 0
    for folder, dirs, files in os.walk(os.path.join(root, name)):
        rel_folder = os.path.relpath(folder, root).replace(os.sep, "/")
        for d in sorted(dirs):
            if d.startswith("."):
                skipped.append((f"{rel_folder}/{d}/", "hidden folder"))
                others += 1
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            rel = f"{rel_folder}/{f}"
            others += 1
            if f.startswith("."):
                skipped.append((rel, "hidden file"))
            elif not is_video_name(f):
                skipped.append((rel, "not a video (extension)"))
            else:
                videos.append(rel)
                others -= 1
    return sorted(videos), others


def scan_class_folders(root: str) -> FolderScan:
    """Scan ``root``: each non-hidden sub-folder is a class. Raises :class:`ClassFolderError`
    for a missing or empty root, a root without class folders, and a class folder that holds
    files but no video (its id would silently shift every later class)."""
    if not os.path.isdir(root):
        raise ClassFolderError(f"VIDEO_ROOT {root}: not a folder")
    entries = sorted(os.listdir(root))
    if not entries:
        raise ClassFolderError(f"VIDEO_ROOT {root}: the folder is empty")
    skipped: List[Tuple[str, str]] = []
    names = []
    for entry in entries:
        if entry.startswith("."):
            skipped.append((entry, "hidden"))
        elif os.path.isdir(os.path.join(root, entry)):
            names.append(entry)
        else:
            skipped.append((entry, "a file outside the class folders"))
    if not names:
        raise ClassFolderError(f"VIDEO_ROOT {root}: no class folders (expected one sub-folder "
                               f"of videos per class)")
    videos: Dict[str, List[str]] = {}
    empty: List[str] = []
    for name in names:
        found, others = _scan_class(root, name, skipped)
        if found:
            videos[name] = found
        elif others == 0:
            empty.append(name)
        else:
            raise ClassFolderError(f"class folder {os.path.join(root, name)} holds no video "
                                   f"(extensions: {', '.join(VIDEO_EXTENSIONS)}); add videos or "
                                   f"move the folder out of VIDEO_ROOT")
    return FolderScan(root, sorted(videos), videos, skipped, empty)


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """``val_fraction`` in (0, 1), ``test_fraction`` in [0, 1), their sum below 1."""
    if not 0 < val_fraction < 1:
        raise ClassFolderError(f"--val_fraction {val_fraction:g}: must lie in (0, 1)")
    if not 0 <= test_fraction < 1:
        raise ClassFolderError(f"--test_fraction {test_fraction:g}: must lie in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise ClassFolderError(f"--val_fraction {val_fraction:g} + --test_fraction "
                               f"{test_fraction:g} leave nothing to train on")


def compile_group(pattern: str) -> re.Pattern:
    """``pattern`` compiled; it must have a capture group (the source of a clip)."""
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise ClassFolderError(f"--group {pattern!r}: not a regular expression ({err})") from None
    if regex.groups < 1:
        raise ClassFolderError(f"--group {pattern!r} has no capture group: put the part that "
                               f"names the source video in parentheses, e.g. '_g([0-9]+)_'")
    return regex


def group_clips(paths: Sequence[str], regex: Optional[re.Pattern]) -> Tuple[List[str], int]:
    """The source key of each path (matched on its file name; a clip that does not match is a
    source of its own) and how many matched. Raises when ``regex`` matches none."""
    if regex is None:
        return list(paths), len(paths)
    keys, matched = [], 0
    for path in paths:
        found = regex.search(os.path.basename(path))
        if found is not None and found.group(1) is not None:
            keys.append("g:" + found.group(1))
            matched += 1
        else:
            keys.append("p:" + path)
    if matched == 0:
        raise ClassFolderError(f"--group {regex.pattern!r} matches none of the {len(paths)} "
                               f"file names (e.g. {os.path.basename(paths[0])!r})")
    return keys, matched


def _assign(groups: List[Dict[int, int]], order: Sequence[int], targets: np.ndarray,
            free: List[bool]) -> List[int]:
    """Greedy: take the groups (in ``order``, still ``free``) whose clips bring the per-class
    counts closer to ``targets``; returns their indices and marks them taken."""
    counts = np.zeros_like(targets)
    taken = []
    for g in order:
        if not free[g]:
            continue
        classes = list(groups[g])
        sizes = np.array([groups[g][c] for c in classes])
        before = np.abs(counts[classes] - targets[classes]).sum()
        after = np.abs(counts[classes] + sizes - targets[classes]).sum()
        if after < before:
            counts[classes] += sizes
            free[g] = False
            taken.append(g)
    return taken


def split_clips(scan: FolderScan, val_fraction: float, test_fraction: float = 0.0,
                seed: int = 0, group: Optional[re.Pattern] = None
                ) -> Tuple[Dict[str, List[Tuple[str, int]]], int]:
    """``{split: [(path, class id), ...]}`` for ``train``, ``val`` (and ``test`` when
    ``test_fraction`` > 0), stratified: each class gives about ``round(n * fraction)`` clips to
    val and test, chosen by a seeded shuffle of whole sources; plus how many clips matched
    ``group``. The same inputs always give the same split."""
    clips = [(path, label) for label, name in enumerate(scan.classes)
             for path in scan.videos[name]]
    keys, matched = group_clips([p for p, _ in clips], group)
    index_of: Dict[str, int] = {}
    groups: List[Dict[int, int]] = []
    members: List[List[int]] = []
    for i, (key, (_, label)) in enumerate(zip(keys, clips)):
        g = index_of.setdefault(key, len(groups))
        if g == len(groups):
            groups.append({})
            members.append([])
        groups[g][label] = groups[g].get(label, 0) + 1
        members[g].append(i)
    per_class = np.array([len(scan.videos[n]) for n in scan.classes])
    order = np.random.default_rng(seed).permutation(len(groups)).tolist()
    free = [True] * len(groups)
    side = ["train"] * len(clips)
    for split, fraction in (("test", test_fraction), ("val", val_fraction)):
        if fraction <= 0:
            continue
        for g in _assign(groups, order, np.round(per_class * fraction).astype(int), free):
            for i in members[g]:
                side[i] = split
    splits = {s: [] for s in SPLITS if s != "test" or test_fraction > 0}
    for i, clip in enumerate(clips):
        splits[side[i]].append(clip)
    return splits, matched
