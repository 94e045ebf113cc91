"""Honest decoding: images are not videos; a file cut short says so on every draw, both backends."""
import cv2
import numpy as np
import pytest

from paddlevideo.loader import SFVideoDataset, build_pipeline
from paddlevideo.loader.dataset import BadVideoError
from paddlevideo.loader.pipelines import decode
from paddlevideo.loader.pipelines.decode import DecodeSampler, VideoDecodeError, VideoSource
from paddlevideo.loader.pipelines.random_state import seed_pipeline_rng
from tests.conftest import numbered_frames, train_pipeline, write_video

BACKENDS = ["decord", "pyav"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deceptive")
    rng = np.random.default_rng(0)
    frames = numbered_frames(60).copy()
    frames[:, :16, :16] = rng.integers(0, 256, (60, 16, 16, 3))  # bulk in every frame
    whole = write_video(folder / "whole.mp4", frames, faststart=True)
    data = whole.read_bytes()
    found = {"whole": whole}
    for name, fraction in (("cut_half", 0.5), ("cut_tail", 0.995)):
        found[name] = folder / f"{name}.mp4"
        found[name].write_bytes(data[: int(len(data) * fraction)])
    avi = write_video(folder / "whole.avi", frames[:30], codec="mpeg4")
    found["avi_cut"] = folder / "avi_cut.avi"
    found["avi_cut"].write_bytes(avi.read_bytes()[: avi.stat().st_size * 2 // 3])
    for ext, name in ((".png", "png"), (".jpg", "jpeg")):
        image = folder / f"frame{ext}"
        cv2.imwrite(str(image), frames[0])
        found[name] = folder / f"{name}_renamed.mp4"
        found[name].write_bytes(image.read_bytes())
    broken = bytearray(data)  # every byte there, the second half of the frame data zeroed
    broken[len(broken) // 2:] = bytes(len(broken) - len(broken) // 2)
    found["zeroed"] = folder / "zeroed.mp4"
    found["zeroed"].write_bytes(bytes(broken))
    return found


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind, image", [("png", "PNG"), ("jpeg", "JPEG")])
def test_an_image_renamed_mp4_is_not_a_video(files, backend, kind, image):
    with pytest.raises(VideoDecodeError, match=f"is a {image} image, not a video") as err:
        VideoSource(str(files[kind]), backend)
    assert err.value.path == str(files[kind])


def test_pyav_refuses_an_image_demuxer_too(files, monkeypatch):
    monkeypatch.setattr(decode, "image_format", lambda head: None)  # past the byte check
    with pytest.raises(VideoDecodeError, match=r"is an image \(png\), not a video"):
        decode.PyAVReader(str(files["png"]))


def _train_draws(path, backend, draws=6):
    """The reason of each of ``draws`` training draws of ``path`` (None: decoded)."""
    sampler = DecodeSampler(num_frames=4, sampling_rate=2, backend=backend)
    reasons = []
    for seed in range(draws):
        seed_pipeline_rng(seed)
        try:
            sampler({"filename": str(path)})
            reasons.append(None)
        except VideoDecodeError as err:
            reasons.append(err.reason)
    return reasons


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind, detail", [
    ("cut_half", "'mdat' box needs"), ("cut_tail", "'mdat' box needs"),
    ("avi_cut", "RIFF chunk needs")])
def test_a_file_cut_short_fails_the_same_way_on_every_draw(files, backend, kind, detail):
    reasons = _train_draws(files[kind], backend)
    assert None not in reasons and len(set(reasons)) == 1, reasons
    assert reasons[0].startswith("the file is incomplete") and detail in reasons[0]
    assert _train_draws(files["whole"], backend) == [None] * 6


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_cut_file_is_a_named_error_in_test_mode_for_every_view(tmp_path, files, backend):
    pipeline = dict(train_pipeline(48, 48, 40, flip=False), decode_sampler={
        "name": "DecodeSampler", "num_frames": 4, "sampling_rate": 1, "test_mode": True,
        "backend": backend})
    listing = tmp_path / "test.list"
    listing.write_text(f"{files['cut_tail']} 0\n")
    ds = SFVideoDataset(str(listing), build_pipeline(pipeline), test_mode=True,
                        num_ensemble_views=3, num_spatial_crops=1)
    for view in range(3):  # the first clip's frames are all in the file; still refused
        with pytest.raises(BadVideoError, match=f"cannot test on video {files['cut_tail']}: "
                                                f"the file is incomplete"):
            ds[view]


def test_pyav_sees_the_cut_in_its_packets_without_the_byte_check(files, monkeypatch):
    monkeypatch.setattr(decode, "container_truncation", lambda path: None)
    with pytest.raises(VideoDecodeError, match=r"the file is cut short: its data end inside "
                                               r"frame (\d+) of the 60 its header claims") as err:
        decode.PyAVReader(str(files["cut_half"]))
    assert 10 < int(err.value.reason.split("frame ")[1].split()[0]) < 50  # about half way
    reader = decode.PyAVReader(str(files["whole"]))
    assert reader.num_frames == 60 and reader.frames_decoded == 0  # nothing decoded at open


@pytest.mark.parametrize("backend", BACKENDS)
def test_after_a_failed_decode_every_draw_of_the_file_fails_alike(files, backend,
                                                                 monkeypatch):
    monkeypatch.setattr(decode, "_SHORT_FILES", {})  # what this process learnt so far
    path = str(files["zeroed"])
    early = VideoSource(path, backend)
    assert early.get_frames(np.arange(4)).shape == (4, 64, 96, 3)  # the first half is intact
    with pytest.raises(VideoDecodeError) as first:
        VideoSource(path, backend).get_frames(np.arange(50, 60))
    with pytest.raises(VideoDecodeError) as again:  # the intact first frames, once more
        VideoSource(path, backend).get_frames(np.arange(4))
    assert again.value.reason == first.value.reason
    assert "reports 60 frames" in first.value.reason
