"""The synthetic motion dataset: files, lists, determinism and motion that carries the class."""
import subprocess
import sys

import decord
import numpy as np
import pytest

from paddlevideo.loader import build_dataset
from paddlevideo.loader.demo_data import MOTION_CLASSES, make_demo_dataset
from tests.conftest import REPO_ROOT


def _frames(path):
    reader = decord.VideoReader(path)
    return reader.get_batch(list(range(len(reader)))).asnumpy().astype(np.float32)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo_dataset(str(tmp_path_factory.mktemp("demo")), classes=8, train_per_class=2,
                             val_per_class=1, seed=3, frames=24, workers=1)


def test_files_and_lists(demo):
    train = open(demo["train_list"]).read().splitlines()
    val = open(demo["val_list"]).read().splitlines()
    assert len(train) == 16 and len(val) == 8
    assert [int(line.rsplit(" ", 1)[1]) for line in val] == list(range(8))
    assert open(demo["label_list"]).read().splitlines()[:2] == ["0 move_left", "1 move_right"]
    path = train[0].rsplit(" ", 1)[0]
    reader = decord.VideoReader(path)
    assert len(reader) == 24 and reader.get_avg_fps() == pytest.approx(30)
    assert reader[0].shape == (96, 96, 3)


def test_same_seed_same_frames_other_seed_differs(demo, tmp_path):
    again = make_demo_dataset(str(tmp_path / "a"), classes=8, train_per_class=2,
                              val_per_class=1, seed=3, frames=24, workers=2)
    other = make_demo_dataset(str(tmp_path / "b"), classes=8, train_per_class=2,
                              val_per_class=1, seed=4, frames=24, workers=1)
    name = "videos/val_rotate_clockwise_000.mp4"
    first = _frames(f"{demo['out_dir']}/{name}")
    np.testing.assert_array_equal(first, _frames(f"{again['out_dir']}/{name}"))
    assert np.abs(first - _frames(f"{other['out_dir']}/{name}")).mean() > 10


def _shape_centroid(frames):
    """Centroid (x, y) of the pixels that change most against the median frame, per frame."""
    diff = np.abs(frames - np.median(frames, axis=0)).sum(axis=-1)
    centroids = []
    for d in diff:
        ys, xs = np.nonzero(d > np.percentile(d, 97))
        centroids.append((xs.mean(), ys.mean()))
    return np.array(centroids)


@pytest.mark.parametrize("label,axis,sign", [(0, 0, -1), (1, 0, 1), (2, 1, -1), (3, 1, 1)])
def test_moving_classes_move_the_right_way(demo, label, axis, sign):
    path = f"{demo['videos']}/train_{MOTION_CLASSES[label]}_001.mp4"
    centroids = _shape_centroid(_frames(path))
    assert sign * (centroids[-1, axis] - centroids[0, axis]) > 10


def test_frames_change_and_appearance_varies(demo):
    left = _frames(f"{demo['videos']}/train_move_left_000.mp4")
    assert np.abs(left[0] - left[-1]).mean() > 2  # motion, not a still
    # backgrounds and colours vary between videos, so a frame's look does not name the class
    first_frames = [_frames(f"{demo['videos']}/train_{name}_000.mp4")[0] for name in MOTION_CLASSES]
    means = np.array([f.mean(axis=(0, 1)) for f in first_frames])
    assert means.std(axis=0).max() > 3
    # start positions are random: two move_left videos start at different places
    starts = [_shape_centroid(_frames(f"{demo['videos']}/train_move_left_00{i}.mp4"))[0]
              for i in range(2)]
    assert np.abs(starts[0] - starts[1]).max() > 3


def test_growing_shape_covers_more_pixels(demo):
    grow = _frames(f"{demo['videos']}/train_grow_000.mp4")
    shrink = _frames(f"{demo['videos']}/train_shrink_000.mp4")

    def area(frames, t):
        diff = np.abs(frames[t] - np.median(frames, axis=0)).sum(axis=-1)
        return (diff > 60).sum()

    assert area(grow, -1) > 1.5 * area(grow, 0)
    assert area(shrink, 0) > 1.5 * area(shrink, -1)


def test_lists_load_with_the_demo_pipeline(demo):
    pipeline = {"decode_sampler": {"name": "DecodeSampler", "num_frames": 8, "sampling_rate": 2},
                "transform": [{"JitterScale": {"min_size": 64, "max_size": 80}},
                              {"MultiCrop": {"target_size": 64}},
                              {"Image2Array": {"transpose": False}},
                              {"PackOutput": {"alpha": 4}}]}
    ds = build_dataset(({"format": "SFVideoDataset", "file_path": demo["train_list"],
                         "num_classes": 8}, pipeline))
    slow, fast, label = ds[5]
    assert fast.shape == (3, 8, 64, 64) and label.tolist() == [2]


def test_cli_writes_the_dataset_and_rejects_bad_arguments(tmp_path):
    out = tmp_path / "cli"
    script = str(REPO_ROOT / "tools" / "make_demo_data.py")
    done = subprocess.run([sys.executable, script, str(out), "--classes", "2",
                           "--train_per_class", "1", "--val_per_class", "1", "--frames", "8"],
                          capture_output=True, text=True, cwd=str(REPO_ROOT))
    assert done.returncode == 0, done.stderr
    assert "wrote 4 videos" in done.stdout
    assert len((out / "train.list").read_text().splitlines()) == 2
    bad = subprocess.run([sys.executable, script, str(tmp_path / "x"), "--classes", "9"],
                         capture_output=True, text=True, cwd=str(REPO_ROOT))
    assert bad.returncode == 2 and "classes must be in [1, 8]" in bad.stderr
