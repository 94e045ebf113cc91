"""Exact numbers of the pure pipeline functions: frame indices, crop boxes, pathways, values."""
import numpy as np
import pytest

from paddlevideo.loader.pipelines import functional as F


def test_clip_indices_test_views_at_30fps():
    # 60 frames, 8 x 2 clip = 16 frames, delta 44, view i of 3 starts at 44 * i / 3
    got = [F.sample_clip_indices(60, 8, 2, 30.0, 30, i / 3).tolist() for i in range(3)]
    assert got == [[0, 2, 4, 6, 8, 10, 12, 15],
                   [14, 16, 18, 21, 23, 25, 27, 29],
                   [29, 31, 33, 35, 37, 40, 42, 44]]


def test_clip_indices_scale_with_fps():
    # at 60 fps the same clip spans 32 frames: delta 28, view 1 of 2 starts at 14
    got = F.sample_clip_indices(60, 8, 2, 60.0, 30, 0.5)
    assert got.dtype == np.int64
    assert got.tolist() == [14, 18, 22, 27, 31, 36, 40, 45]


def test_short_video_repeats_last_frame():
    got = F.sample_clip_indices(5, 8, 2, 30.0, 30, 0.7)
    assert got.tolist() == [0, 2, 4, 4, 4, 4, 4, 4]


def test_no_frames_is_an_error():
    with pytest.raises(ValueError, match="no frames"):
        F.sample_clip_indices(0, 8, 2, 30.0, 30, 0.0)


def test_short_side_size_keeps_aspect():
    assert F.short_side_size(256, 340, 288) == (288, 382)
    assert F.short_side_size(340, 256, 288) == (382, 288)
    assert F.short_side_size(100, 100, 64) == (64, 64)


@pytest.mark.parametrize("height,width,expected", [
    (128, 171, [(8, 0, 112, 112), (8, 30, 112, 112), (8, 59, 112, 112)]),
    (171, 128, [(0, 8, 112, 112), (30, 8, 112, 112), (59, 8, 112, 112)]),
    (112, 112, [(0, 0, 112, 112)] * 3),
])
def test_three_test_crops(height, width, expected):
    assert F.test_crop_boxes(height, width, 112, 3) == expected


def test_single_test_crop_is_centred():
    assert F.test_crop_boxes(128, 171, 112, 1) == [(8, 30, 112, 112)]


def test_crop_larger_than_frame_is_an_error():
    with pytest.raises(ValueError, match="does not fit in a 100x120"):
        F.test_crop_boxes(100, 120, 112)


def test_random_crop_box_covers_both_ends():
    assert F.random_crop_box(120, 160, 100, 0.0, 0.0) == (0, 0, 100, 100)
    assert F.random_crop_box(120, 160, 100, 0.999999, 0.999999) == (20, 60, 100, 100)
    assert F.random_crop_box(120, 160, 100, 0.5, 0.5) == (10, 30, 100, 100)


@pytest.mark.parametrize("alpha,expected", [
    (4, [0, 4, 8, 13, 17, 22, 26, 31]),
    (8, [0, 10, 20, 31]),
])
def test_slow_pathway_indices(alpha, expected):
    got = F.slow_pathway_indices(32, alpha)
    assert got.dtype == np.int64 and got.tolist() == expected
    fast = np.arange(32, dtype=np.float32).reshape(1, 32, 1, 1) * np.ones((3, 1, 2, 2))
    slow = F.slow_pathway(fast, alpha)
    assert slow.shape == (3, 32 // alpha, 2, 2) and slow.flags.c_contiguous
    assert slow[2, :, 1, 0].tolist() == expected


def test_normalize_values():
    frames = np.array([0, 255, 115, 45], dtype=np.uint8).reshape(1, 1, 4, 1).repeat(3, axis=3)
    out = F.normalize(frames, [0.45] * 3, [0.225] * 3, [1, 1, 1, 3])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, :, 0], [-2.0, 2.4444444, 0.0043573, -1.2156863], atol=1e-5)


def test_normalize_per_channel():
    frames = np.full((1, 1, 1, 3), 255, dtype=np.uint8)
    out = F.normalize(frames, [0.1, 0.2, 0.3], [0.5, 0.25, 0.1], [1, 1, 1, 3])
    np.testing.assert_allclose(out.ravel(), [1.8, 3.2, 7.0], rtol=1e-5)


def test_channels_first_table_matches_arithmetic():
    frames = np.random.default_rng(0).integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)
    mean, std = [0.43, 0.45, 0.47], [0.22, 0.225, 0.23]
    expected = F.normalize(frames, mean, std, [1, 1, 1, 3]).transpose(3, 0, 1, 2)
    got = F.normalize_to_channels_first(frames, mean, std)
    assert got.shape == (3, 4, 6, 5) and got.flags.c_contiguous
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_resized_crop_matches_resize_then_crop():
    # a smooth image, so half-pixel differences between the two routes stay small
    y, x = np.mgrid[0:96, 0:128]
    frame = np.stack([x * 2, y * 2, (x + y)], axis=-1).astype(np.uint8)
    frames = np.stack([frame, frame[:, ::-1]])
    box = (20, 37, 64, 64)
    scaled = F.short_side_size(96, 128, 120)
    reference = F.crop_clip(F.resize_clip(frames, *scaled), box)
    got = F.resized_crop(frames, scaled, box)
    assert got.shape == (2, 64, 64, 3)
    assert np.abs(got.astype(int) - reference.astype(int)).mean() < 1.5


@pytest.mark.parametrize("scaled,box,flip", [((120, 160), (20, 37, 64, 64), True),
                                              ((120, 160), (0, 96, 64, 64), False),
                                              ((96, 128), (10, 5, 80, 80), True)])
def test_crop_flip_normalize_equals_the_three_functions(scaled, box, flip):
    frames = np.random.default_rng(1).integers(0, 256, (5, 96, 128, 3), dtype=np.uint8)
    frames.setflags(write=False)  # decoded clips arrive read-only
    mean, std = [0.43, 0.45, 0.47], [0.22, 0.225, 0.23]
    crop = F.resized_crop(frames, scaled, box)
    expected = F.normalize_to_channels_first(F.horizontal_flip(crop) if flip else crop, mean, std)
    got = F.crop_flip_normalize(frames, scaled, box, flip, mean, std)
    assert got.shape == (3, 5, box[2], box[3]) and got.dtype == np.float32
    assert got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)


def test_normalization_tables_are_cached_and_read_only():
    tables = F._normalization_tables((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 3)
    assert tables is F._normalization_tables((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 3)
    assert tables[0].shape == (256, 1) and not tables[0].flags.writeable
    assert tables[1][255, 0] == pytest.approx((1.0 - 0.5) / 0.25)


def test_horizontal_flip():
    frames = np.arange(2 * 1 * 3 * 1, dtype=np.uint8).reshape(2, 1, 3, 1)
    assert F.horizontal_flip(frames)[1, 0, :, 0].tolist() == [5, 4, 3]
