"""List files: UTF-8 with an optional BOM, plain integer labels, errors naming file and line."""
import re

import pytest

from paddlevideo.loader.dataset.list_file import ListFileError, read_video_list


def _write(tmp_path, data: bytes):
    path = tmp_path / "train.list"
    path.write_bytes(data)
    return str(path)


def test_a_byte_order_mark_is_not_part_of_the_first_path(tmp_path):
    path = _write(tmp_path, "\ufeffvideos/a.mp4 0\r\nvidéos/b c.mp4 3\n".encode("utf-8"))
    videos = read_video_list(path, data_prefix="/data")
    assert [(v["filename"], v["labels"], v["line"]) for v in videos] == [
        ("/data/videos/a.mp4", 0, 1), ("/data/vidéos/b c.mp4", 3, 2)]


def test_non_utf8_bytes_are_an_error_naming_file_and_line(tmp_path):
    path = _write(tmp_path, b"a.mp4 0\n\nvid\xe9o.mp4 1\n")  # Latin-1 e-acute
    with pytest.raises(ListFileError, match=r"train.list:3: not UTF-8 text \(byte 0xe9 at "
                                            r"column 4\)"):
        read_video_list(path)


@pytest.mark.parametrize("label", ["1_0", "+3", "0x1", "1.0", "\u0663", "1e1"])
def test_labels_are_plain_decimal_integers(tmp_path, label):
    path = _write(tmp_path, f"a.mp4 0\nb.mp4 {label}\n".encode())
    with pytest.raises(ListFileError, match=rf"train.list:2: label must be an integer, got "
                                            rf"'{re.escape(label)}'"):
        read_video_list(path)


def test_leading_zeros_and_spaced_labels_are_read(tmp_path):
    path = _write(tmp_path, b"a.mp4   007  \n")
    assert read_video_list(path)[0]["labels"] == 7
