"""``Predictor``: same answer every run, the same as the test pipeline + dynamic model."""
import numpy as np
import pytest

from paddlevideo.inference import (
    EngineError,
    EngineOptions,
    LabelMapError,
    Predictor,
    predict_pipeline_config,
    read_label_map,
)
from paddlevideo.inference.export import dynamic_probs
from paddlevideo.loader import build_dataset
from tests.inference.helpers import (
    SHARED_VIDEOS,
    small_config,
    small_export,
    small_model,
    synthetic_video,
)

EXAMPLE = str(SHARED_VIDEOS / "example.avi")


def make_predictor(fmt="pdmodel", top_k=1, label_file=None, num_views=1, **engine):
    """A Predictor of the small export; ``engine``: :class:`EngineOptions` fields."""
    paths = small_export(fmt)
    return Predictor(paths["model"], paths.get("params"), small_config(),
                     engine=EngineOptions(**engine), top_k=top_k, label_file=label_file,
                     num_views=num_views)


def test_label_map_reads_kinetics_ids_and_names():
    names = read_label_map("data/k400/Kinetics-400_label_list.txt")
    assert len(names) == 400
    assert (names[0], names[5], names[399]) == ("abseiling", "archery", "zumba")


@pytest.mark.parametrize("text, message", [
    ("0 a\n1\n", r"labels.txt:2: expected '<class id> <name>'"),
    ("0 a\n0 b\n", r"labels.txt:2: class id 0 appears twice"),
    ("0 a\n2 b\n", r"class ids must be 0..1; found \[2\]"),
    ("\n\n", "has no classes"),
    ("0 a\n1_0 b\n", r"labels.txt:2: expected '<class id> <name>', got '1_0 b'"),
    ("0 a\n+1 b\n", r"labels.txt:2: expected '<class id> <name>'"),
    ("0 a\n\u0661 b\n", r"labels.txt:2: expected '<class id> <name>'"),
    ("0 caf\xe9\n", r"labels.txt:1: not UTF-8 text \(byte 0xe9"),
])
def test_bad_label_files_are_errors_with_line(tmp_path, text, message):
    path = tmp_path / "labels.txt"
    path.write_bytes(text.encode("utf-8") if "caf" not in text else text.encode("latin-1"))
    with pytest.raises(LabelMapError, match=message):
        read_label_map(str(path))


def test_label_map_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes("\ufeff0 abseiling\r\n1 air drumming\n".encode("utf-8"))
    assert read_label_map(str(path)) == ["abseiling", "air drumming"]


def test_label_map_size_mismatch_is_an_error(tmp_path):
    path = tmp_path / "three.txt"
    path.write_text("0 a\n1 b\n2 c\n")
    with pytest.raises(LabelMapError, match=r"three.txt has 3 classes but .* has 400"):
        make_predictor(label_file=str(path))


def test_engine_settings_are_one_options_object():
    paths = small_export("pdmodel")
    with pytest.raises(TypeError, match="engine must be an EngineOptions"):
        Predictor(paths["model"], paths["params"], small_config(), False)
    predictor = make_predictor(batch_size=2, num_views=3, cpu_threads=1)
    # the engine sees every view of every video of a batch at once
    assert predictor.batch_size == 2 and predictor.options.batch_size == 6
    assert predictor.engine.config.cpu_math_library_num_threads() == 1
    assert predictor.engine_choice.describe() == "Paddle Inference, fp32 (auto: Paddle program)"


def test_tensorrt_is_refused_without_tensorrt():
    with pytest.raises(EngineError, match="TensorRT"):
        make_predictor(use_tensorrt=True, precision="fp16")


def test_gpu_request_falls_back_to_cpu_with_one_line(capsys):
    predictor = make_predictor(use_gpu=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["Warning: use_gpu=True but this Paddle has no usable GPU; running on the CPU"]
    assert predictor.predict(EXAMPLE)[0][1] == read_label_map(
        "data/k400/Kinetics-400_label_list.txt")[predictor.predict(EXAMPLE)[0][0]]


def reference_probs(video: str, tmp_path) -> np.ndarray:
    """Probabilities of the dynamic model on the test dataset's centred clip of ``video``
    (temporal view 1 of 2, spatial crop 1 of 3)."""
    list_file = tmp_path / "one.list"
    list_file.write_text(f"{video} 0\n")
    cfg = small_config()
    dataset_cfg = dict(cfg.DATASET.test, file_path=str(list_file), test_mode=True,
                       num_ensemble_views=2, num_spatial_crops=3)
    slow, fast, _, _ = build_dataset((dataset_cfg, predict_pipeline_config(cfg)))[4]
    return dynamic_probs(small_model(), slow[None], fast[None])[0]


@pytest.mark.parametrize("video", ["example", "generated"])
def test_prediction_is_repeatable_and_matches_testing(video, tmp_path):
    path = EXAMPLE if video == "example" else str(synthetic_video(tmp_path / "gen.mp4"))
    predictor = make_predictor(top_k=5)
    first, second = predictor.predict(path), predictor.predict(path)
    assert first == second
    expected = reference_probs(path, tmp_path)
    assert [c for c, _, _ in first] == list(np.argsort(-expected, kind="stable")[:5])
    np.testing.assert_allclose([s for _, _, s in first], np.sort(expected)[::-1][:5], atol=1e-5)
    names = read_label_map("data/k400/Kinetics-400_label_list.txt")
    assert [n for _, n, _ in first] == [names[c] for c, _, _ in first]


def test_fresh_predictors_agree():
    assert make_predictor(top_k=3).predict(EXAMPLE) == make_predictor(top_k=3).predict(EXAMPLE)


@pytest.mark.parametrize("fmt", ["json", "onnx"])
def test_other_formats_give_the_same_prediction(fmt):
    reference = make_predictor(top_k=3).predict(EXAMPLE)
    engine = "onnxruntime" if fmt == "onnx" else "auto"
    other = make_predictor(fmt, top_k=3, engine=engine).predict(EXAMPLE)
    assert [c for c, _, _ in other] == [c for c, _, _ in reference]
    np.testing.assert_allclose([s for *_, s in other], [s for *_, s in reference], atol=1e-4)


def test_views_are_averaged():
    two_views = make_predictor(num_views=2, top_k=400)
    slow, fast = two_views.preprocess(EXAMPLE)
    per_view = dynamic_probs(small_model(), slow, fast)
    scores = dict((c, s) for c, _, s in two_views.predict(EXAMPLE))
    averaged = per_view.mean(axis=0)
    np.testing.assert_allclose([scores[c] for c in range(400)], averaged, atol=1e-5)
    assert np.abs(per_view[0] - per_view[1]).max() > 1e-3  # the two clips differ


def test_batch_prediction_equals_single(tmp_path):
    videos = [EXAMPLE, str(synthetic_video(tmp_path / "gen.mp4"))]
    predictor = make_predictor(top_k=2, batch_size=2)
    batched = predictor.predict_batch(videos)
    for path, result in zip(videos, batched):
        single = predictor.predict(path)
        assert [c for c, _, _ in result] == [c for c, _, _ in single]
        np.testing.assert_allclose([s for *_, s in result], [s for *_, s in single], atol=1e-6)
    assert predictor.timings.videos == 4 and len(predictor.timings.per_batch) == 3
    assert predictor.timings.preprocess > 0 and predictor.timings.model > 0


def test_config_label_file_is_used_when_none_is_given(tmp_path):
    labels = tmp_path / "renamed.txt"
    labels.write_text("".join(f"{i} class_{i}\n" for i in range(400)))
    cfg = small_config()
    cfg["label_file"] = str(labels)
    paths = small_export("pdmodel")
    [(class_id, name, _)] = Predictor(paths["model"], paths["params"], cfg).predict(EXAMPLE)
    assert name == f"class_{class_id}"
