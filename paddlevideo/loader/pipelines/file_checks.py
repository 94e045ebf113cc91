"""Cheap checks of a video file's bytes before a decoder opens it: an image under a video name,
and a container cut short (its own size fields say more bytes than the file has).

Both read a few bytes (the first 16, then 8-16 per top-level box or chunk), so they cost
nothing next to opening a decoder, and they give the same answer to both backends and to every
draw of the file.
"""
from __future__ import annotations

import os
import struct
from typing import BinaryIO, Optional

_IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
)
# Top-level boxes of ISO base media files (MP4, MOV, 3GP): the walk starts only on one of these.
_ISO_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"moof",
              b"mfra", b"styp", b"sidx", b"meta", b"junk", b"pdin"}
_MAX_BOXES = 100_000  # a fragmented MP4 has two boxes per fragment; stop on garbage


def image_format(head: bytes) -> Optional[str]:
    """The image format ``head`` (a file's first bytes) starts with, or None."""
    for signature, name in _IMAGE_SIGNATURES:
        if head.startswith(signature):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return None


def _iso_truncation(f: BinaryIO, size: int) -> Optional[str]:
    offset = 0
    for _ in range(_MAX_BOXES):
        if offset + 8 > size:
            return None if offset == size else f"it ends inside a box header at byte {offset}"
        f.seek(offset)
        header = f.read(16)
        length, kind = struct.unpack(">I4s", header[:8])
        if length == 1 and len(header) == 16:  # 64-bit size follows
            length = struct.unpack(">Q", header[8:16])[0]
        elif length == 0:  # "extends to the end of the file"
            return None
        if length < 8 or (offset == 0 and kind not in _ISO_BOXES):
            return None  # not a box structure this check understands: let the decoder judge
        if offset + length > size:
            name = kind.decode("latin-1")
            return (f"its '{name}' box needs {offset + length} bytes but the file has {size} "
                    f"(cut short)")
        offset += length
    return None


def _riff_truncation(f: BinaryIO, size: int) -> Optional[str]:
    offset = 0
    while offset + 8 <= size:  # RIFF, then AVIX chunks of an OpenDML AVI
        f.seek(offset)
        kind, length = struct.unpack("<4sI", f.read(8))
        if kind != b"RIFF" or length == 0:  # unknown, or a writer that never set the size
            return None
        end = offset + 8 + length + (length & 1)
        if end - (length & 1) > size:
            return f"its RIFF chunk needs {offset + 8 + length} bytes but the file has {size} " \
                   f"(cut short)"
        offset = end
    return None


def container_truncation(path: str) -> Optional[str]:
    """Why an MP4/MOV or AVI file is incomplete, or None (complete, or another container).

    A faststart MP4 cut short keeps its index, so decoders report every frame of the full video
    while the data of the last ones are gone; its ``mdat`` box still states the full size.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] == b"RIFF":
            return _riff_truncation(f, size)
        if len(head) >= 8 and head[4:8] in _ISO_BOXES:
            return _iso_truncation(f, size)
    return None
