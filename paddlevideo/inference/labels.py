"""Read a class-name map: one ``<class id> <name>`` per line (Kinetics-400_label_list.txt)."""
from __future__ import annotations

import os
import re
from typing import List, Optional

from ..utils.fileio import read_utf8_lines

_CLASS_ID = re.compile(r"[0-9]+")  # plain decimal: int() would also take "1_0" or "+3"

DEFAULT_LABEL_FILE = os.path.join("data", "k400", "Kinetics-400_label_list.txt")
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class LabelMapError(ValueError):
    """A label file that is missing, malformed or does not fit the model."""


def resolve_label_file(label_file: Optional[str]) -> str:
    """``label_file``, or the Kinetics-400 list: relative to the working directory first, then to
    the repository this package lives in."""
    if label_file:
        return label_file
    if os.path.isfile(DEFAULT_LABEL_FILE):
        return DEFAULT_LABEL_FILE
    return os.path.join(_PACKAGE_ROOT, DEFAULT_LABEL_FILE)


def read_label_map(path: str) -> List[str]:
    """Class names indexed by class id. Ids must be ``0..K-1``, each once (any order); blank lines
    are skipped; a name may contain spaces or underscores. UTF-8, a byte-order mark allowed."""
    if not os.path.isfile(path):
        raise LabelMapError(f"label file not found: {path}")
    names = {}
    for line_no, line in enumerate(read_utf8_lines(path, LabelMapError), start=1):
        text = line.strip()
        if not text:
            continue
        parts = text.split(maxsplit=1)
        if len(parts) != 2 or not _CLASS_ID.fullmatch(parts[0]):
            raise LabelMapError(f"{path}:{line_no}: expected '<class id> <name>', got {text!r}")
        class_id = int(parts[0])
        if class_id in names:
            raise LabelMapError(f"{path}:{line_no}: class id {class_id} appears twice")
        names[class_id] = parts[1].strip()
    if not names:
        raise LabelMapError(f"label file {path} has no classes")
    expected = set(range(len(names)))
    if set(names) != expected:
        wrong = sorted(set(names) - expected)[:5]
        raise LabelMapError(f"{path}: class ids must be 0..{len(names) - 1}; found {wrong}")
    return [names[i] for i in range(len(names))]


def check_label_count(names: List[str], num_classes: int, path: str, source: str) -> None:
    """Refuse a label map whose size differs from the model's number of classes."""
    if len(names) != num_classes:
        raise LabelMapError(f"label file {path} has {len(names)} classes but {source} has "
                            f"{num_classes}; pass the label list the model was trained with "
                            f"(--label_file)")
