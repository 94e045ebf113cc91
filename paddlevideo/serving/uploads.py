"""Inputs of the service: streamed uploads, allowed URLs, and what kind of file arrived.

No client input ever names a file of the server: an upload is written under a random name in
the service's private folder, a URL is fetched by this module (only ``http``/``https`` under a
prefix the operator allowed, redirects not followed) into the same folder, and the decoder only
ever opens those files. Sizes are counted while the bytes arrive, so an upload over the limit
is cut off without being held in memory or on disk.
"""
from __future__ import annotations

import os
import posixpath
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import AsyncIterator, List, Optional, Sequence, Tuple

from python_multipart.multipart import MultipartParser, parse_options_header

from ..loader.pipelines.file_checks import image_format

URL_SCHEMES = ("http", "https")
CHUNK = 1 << 16
DRAIN_BYTES, DRAIN_SECONDS = 16 * 2**20, 2.0  # how much of a refused upload is read past it


class InputError(Exception):
    """A client input the service refuses: ``status`` (HTTP) and a one-line ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def too_large(limit: int) -> InputError:
    return InputError(413, f"upload larger than the limit of {limit / 2**20:g} MB")


def private_file(folder: str, suffix: str = "") -> str:
    """A new, empty file in ``folder`` with a random name (mode 0600); returns its path."""
    path = os.path.join(folder, secrets.token_hex(16) + suffix)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path


class _VideoField:
    """python-multipart callbacks that write the ``video`` field into ``path``."""

    def __init__(self, path: str, field: str) -> None:
        self.path, self.field = path, field
        self.file = None
        self.filename: Optional[str] = None
        self.found = False
        self._header_name = b""
        self._headers: dict = {}

    def callbacks(self) -> dict:
        return {"on_part_begin": self._begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value, "on_headers_finished": self._headers_done,
                "on_part_data": self._data, "on_part_end": self._end}

    def _begin(self) -> None:
        self._headers, self._header_name = {}, b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name = data[start:end].lower()

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._headers[self._header_name] = self._headers.get(self._header_name, b"") + \
            data[start:end]

    def _headers_done(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if options.get(b"name", b"").decode("utf-8", "replace") == self.field and not self.found:
            self.found = True
            self.filename = options.get(b"filename", b"").decode("utf-8", "replace") or None
            self.file = open(self.path, "wb")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self.file is not None:
            self.file.write(data[start:end])

    def _end(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


async def receive_upload(chunks: AsyncIterator[bytes], content_type: str, path: str,
                         limit: int, field: str = "video") -> Optional[str]:
    """Write the ``field`` part of a multipart body arriving as ``chunks`` into ``path``;
    returns the client's file name (or None). Raises :class:`InputError`: 413 as soon as more
    than ``limit`` bytes have arrived, 400 for a body that is not multipart or lacks the field."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InputError(400, "expected a multipart/form-data upload with a 'video' field, "
                              "or a JSON body {\"url\": ...}")
    target = _VideoField(path, field)
    parser = MultipartParser(boundary, target.callbacks())
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > limit:
                await _discard_some(chunks)
                raise too_large(limit)
            parser.write(chunk)
        parser.finalize()
    except InputError:
        raise
    except Exception as err:  # python-multipart's parse errors: a malformed body
        raise InputError(400, f"malformed multipart body: {err}") from None
    finally:
        target._end()
    if not target.found:
        raise InputError(400, f"the upload has no '{field}' field")
    return target.filename


async def _discard_some(chunks: AsyncIterator[bytes]) -> None:
    """Read and drop what follows of a refused body, up to ``DRAIN_BYTES`` or
    ``DRAIN_SECONDS``: a client that sends all before it reads (curl, most libraries) then gets
    the 413 instead of a reset connection, and nothing more is stored."""
    drained, deadline = 0, time.monotonic() + DRAIN_SECONDS
    async for chunk in chunks:
        drained += len(chunk)
        if drained > DRAIN_BYTES or time.monotonic() > deadline:
            return


def check_url_prefixes(prefixes: Sequence[str]) -> List[str]:
    """The operator's ``--allow_url_prefix`` values, checked: each an ``http(s)://host/...``
    prefix (a bare host gets a ``/`` so ``http://a.com`` cannot match ``http://a.com.evil``).
    Raises ValueError naming a prefix that could let a client reach anything else."""
    checked = []
    for prefix in prefixes:
        parts = urllib.parse.urlsplit(prefix)
        if parts.scheme.lower() not in URL_SCHEMES or not parts.hostname:
            raise ValueError(f"--allow_url_prefix {prefix}: only http:// and https:// prefixes "
                             f"with a host can be allowed")
        checked.append(prefix if parts.path else prefix + "/")
    return checked


def check_url(url: object, prefixes: Sequence[str]) -> str:
    """``url`` if a client may have it fetched, else :class:`InputError` (403/400): URLs are
    off without prefixes; only ``http``/``https``; no user info, no ``..`` segments, and it
    must start with an allowed prefix."""
    if not isinstance(url, str) or not url:
        raise InputError(400, "'url' must be a non-empty string")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES:
        what = "a local path" if not scheme or len(scheme) == 1 else f"the scheme '{scheme}:'"
        raise InputError(403, f"URL refused: {what} is never read; only http(s) URLs under an "
                              f"allowed prefix")
    if not prefixes:
        raise InputError(403, "URL inputs are off on this server (start it with "
                              "--allow_url_prefix to allow some)")
    unquoted = urllib.parse.unquote(parts.path)
    if parts.username or parts.password or ".." in unquoted.split("/") or "\\" in unquoted:
        raise InputError(403, "URL refused: user info, '..' segments and backslashes are not "
                              "allowed")
    normal = urllib.parse.urlunsplit((scheme, parts.netloc.lower(),
                                      posixpath.normpath(parts.path or "/"), parts.query, ""))
    for prefix in prefixes:
        pre = urllib.parse.urlsplit(prefix)
        start = urllib.parse.urlunsplit((pre.scheme.lower(), pre.netloc.lower(), pre.path,
                                         "", ""))
        if normal.startswith(start) or normal == start.rstrip("/"):
            return url
    raise InputError(403, "URL refused: it is not under an allowed prefix")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        raise InputError(422, f"URL answered a redirect ({code}); redirects are not followed")


def download(url: str, path: str, limit: int, timeout: float = 30.0) -> None:
    """Fetch an already checked ``url`` into ``path``, at most ``limit`` bytes (blocking)."""
    opener = urllib.request.build_opener(_NoRedirect)
    received = 0
    try:
        with opener.open(urllib.request.Request(url), timeout=timeout) as response, \
                open(path, "wb") as out:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise too_large(limit)
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                received += len(chunk)
                if received > limit:
                    raise too_large(limit)
                out.write(chunk)
    except InputError:
        raise
    except urllib.error.HTTPError as err:
        raise InputError(422, f"URL answered HTTP {err.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise InputError(422, f"URL could not be fetched: {reason}") from None


# First bytes of the containers the decoder is allowed to open. Anything else (a playlist, a
# concat script, an image sequence pattern) could make FFmpeg open other files, so it is
# refused before any decoder sees it.
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")


def container_name(head: bytes) -> Optional[str]:
    """The video container ``head`` (a file's first 512 bytes) starts with, or None."""
    if len(head) >= 8 and head[4:8] in _ISO_BOXES:
        return "MP4/MOV"
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return "AVI"
    signatures: Tuple[Tuple[bytes, str], ...] = (
        (b"\x1a\x45\xdf\xa3", "Matroska/WebM"), (b"FLV\x01", "FLV"),
        (b"\x00\x00\x01\xba", "MPEG-PS"), (b"OggS", "Ogg"),
        (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "ASF"))
    for signature, name in signatures:
        if head.startswith(signature):
            return name
    if len(head) > 188 and head[0] == head[188] == 0x47:  # two 188-byte packets in step
        return "MPEG-TS"
    return None


def check_frame_size(path: str, max_pixels: int) -> None:
    """Refuse (422) a video whose frames are larger than ``max_pixels``, from its header, before
    anything is decoded: a small file can declare huge frames that would fill memory."""
    import av

    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
    except Exception as err:  # no video stream, unreadable header: the decoder's reason
        text = " ".join(str(err).split())[:200] or type(err).__name__
        raise InputError(422, f"not a readable video: {text}") from None
    if width * height > max_pixels:
        raise InputError(422, f"frames of {width}x{height} are larger than this server takes "
                              f"({max_pixels} pixels)")


def check_container(path: str) -> str:
    """The container of an arrived file, or :class:`InputError` 415 saying what it is not."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        raise InputError(415, "the upload is empty (0 bytes), not a video")
    image = image_format(head)
    if image:
        raise InputError(415, f"the upload is a {image} image, not a video")
    name = container_name(head)
    if name is None:
        raise InputError(415, "the upload is not a video file (no MP4/MOV, AVI, Matroska/WebM, "
                              "FLV, MPEG-PS/TS, Ogg or ASF header)")
    return name
