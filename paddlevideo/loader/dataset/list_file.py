"""Read ``<path> <label>`` list files (Kinetics / PaddleVideo format)."""
from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Union

from ...utils.fileio import read_utf8_lines

# ASCII digits only: int() also takes "1_0", "+3", " 0x1"-like forms and non-ASCII digits
PLAIN_INTEGER = re.compile(r"-?[0-9]+")


class ListFileError(ValueError):
    """A list file line that cannot be used; the message names the file and line number."""


def read_video_list(file_path: str, data_prefix: Optional[str] = None,
                    num_classes: Optional[int] = None) -> List[Dict[str, Union[str, int]]]:
    """One dict ``{filename, labels, line}`` per non-blank line of ``file_path``.

    The label is the last whitespace-separated field, so paths may contain spaces. Relative paths
    are joined to ``data_prefix`` when it is given. With ``num_classes`` labels must lie in
    ``[0, num_classes)``. The file is UTF-8 (a byte-order mark is allowed); labels are plain
    decimal integers.
    """
    if not os.path.isfile(file_path):
        raise FileNotFoundError(f"video list file not found: {file_path}")
    videos = []
    for line_no, line in enumerate(read_utf8_lines(file_path, ListFileError), start=1):
        text = line.strip()
        if not text:
            continue
        fields = text.rsplit(None, 1)
        where = f"{file_path}:{line_no}"
        if len(fields) != 2:
            raise ListFileError(f"{where}: expected '<path> <label>', got {text!r}")
        path, label_text = fields
        if not PLAIN_INTEGER.fullmatch(label_text):
            raise ListFileError(f"{where}: label must be an integer, got {label_text!r}")
        label = int(label_text)
        if label < 0 or (num_classes is not None and label >= num_classes):
            bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
            raise ListFileError(f"{where}: label {label} out of range {bound}")
        if data_prefix:
            path = os.path.join(data_prefix, path)
        videos.append({"filename": path, "labels": label, "line": line_no})
    if not videos:
        raise ListFileError(f"{file_path}: the list has no videos")
    return videos
