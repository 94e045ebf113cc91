"""Every node must read the same list files: a checksum of each compared across ranks at start.

Several nodes read ``DATASET.<mode>.file_path`` by the same path, from a shared file system or
from a copy on each node. A copy that differs (an older list, a partial sync) would silently
train each rank on other videos and labels; :func:`check_same_lists` makes it one error, raised
on every rank, naming the file and the ranks and nodes whose copy differs from rank 0's.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ..utils.dist import all_gather_rows, describe_process, get_world_size

MODES = ("train", "valid", "test")
_DIGEST = 32      # sha256 bytes
_DESCRIPTION = 96  # bytes of "rank r/w on node n/nn (host)" carried with the digests


class ListMismatchError(RuntimeError):
    """A list file whose content is not the same on every node."""


def list_files(cfg: Dict[str, Any]) -> List[Tuple[str, str]]:
    """``[(key, path)]`` of the ``DATASET.<mode>.file_path`` entries the config has."""
    dataset = cfg.get("DATASET") or {}
    found = []
    for mode in MODES:
        path = (dataset.get(mode) or {}).get("file_path")
        if path:
            found.append((f"DATASET.{mode}.file_path", str(path)))
    return found


def file_digest(path: str) -> Optional[bytes]:
    """sha256 of the file's bytes; None when this node has no such file."""
    if not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()


def _encode_row(digests: List[Optional[bytes]], description: str) -> np.ndarray:
    """One rank's row: per file a presence byte + digest, then its description (UTF-8)."""
    row = np.zeros(len(digests) * (1 + _DIGEST) + _DESCRIPTION, dtype=np.int64)
    for i, digest in enumerate(digests):
        if digest is not None:
            start = i * (1 + _DIGEST)
            row[start] = 1
            row[start + 1:start + 1 + _DIGEST] = np.frombuffer(digest, dtype=np.uint8)
    text = description.encode("utf-8")[:_DESCRIPTION]
    row[len(digests) * (1 + _DIGEST):][:len(text)] = np.frombuffer(text, dtype=np.uint8)
    return row


def _decode_row(row: np.ndarray, count: int) -> Tuple[List[Optional[bytes]], str]:
    digests: List[Optional[bytes]] = []
    for i in range(count):
        start = i * (1 + _DIGEST)
        present = row[start] == 1
        digests.append(bytes(row[start + 1:start + 1 + _DIGEST].astype(np.uint8))
                       if present else None)
    text = bytes(row[count * (1 + _DIGEST):].astype(np.uint8)).rstrip(b"\0")
    return digests, text.decode("utf-8", errors="replace")


def _short(digest: Optional[bytes]) -> str:
    return "missing" if digest is None else f"sha256 {digest.hex()[:12]}"


def check_same_lists(cfg: Dict[str, Any],
                     gather: Callable[[np.ndarray], np.ndarray] = all_gather_rows) -> int:
    """Compare the list files of ``cfg`` across all ranks; return how many were compared.

    ``gather(row) -> [world, len(row)]`` collects every rank's row (an all-gather; replaceable
    for tests). Raises :class:`ListMismatchError` on every rank when any rank's copy of a file
    differs from rank 0's or is missing: the line names the key, the path and each differing
    rank with its node, so the node to fix is plain.
    """
    files = list_files(cfg)
    if not files or (get_world_size() == 1 and gather is all_gather_rows):
        return len(files)
    own = [file_digest(path) for _, path in files]
    table = gather(_encode_row(own, describe_process()))
    rows = [_decode_row(np.asarray(row), len(files)) for row in table]
    problems = []
    for index, (key, path) in enumerate(files):
        reference, reference_who = rows[0][0][index], rows[0][1]
        for digests, who in rows[1:]:
            if digests[index] != reference:
                problems.append(f"{key} {path}: {who} has {_short(digests[index])}, "
                                f"{reference_who} has {_short(reference)}")
    if problems:
        raise ListMismatchError("list files differ across nodes (every node must read the same "
                                "lists: a shared file system or identical copies): "
                                + "; ".join(problems))
    return len(files)
