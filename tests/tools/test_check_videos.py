"""tools/check_videos.py: finds each kind of bad video, prints why, writes a clean list."""
import subprocess
import sys

import numpy as np

from tests.conftest import REPO_ROOT, numbered_frames, write_video

SCRIPT = str(REPO_ROOT / "tools" / "check_videos.py")


def _run(*args):
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True,
                          text=True, cwd=str(REPO_ROOT))


def _videos(folder):
    frames = numbered_frames(30).copy()
    frames[:, :16, :16] = np.random.default_rng(0).integers(0, 256, (30, 16, 16, 3))
    write_video(folder / "good one.mp4", frames)
    write_video(folder / "short.mp4", frames[:5])
    indexed = write_video(folder / "indexed.mp4", frames, faststart=True).read_bytes()
    broken = bytearray(indexed)
    broken[len(broken) // 2:] = bytes(len(broken) - len(broken) // 2)
    (folder / "wrong_count.mp4").write_bytes(bytes(broken))
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "noise.mp4").write_bytes(np.random.default_rng(1).bytes(3000))
    lines = ["good one.mp4 0", "missing.mp4 1", "", "empty.mp4 2", "noise.mp4 3",
             "wrong_count.mp4 4", "short.mp4 5"]
    (folder / "all.list").write_text("\n".join(lines) + "\n")
    return folder / "all.list"


def test_reports_bad_videos_and_writes_clean_list(tmp_path):
    listing = _videos(tmp_path)
    out = tmp_path / "clean.list"
    done = _run(listing, "--data_prefix", tmp_path, "--min_frames", "10", "--workers", "2",
                "--out", out)
    assert done.returncode == 1
    assert "5 of 6 videos are bad" in done.stdout
    table = {line.split()[0]: line for line in done.stdout.splitlines()[2:]
             if line.strip()[:1].isdigit()}
    assert "file not found" in table["2"] and "missing.mp4" in table["2"]
    assert "empty (0 bytes)" in table["4"]
    assert "cannot open" in table["5"]
    assert "reports 30 frames" in table["6"]
    assert "only 5 frames" in table["7"]
    assert out.read_text() == "good one.mp4 0\n"
    assert "checking videos" in done.stderr  # the progress bar


def test_clean_list_exits_zero(tmp_path):
    _videos(tmp_path)
    listing = tmp_path / "ok.list"
    listing.write_text(f"{tmp_path}/good one.mp4 0\n{tmp_path}/short.mp4 1\n")
    done = _run(listing)
    assert done.returncode == 0 and "all 2 videos are readable" in done.stdout


def test_malformed_list_is_reported_with_line(tmp_path):
    listing = tmp_path / "bad.list"
    listing.write_text("a.mp4 0\nb.mp4 x\n")
    done = _run(listing)
    assert done.returncode == 2 and "bad.list:2: label must be an integer" in done.stderr


def test_images_and_cut_files_are_reported_and_a_bom_list_is_cleaned(tmp_path):
    import cv2

    frames = numbered_frames(30).copy()
    frames[:, :16, :16] = np.random.default_rng(0).integers(0, 256, (30, 16, 16, 3))
    write_video(tmp_path / "good.mp4", frames)
    whole = write_video(tmp_path / "whole.mp4", frames, faststart=True).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) * 9 // 10])
    cv2.imwrite(str(tmp_path / "frame.png"), frames[0])
    (tmp_path / "frame.mp4").write_bytes((tmp_path / "frame.png").read_bytes())
    listing = tmp_path / "bom.list"
    listing.write_bytes("\ufeffgood.mp4 0\r\ncut.mp4 1\r\nframe.mp4 2\r\n".encode())
    out = tmp_path / "clean.list"
    done = _run(listing, "--data_prefix", tmp_path, "--out", out)
    assert done.returncode == 1 and "2 of 3 videos are bad" in done.stdout
    table = {line.split()[0]: line for line in done.stdout.splitlines()[2:]
             if line.strip()[:1].isdigit()}
    assert "the file is incomplete" in table["2"] and "is a PNG image, not a video" in table["3"]
    assert out.read_text() == "good.mp4 0\n"
