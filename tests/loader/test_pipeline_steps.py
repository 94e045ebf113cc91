"""Pipeline steps on real decoded clips: chosen frames, crops, flips, fusion, short cycles."""
import numpy as np
import pytest

from paddlevideo.loader import build_pipeline
from paddlevideo.loader.pipelines import (
    Compose,
    CropToPathways,
    DecodeSampler,
    JitterScale,
    MultiCrop,
    NormalizeAndPack,
    PackOutput,
    RandomFlip,
    ScaleAndCrop,
    VideoSource,
    seed_pipeline_rng,
)
from tests.conftest import frame_numbers, train_pipeline


def _sample(path, **extra):
    return {"filename": str(path), "labels": 0, **extra}


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_test_views_decode_the_right_frames(test_videos, backend):
    sampler = DecodeSampler(num_frames=8, sampling_rate=2, test_mode=True, backend=backend)
    out = sampler(_sample(test_videos["numbered30"], temporal_sample_index=2,
                          temporal_num_clips=3))
    assert out["imgs"].shape == (8, 64, 96, 3) and out["imgs"].dtype == np.uint8
    assert out["frame_indices"].tolist() == [29, 31, 33, 35, 37, 40, 42, 44]
    assert frame_numbers(out["imgs"]).tolist() == [29, 31, 33, 35, 37, 40, 42, 44]


def test_decord_frames_are_handed_over_without_a_copy(test_videos):
    import decord

    from paddlevideo.loader.pipelines.decode import _as_numpy

    path = str(test_videos["numbered30"])
    frames = VideoSource(path).get_frames(np.array([3, 5, 9]))
    assert not frames.flags.writeable and frames.shape == (3, 64, 96, 3)
    assert frame_numbers(frames).tolist() == [3, 5, 9]
    batch = decord.VideoReader(path).get_batch([3, 5, 9])
    shared = _as_numpy(batch)
    np.testing.assert_array_equal(shared, batch.asnumpy())
    del batch  # the array keeps decord's buffer alive
    assert frame_numbers(shared).tolist() == [3, 5, 9]

    class NoDLPack:  # a batch without the zero-copy hand-over: copied instead
        def __init__(self, array):
            self.array = array

        def asnumpy(self):
            return self.array.copy()

    copied = _as_numpy(NoDLPack(frames))
    assert copied.flags.writeable and np.array_equal(copied, frames)


def test_60fps_video_spans_twice_the_frames(test_videos):
    sampler = DecodeSampler(num_frames=8, sampling_rate=2, test_mode=True)
    out = sampler(_sample(test_videos["numbered60"], temporal_sample_index=1,
                          temporal_num_clips=2))
    assert out["video_fps"] == pytest.approx(60.0)
    assert frame_numbers(out["imgs"]).tolist() == [14, 18, 22, 27, 31, 36, 40, 45]


def test_five_frame_video_is_padded_with_its_last_frame(test_videos):
    out = DecodeSampler(num_frames=8, sampling_rate=2)(_sample(test_videos["short5"]))
    assert out["imgs"].shape[0] == 8
    assert frame_numbers(out["imgs"]).tolist() == [0, 2, 4, 4, 4, 4, 4, 4]


def test_training_start_is_seeded(test_videos):
    sampler = DecodeSampler(num_frames=8, sampling_rate=2)
    seed_pipeline_rng(11)
    first = sampler(_sample(test_videos["numbered30"]))["frame_indices"]
    start = 44 * np.random.default_rng(np.random.SeedSequence(11)).uniform(0.0, 1.0)
    expected = np.linspace(start, start + 15, 8).astype(np.int64)
    assert first.tolist() == expected.tolist()
    assert frame_numbers(sampler(_sample(test_videos["numbered30"]))["imgs"]).tolist() != \
        first.tolist()  # the stream moves on
    seed_pipeline_rng(11)
    assert sampler(_sample(test_videos["numbered30"]))["frame_indices"].tolist() == \
        expected.tolist()


@pytest.fixture
def decode_calls(monkeypatch):
    """The frame indices of every ``VideoSource.get_frames`` call (one call = one decode pass)."""
    calls = []
    original = VideoSource.get_frames

    def counting(self, indices):
        calls.append(tuple(indices))
        return original(self, indices)

    monkeypatch.setattr(VideoSource, "get_frames", counting)
    return calls


def test_test_mode_decodes_each_temporal_clip_once(test_videos, decode_calls):
    calls = decode_calls
    sampler = DecodeSampler(num_frames=8, sampling_rate=2, test_mode=True)
    for clip in range(2):
        for _crop in range(3):
            sampler(_sample(test_videos["numbered30"], temporal_sample_index=clip,
                            temporal_num_clips=2))
    assert len(calls) == 2


def test_jitter_scale_draws_short_side_in_range():
    frames = np.zeros((2, 120, 160, 3), np.uint8)
    step = JitterScale(min_size=64, max_size=80)
    seed_pipeline_rng(0)
    sizes = set()
    for _ in range(50):
        out = step({"imgs": frames})
        assert out["imgs"].shape[1] == out["scale_size"]
        assert out["imgs"].shape[2] == int(np.floor(160 / 120 * out["scale_size"]))
        sizes.add(out["scale_size"])
    assert min(sizes) >= 64 and max(sizes) <= 80 and len(sizes) > 5


@pytest.mark.parametrize("key,shape,expected_tops_lefts", [
    ("landscape", (120, 160), [(10, 0), (10, 30), (10, 60)]),
    ("portrait", (160, 120), [(0, 10), (30, 10), (60, 10)]),
])
def test_test_crops_cut_the_expected_pixels(test_videos, key, shape, expected_tops_lefts):
    frames = DecodeSampler(4, 2, test_mode=True)(_sample(test_videos[key]))["imgs"]
    assert frames.shape[1:3] == shape
    for index, (top, left) in enumerate(expected_tops_lefts):
        out = MultiCrop(100, test_mode=True)(
            {"imgs": frames, "spatial_sample_index": index, "spatial_num_clips": 3})
        assert out["crop_box"] == (top, left, 100, 100)
        np.testing.assert_array_equal(out["imgs"], frames[:, top:top + 100, left:left + 100])


def test_random_flip_mirrors_every_frame_or_none():
    frames = np.random.default_rng(0).integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    seed_pipeline_rng(3)
    flips = []
    for _ in range(40):
        out = RandomFlip()({"imgs": frames})
        expected = frames[:, :, ::-1] if out["flipped"] else frames
        np.testing.assert_array_equal(out["imgs"], expected)
        flips.append(out["flipped"])
    assert 5 < sum(flips) < 35
    assert not RandomFlip(p=0.0)({"imgs": frames})["flipped"]


def test_pack_output_splits_pathways():
    frames = np.arange(32, dtype=np.float32).reshape(32, 1, 1, 1) * np.ones((1, 2, 2, 3))
    slow, fast = PackOutput(alpha=4)({"imgs": frames.astype(np.float32)})["imgs"]
    assert fast.shape == (3, 32, 2, 2) and slow.shape == (3, 8, 2, 2)
    assert slow[0, :, 0, 0].tolist() == [0, 4, 8, 13, 17, 22, 26, 31]


TRAIN_CFG = train_pipeline(64, 80, 56)


def test_fused_pipeline_equals_step_by_step(test_videos):
    fused = build_pipeline(TRAIN_CFG)
    assert [type(s) for s in fused.steps] == [DecodeSampler, CropToPathways]
    assert [type(s) for s in (fused.steps[1].scale_crop, fused.steps[1].flip,
                              fused.steps[1].pack)] == [ScaleAndCrop, RandomFlip,
                                                        NormalizeAndPack]
    plain = Compose(TRAIN_CFG, fuse=False)
    for seed in range(3):
        seed_pipeline_rng(seed)
        a = fused(_sample(test_videos["landscape"]))
        seed_pipeline_rng(seed)
        b = plain(_sample(test_videos["landscape"]))
        assert a["crop_box"] == b["crop_box"] and a["scale_size"] == b["scale_size"]
        assert a["flipped"] == b["flipped"]
        for x, y in zip(a["imgs"], b["imgs"]):
            assert x.shape == y.shape and x.dtype == y.dtype == np.float32
            # noise frames: the region is resampled from the source, values agree on average
            assert np.abs(x - y).mean() < 0.6


def _pairwise_fused(cfg):
    """The pipeline with only the pairwise fusions (ScaleAndCrop, NormalizeAndPack)."""
    pipeline = Compose(cfg, fuse=False)
    steps = pipeline.configured_steps
    scale = next(i for i, step in enumerate(steps) if isinstance(step, JitterScale))
    pipeline.steps = [*steps[:scale], ScaleAndCrop(steps[scale], steps[scale + 1]),
                      *steps[scale + 2:-3], NormalizeAndPack(steps[-2], steps[-1])]
    return pipeline


@pytest.mark.parametrize("with_flip", [True, False])
def test_crop_to_pathways_equals_the_steps_it_replaces(test_videos, with_flip):
    cfg = train_pipeline(64, 80, 56, flip=with_flip)
    fused, pairwise = build_pipeline(cfg), _pairwise_fused(cfg)
    assert type(fused.steps[1]) is CropToPathways and len(fused.steps) == 2
    assert (fused.steps[1].flip is not None) == with_flip
    flips = set()
    for seed in range(6):
        seed_pipeline_rng(seed)
        a = fused(_sample(test_videos["landscape"]))
        seed_pipeline_rng(seed)
        b = pairwise(_sample(test_videos["landscape"]))
        assert (a["scale_size"], a["crop_box"]) == (b["scale_size"], b["crop_box"])
        assert a.get("flipped") == b.get("flipped")
        flips.add(a.get("flipped"))
        for x, y in zip(a["imgs"], b["imgs"]):
            assert x.shape == y.shape and x.dtype == np.float32 and x.flags.c_contiguous
            np.testing.assert_array_equal(x, y)
    assert flips == ({True, False} if with_flip else {None})


def test_crop_to_pathways_takes_the_long_way_for_float_frames():
    cfg = {"transform": TRAIN_CFG["transform"]}
    fused, pairwise = build_pipeline(cfg), _pairwise_fused(cfg)
    assert [type(s) for s in fused.steps] == [CropToPathways]
    frames = np.random.default_rng(0).uniform(0, 255, (8, 72, 96, 3)).astype(np.float32)
    seed_pipeline_rng(1)
    slow, fast = fused({"imgs": frames})["imgs"]
    seed_pipeline_rng(1)
    slow2, fast2 = pairwise({"imgs": frames})["imgs"]
    assert fast.shape == (3, 8, 56, 56) and slow.shape == (3, 2, 56, 56)
    np.testing.assert_array_equal(fast, fast2)
    np.testing.assert_array_equal(slow, slow2)


def test_unknown_step_and_bad_arguments_are_errors():
    with pytest.raises(KeyError, match="Registered: .*JitterScale"):
        build_pipeline({"transform": [{"JiterScale": {"min_size": 1}}]})
    with pytest.raises(TypeError, match="MultiCrop"):
        build_pipeline({"transform": [{"MultiCrop": {"target_sise": 1}}]})


@pytest.mark.parametrize("cycle,crop,min_scale", [(0, 32, 32), (1, 45, 45), (None, 56, 64)])
def test_short_cycle_changes_sizes(test_videos, cycle, crop, min_scale):
    scale = JitterScale(64, 80, default_min_size=64)
    crop_step = MultiCrop(56, default_crop_size=64)
    frames = np.zeros((2, 120, 160, 3), np.uint8)
    sample = {"imgs": frames} if cycle is None else {"imgs": frames, "short_cycle_idx": cycle}
    out = crop_step(scale(sample))
    assert out["imgs"].shape[1:3] == (crop, crop)
    seed_pipeline_rng(0)
    low = [scale(dict(sample))["scale_size"] for _ in range(60)]
    assert min(low) >= min_scale and min(low) <= min_scale + 3


def test_test_clips_share_decoding_passes_and_keep_their_frames(test_videos, decode_calls):
    calls = decode_calls
    sampler = DecodeSampler(num_frames=8, sampling_rate=2, test_mode=True)
    for clip in range(5):
        for _crop in range(3):
            out = sampler(_sample(test_videos["numbered30"], temporal_sample_index=clip,
                                  temporal_num_clips=5))
            expected = np.linspace(44 * clip / 5, 44 * clip / 5 + 15, 8).astype(np.int64)
            assert frame_numbers(out["imgs"]).tolist() == expected.tolist()
    assert len(calls) == 2  # clip 0 alone (size unknown yet), then clips 1-4 in one pass
    tight = DecodeSampler(num_frames=8, sampling_rate=2, test_mode=True,
                          test_cache_mb=8 * 64 * 96 * 3 / 2**20)  # room for one clip
    calls.clear()
    for clip in range(5):
        tight(_sample(test_videos["numbered30"], temporal_sample_index=clip,
                      temporal_num_clips=5))
    assert len(calls) == 5


@pytest.fixture(scope="module")
def b_frame_video(tmp_path_factory):
    """H.264 with B-frames and a key frame every 24 frames; every frame looks different."""
    from tests.conftest import write_video

    rng = np.random.default_rng(5)
    frames = np.repeat(np.repeat(rng.integers(0, 256, (96, 8, 12, 3), dtype=np.uint8), 8, 1),
                       8, 2)
    return str(write_video(tmp_path_factory.mktemp("bframes") / "b.mp4", frames,
                           options={"bf": "3", "g": "24", "sc_threshold": "0",
                                    "preset": "veryfast"}))


def test_pyav_reader_gives_decords_frames_and_skips_unneeded_ones(b_frame_video):
    import decord

    from paddlevideo.loader.pipelines.decode import PyAVReader

    reference = decord.VideoReader(b_frame_video)
    reader = PyAVReader(b_frame_video)
    assert reader.num_frames == len(reference) == 96
    assert reader.fps == pytest.approx(reference.get_avg_fps())
    # clips in any order on one reader, as the test-time sampler reuses it
    for wanted in ([40, 42, 44, 46], [1, 2, 3], [70, 80, 90, 95], [0], [47, 48, 49]):
        before = reader.frames_decoded
        frames = reader.get_frames(np.array(wanted))
        np.testing.assert_array_equal(frames, reference.get_batch(wanted).asnumpy())
        decoded = reader.frames_decoded - before
        from_key_frame = wanted[-1] - wanted[0] // 24 * 24 + 1  # without skipping
        assert len(wanted) <= decoded <= from_key_frame
        if wanted[0] == 70:  # key frame 48 to frame 95, of which the B-frames are not needed
            assert decoded <= 0.75 * from_key_frame


def test_pyav_reader_numbers_avi_frames_as_decord_does(shared_videos):
    import decord

    from paddlevideo.loader.pipelines.decode import PyAVReader

    path = str(shared_videos / "test.avi")  # MPEG-4 part 2 with packed B-frames
    reference = decord.VideoReader(path)
    reader = PyAVReader(path)
    assert reader.num_frames == len(reference)
    wanted = [10, 11, 30, 31, 32, 100]
    np.testing.assert_array_equal(reader.get_frames(np.array(wanted)),
                                  reference.get_batch(wanted).asnumpy())


@pytest.mark.parametrize("missing,asked,used", [("av", "pyav", "decord"),
                                                ("decord", "decord", "pyav")])
def test_a_missing_decoder_package_falls_back_to_the_other(test_videos, monkeypatch, missing,
                                                           asked, used):
    from paddlevideo.loader.pipelines import decode

    monkeypatch.setattr(decode, "_importable", lambda module: module != missing)
    source = VideoSource(str(test_videos["numbered30"]), backend=asked)
    assert source.backend == used
    assert frame_numbers(source.get_frames(np.array([4, 9]))).tolist() == [4, 9]
