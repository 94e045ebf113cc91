"""Prediction preprocessing: the test pipeline's steps, centred clips, deterministic."""
import numpy as np
import pytest

from paddlevideo.inference import ClipPreprocessor, predict_pipeline_config
from paddlevideo.inference.preprocess import view_position
from paddlevideo.loader import VideoDecodeError, build_dataset
from paddlevideo.loader.pipelines import DecodeSampler, JitterScale, MultiCrop, PackOutput
from tests.conftest import frame_numbers
from tests.inference.helpers import small_config


def test_pipeline_config_takes_geometry_from_inference_section():
    cfg = small_config()
    cfg.PIPELINE.test.transform.insert(2, {"RandomFlip": None})
    pipeline = predict_pipeline_config(cfg)
    assert pipeline["decode_sampler"] == {"name": "DecodeSampler", "backend": "pyav",
                                          "num_frames": 8, "sampling_rate": 2,
                                          "test_mode": True}
    steps = [next(iter(item)) for item in pipeline["transform"]]
    assert steps == ["JitterScale", "MultiCrop", "Image2Array", "Normalization", "PackOutput"]
    assert pipeline["transform"][0]["JitterScale"] == {"min_size": 64, "max_size": 64}
    assert pipeline["transform"][1]["MultiCrop"] == {"target_size": 64, "test_mode": True}


def test_preprocessor_uses_the_loader_step_classes():
    steps = ClipPreprocessor(small_config()).pipeline.configured_steps
    assert [type(s) for s in (steps[0], steps[1], steps[2], steps[-1])] == [
        DecodeSampler, JitterScale, MultiCrop, PackOutput]
    assert steps[0].test_mode and steps[2].test_mode


@pytest.mark.parametrize("num_views, expected", [
    (1, [(1, 2)]), (2, [(1, 4), (3, 4)]), (3, [(1, 6), (3, 6), (5, 6)])])
def test_views_are_centred_in_equal_parts(num_views, expected):
    assert [view_position(i, num_views) for i in range(num_views)] == expected


def test_one_view_is_the_centred_clip(test_videos):
    # 60 frames at 30 fps; 8 frames at rate 2 span 16 frames; free range 44, start 22, end 37.
    pre = ClipPreprocessor(small_config())
    results = pre.pipeline(pre.sample(str(test_videos["numbered30"]), 0))
    np.testing.assert_array_equal(results["frame_indices"], [22, 24, 26, 28, 30, 32, 34, 37])
    assert results["crop_box"] == (0, 16, 64, 64)  # 96x64 video: centre of the long side


def test_views_spread_over_the_video(test_videos):
    pre = ClipPreprocessor(small_config(), num_views=2)
    starts = [pre.pipeline(pre.sample(str(test_videos["numbered30"]), i))["frame_indices"][0]
              for i in range(2)]
    assert starts == [11, 33]  # 44 * 1/4, 44 * 3/4


def test_short_video_repeats_its_last_frame(test_videos):
    pre = ClipPreprocessor(small_config())
    results = pre.pipeline(pre.sample(str(test_videos["short5"]), 0))
    np.testing.assert_array_equal(results["frame_indices"], [0, 2, 4, 4, 4, 4, 4, 4])
    slow, fast = pre(str(test_videos["short5"]))
    assert fast.shape == (1, 3, 8, 64, 64)
    np.testing.assert_array_equal(fast[0, :, 3], fast[0, :, 7])


def test_output_is_deterministic_and_shaped(test_videos):
    pre = ClipPreprocessor(small_config(), num_views=2)
    first, second = pre(str(test_videos["landscape"])), pre(str(test_videos["landscape"]))
    assert first[0].shape == (2, 3, 1, 64, 64) and first[1].shape == (2, 3, 8, 64, 64)
    assert first[1].dtype == np.float32
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_same_clip_as_the_test_dataset(tmp_path, test_videos):
    """Prediction's single view equals the test set's temporal view 1 of 2, centre crop 1 of 3."""
    video = str(test_videos["landscape"])
    list_file = tmp_path / "test.list"
    list_file.write_text(f"{video} 0\n")
    cfg = small_config()
    dataset_cfg = dict(cfg.DATASET.test, file_path=str(list_file), test_mode=True,
                       num_ensemble_views=2, num_spatial_crops=3)
    pipeline_cfg = predict_pipeline_config(cfg)  # the test pipeline at the model's geometry
    dataset = build_dataset((dataset_cfg, pipeline_cfg))
    slow, fast, _, index = dataset[1 * 3 + 1]
    assert int(index[0]) == 4
    pred_slow, pred_fast = ClipPreprocessor(cfg)(video)
    np.testing.assert_array_equal(pred_slow[0], slow)
    np.testing.assert_array_equal(pred_fast[0], fast)


def test_numbered_frames_survive_preprocessing(test_videos):
    # Undo the normalisation of the fast pathway and read back which frames were used.
    pre = ClipPreprocessor(small_config())
    _, fast = pre(str(test_videos["numbered30"]))
    frames = (fast[0].transpose(1, 2, 3, 0) * 0.225 + 0.45) * 255.0
    np.testing.assert_array_equal(frame_numbers(frames), [22, 24, 26, 28, 30, 32, 34, 37])


def test_bad_video_error_names_the_file(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoDecodeError, match="broken.mp4"):
        ClipPreprocessor(small_config())(str(bad))


def test_a_cut_video_or_an_image_is_never_scored(tmp_path):
    import cv2

    from tests.conftest import numbered_frames, write_video

    frames = numbered_frames(60).copy()
    frames[:, :16, :16] = np.random.default_rng(0).integers(0, 256, (60, 16, 16, 3))
    whole = write_video(tmp_path / "whole.mp4", frames, faststart=True).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: len(whole) * 99 // 100])  # the centred clip's frames are all there
    cv2.imwrite(str(tmp_path / "still.png"), frames[0])
    still = tmp_path / "still.mp4"
    still.write_bytes((tmp_path / "still.png").read_bytes())
    preprocess = ClipPreprocessor(small_config())
    assert preprocess(str(tmp_path / "whole.mp4"))[1].shape[0] == 1
    with pytest.raises(VideoDecodeError, match=f"{cut}: the file is incomplete"):
        preprocess(str(cut))
    with pytest.raises(VideoDecodeError, match=f"{still}: is a PNG image, not a video"):
        preprocess(str(still))
