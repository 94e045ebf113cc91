"""Upload and URL checks: which URLs a client may have fetched, which prefixes an operator may
allow, which first bytes count as a video container, and the streamed multipart reader."""
import asyncio

import pytest

from paddlevideo.serving.uploads import (
    InputError,
    check_container,
    check_frame_size,
    check_url,
    check_url_prefixes,
    container_name,
    receive_upload,
)
from tests.serving.server_helpers import multipart

PREFIXES = ["http://media.example/videos/"]


@pytest.mark.parametrize("url, status, words", [
    ("file:///etc/passwd", 403, "scheme 'file:'"),
    ("/etc/passwd", 403, "local path"),
    ("C:/secret.mp4", 403, "local path"),
    ("gopher://media.example/videos/a.mp4", 403, "scheme 'gopher:'"),
    ("http://media.example/other/a.mp4", 403, "not under an allowed prefix"),
    ("http://media.example.evil/videos/a.mp4", 403, "not under an allowed prefix"),
    ("http://media.example/videos/../private/a.mp4", 403, "'..' segments"),
    ("http://media.example/videos/%2E%2E/private/a.mp4", 403, "'..' segments"),
    ("http://user:pw@media.example/videos/a.mp4", 403, "user info"),
    (42, 400, "non-empty string"),
])
def test_refused_urls(url, status, words):
    with pytest.raises(InputError) as caught:
        check_url(url, PREFIXES)
    assert caught.value.status == status and words in caught.value.message


def test_allowed_url_and_urls_off_without_prefixes():
    assert check_url("HTTP://Media.Example/videos/a.mp4", PREFIXES) == \
        "HTTP://Media.Example/videos/a.mp4"
    with pytest.raises(InputError, match="URL inputs are off"):
        check_url("http://media.example/videos/a.mp4", [])


def test_operator_prefixes_are_http_with_a_host():
    assert check_url_prefixes(["https://cdn.example"]) == ["https://cdn.example/"]
    for bad in ("file:///srv/videos/", "/srv/videos", "ftp://host/", "http:///nohost"):
        with pytest.raises(ValueError, match="only http:// and https://"):
            check_url_prefixes([bad])


@pytest.mark.parametrize("head, name", [
    (b"\x00\x00\x00\x20ftypisom", "MP4/MOV"), (b"RIFF\x00\x00\x00\x00AVI LIST", "AVI"),
    (b"\x1a\x45\xdf\xa3\x01", "Matroska/WebM"), (b"#EXTM3U\n#EXT-X-VERSION:3", None),
    (b"ffconcat version 1.0\nfile /etc/passwd", None), (b"G" + b"\0" * 300, None),
    (b"G" + b"\0" * 187 + b"G" + b"\0" * 20, "MPEG-TS"),
])
def test_container_signatures(head, name):
    assert container_name(head) == name


def test_check_container_names_images_and_unknown_files(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 100)
    (tmp_path / "b.m3u8").write_bytes(b"#EXTM3U\nfile:///etc/passwd\n")
    with pytest.raises(InputError, match="JPEG image"):
        check_container(str(tmp_path / "a.jpg"))
    with pytest.raises(InputError, match="not a video file") as caught:
        check_container(str(tmp_path / "b.m3u8"))
    assert caught.value.status == 415


async def _chunks(data: bytes, size: int):
    for start in range(0, len(data), size):
        yield data[start:start + size]


def test_streamed_multipart_writes_only_the_video_field(tmp_path):
    body, content_type = multipart({"note": ("n.txt", b"not me"),
                                    "video": ("clip.mp4", b"V" * 100_000)})
    path = tmp_path / "upload"
    name = asyncio.run(receive_upload(_chunks(body, 777), content_type, str(path), 2**20))
    assert name == "clip.mp4" and path.read_bytes() == b"V" * 100_000
    with pytest.raises(InputError) as caught:
        asyncio.run(receive_upload(_chunks(body, 777), content_type, str(path), 50_000))
    assert caught.value.status == 413
    with pytest.raises(InputError, match="no 'video' field"):
        only_note, kind = multipart({"note": ("n.txt", b"x")})
        asyncio.run(receive_upload(_chunks(only_note, 100), kind, str(path), 2**20))


def test_frames_over_the_pixel_limit_are_refused_from_the_header(tmp_path):
    import numpy as np

    from tests.conftest import write_video

    path = write_video(tmp_path / "v.mp4", np.zeros((3, 64, 96, 3), np.uint8))
    check_frame_size(str(path), 96 * 64)
    with pytest.raises(InputError, match="frames of 96x64 are larger") as caught:
        check_frame_size(str(path), 96 * 64 - 1)
    assert caught.value.status == 422
