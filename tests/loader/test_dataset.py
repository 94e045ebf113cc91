"""SFVideoDataset: list files, sample order, short cycles and every kind of bad video."""
import logging
import re
from pathlib import Path

import av
import numpy as np
import pytest

from paddlevideo.loader import (
    BadVideoError,
    SFVideoDataset,
    build_dataset,
    build_pipeline,
    check_bad_video_fraction,
    seed_pipeline_rng,
)
from paddlevideo.loader.dataset import ListFileError
from tests.conftest import numbered_frames, train_pipeline, write_video

# num_frames * sampling_rate = 64 > 60 frames: every clip needs the last frames of the video
WHOLE_VIDEO = train_pipeline(48, 48, 40, sampling_rate=8, flip=False)


def _write_list(path: Path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _dataset(tmp_path, lines, backend="decord", **kwargs):
    pipeline = dict(WHOLE_VIDEO, decode_sampler=dict(WHOLE_VIDEO["decode_sampler"],
                                                     backend=backend))
    return SFVideoDataset(_write_list(tmp_path / "list.txt", lines), build_pipeline(pipeline),
                          **kwargs)


@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory):
    """One file per kind of bad video."""
    folder = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    frames = numbered_frames(60).copy()
    frames[:, :16, :16] = rng.integers(0, 256, (60, 16, 16, 3))  # bulk, so cuts hit frame data
    whole = write_video(folder / "whole.mp4", frames).read_bytes()
    indexed = write_video(folder / "indexed.mp4", frames, faststart=True).read_bytes()
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "noise.mp4").write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (folder / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    # index at the front says 60 frames, but the second half of the frame data is gone
    broken = bytearray(indexed)
    broken[len(broken) // 2:] = bytes(len(broken) - len(broken) // 2)
    (folder / "wrong_count.mp4").write_bytes(bytes(broken))
    with av.open(str(folder / "audio_only.m4a"), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                           layout="mono")
        frame.sample_rate = 16000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return {
        "missing": (folder / "missing.mp4", "not found"),
        "zero_bytes": (folder / "empty.mp4", "empty"),
        "random_bytes": (folder / "noise.mp4", "cannot open"),
        "truncated": (folder / "truncated.mp4", "cannot open|incomplete"),
        "no_video_stream": (folder / "audio_only.m4a", "cannot open|no video stream"),
        "wrong_frame_count": (folder / "wrong_count.mp4", "reports 60 frames"),
    }


def test_items_have_the_documented_shapes(tmp_path, test_videos):
    ds = _dataset(tmp_path, [f"{test_videos['numbered30']} 3"])
    slow, fast, label = ds[0]
    assert slow.shape == (3, 2, 40, 40) and fast.shape == (3, 8, 40, 40)
    assert slow.dtype == fast.dtype == np.float32
    assert label.dtype == np.int64 and label.tolist() == [3]


def test_test_mode_orders_video_clip_crop(tmp_path, test_videos):
    lines = [f"{test_videos['numbered30']} 1", f"{test_videos['landscape']} 2"]
    ds = _dataset(tmp_path, lines, test_mode=True, num_ensemble_views=2, num_spatial_crops=3)
    assert len(ds) == 12 and ds.num_videos == 2
    info = ds.info[8]
    assert info["filename"] == str(test_videos["landscape"]) and info["labels"] == 2
    assert (info["temporal_sample_index"], info["spatial_sample_index"]) == (0, 2)
    slow, fast, label, index = ds[8]
    assert label.tolist() == [2] and index.dtype == np.int64 and index.tolist() == [8]


def test_short_cycle_index_reaches_the_crop(tmp_path, test_videos):
    cfg = {"decode_sampler": dict(WHOLE_VIDEO["decode_sampler"]),
           "transform": [{"MultiCrop": {"target_size": 40, "default_crop_size": 48}},
                         {"Image2Array": None}, {"PackOutput": {"alpha": 4}}]}
    ds = SFVideoDataset(_write_list(tmp_path / "l.txt", [f"{test_videos['numbered30']} 0"]),
                        build_pipeline(cfg))
    assert ds[0][1].shape[2:] == (40, 40)
    assert ds[(0, 0)][1].shape[2:] == (24, 24)
    assert ds[(0, 1)][1].shape[2:] == (34, 34)


def test_build_dataset_accepts_paddlevideo_keys(tmp_path, test_videos):
    path = _write_list(tmp_path / "l.txt", [f"{test_videos['numbered30'].name} 0"])
    ds = build_dataset(({"format": "SFVideoDataset", "file_path": path, "suffix": ".mp4",
                         "data_prefix": str(test_videos["numbered30"].parent)}, WHOLE_VIDEO))
    assert ds.info[0]["filename"] == str(test_videos["numbered30"])
    assert ds[0][1].shape == (3, 8, 40, 40)


def test_paths_with_spaces(tmp_path):
    ds = _dataset(tmp_path, ["my videos/a b.mp4 4", "", "c.mp4 0"])
    assert [v["filename"] for v in ds.videos] == ["my videos/a b.mp4", "c.mp4"]
    assert ds.info[0]["labels"] == 4


@pytest.mark.parametrize("lines,kwargs,message", [
    (["a.mp4 0", "b.mp4"], {}, r"list.txt:2: expected '<path> <label>'"),
    (["a.mp4 0", "", "b.mp4 cat"], {}, r"list.txt:3: label must be an integer"),
    (["a.mp4 7"], {"num_classes": 5}, r"list.txt:1: label 7 out of range \[0, 5\)"),
    (["a.mp4 -1"], {}, r"list.txt:1: label -1 out of range"),
])
def test_list_errors_name_file_and_line(tmp_path, lines, kwargs, message):
    with pytest.raises(ListFileError, match=message):
        _dataset(tmp_path, lines, **kwargs)


def test_missing_list_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.list"):
        SFVideoDataset(str(tmp_path / "nope.list"), build_pipeline(WHOLE_VIDEO))


@pytest.mark.parametrize("backend", ["decord", "pyav"])
@pytest.mark.parametrize("kind", ["missing", "zero_bytes", "random_bytes", "truncated",
                                  "no_video_stream", "wrong_frame_count"])
def test_bad_training_video_is_replaced_logged_once_and_counted(
        tmp_path, test_videos, bad_videos, caplog, kind, backend):
    bad_path, reason = bad_videos[kind]
    ds = _dataset(tmp_path, [f"{bad_path} 0", f"{test_videos['numbered30']} 1"],
                  backend=backend, num_retries=20)
    seed_pipeline_rng(0)
    with caplog.at_level(logging.WARNING, logger="paddlevideo"):
        for _ in range(2):
            slow, fast, label = ds[0]
            assert label.tolist() == [1] and fast.shape == (3, 8, 40, 40)
    assert list(ds.bad_videos()) == [str(bad_path)]
    assert re.search(reason, ds.bad_videos()[str(bad_path)])
    warnings = [r for r in caplog.records if str(bad_path) in r.getMessage()]
    assert len(warnings) == 1


def test_all_retries_failing_raises_with_the_files(tmp_path, bad_videos):
    ds = _dataset(tmp_path, [f"{bad_videos['missing'][0]} 0", f"{bad_videos['zero_bytes'][0]} 0"],
                  num_retries=3)
    with pytest.raises(BadVideoError, match="3 attempts") as err:
        ds[0]
    assert "missing.mp4: file not found" in str(err.value)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_bad_test_video_is_an_error_naming_it(tmp_path, bad_videos, backend):
    path = bad_videos["truncated"][0]
    ds = _dataset(tmp_path, [f"{path} 0"], backend=backend, test_mode=True,
                  num_ensemble_views=2, num_spatial_crops=3)
    with pytest.raises(BadVideoError, match=f"cannot test on video {path}"):
        ds[4]


def test_short_video_is_padded_not_bad(tmp_path, test_videos):
    ds = _dataset(tmp_path, [f"{test_videos['short5']} 0"])
    assert ds[0][1].shape == (3, 8, 40, 40)
    assert ds.bad_videos() == {}


def test_bad_fraction_check(tmp_path, test_videos, bad_videos):
    lines = [f"{bad_videos['missing'][0]} 0"] + [f"{test_videos['numbered30']} 0"] * 3
    ds = _dataset(tmp_path, lines, num_retries=30)
    seed_pipeline_rng(1)
    ds[0]
    check_bad_video_fraction(ds, max_fraction=0.25)  # 1 of 4 is not more than 25%
    with pytest.raises(BadVideoError, match=r"(?s)1 of 4 videos .*missing.mp4: file not found"):
        check_bad_video_fraction(ds, max_fraction=0.2)


def test_test_mode_decoder_sees_a_rewritten_file(tmp_path):
    """A long-lived test-mode sampler (as in a predictor) must not serve frames of the file
    that used to be at the same path."""
    import os

    from paddlevideo.loader.pipelines.decode import DecodeSampler
    from tests.conftest import write_video

    path = tmp_path / "upload.mp4"
    write_video(path, np.full((20, 32, 32, 3), 10, np.uint8))
    sampler = DecodeSampler(num_frames=4, sampling_rate=1, test_mode=True)
    sample = {"filename": str(path), "temporal_sample_index": 0, "temporal_num_clips": 1}
    first = sampler(dict(sample))["imgs"].mean()
    write_video(path, np.full((20, 32, 32, 3), 200, np.uint8))
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    second = sampler(dict(sample))["imgs"].mean()
    assert abs(first - 10) < 5 and abs(second - 200) < 5
