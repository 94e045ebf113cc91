"""Exported models (.pdmodel, PIR .json, ONNX, OpenVINO IR) give the dynamic model's outputs."""
import copy
import functools

import numpy as np
import pytest

from paddlevideo.inference import (
    ClipPreprocessor,
    EngineOptions,
    ExportError,
    create_engine,
    input_shapes_from_config,
)
from paddlevideo.inference.export import dynamic_probs, export_inference_model, random_inputs
from tests.inference.helpers import SHARED_VIDEOS, small_config, small_export, small_model

EXAMPLE = str(SHARED_VIDEOS / "example.avi")

FORMATS = ("pdmodel", "json", "onnx", "openvino")


def test_input_shapes_come_from_inference_section():
    shapes = input_shapes_from_config(small_config())
    assert (shapes.num_frames, shapes.alpha, shapes.target_size) == (8, 8, 64)
    assert shapes.slow_shape() == [-1, 3, 1, 64, 64]
    assert shapes.fast_shape(2) == [2, 3, 8, 64, 64]


def test_input_shapes_fall_back_to_pipeline_and_model():
    cfg = copy.deepcopy(small_config())
    del cfg["INFERENCE"]
    cfg.PIPELINE.test.transform[1].MultiCrop.target_size = 96
    shapes = input_shapes_from_config(cfg)
    assert (shapes.num_frames, shapes.alpha, shapes.target_size) == (32, 8, 96)
    del cfg["PIPELINE"]
    shapes = input_shapes_from_config(cfg)
    assert (shapes.num_frames, shapes.alpha, shapes.target_size) == (32, 8, 224)


def test_frames_not_multiple_of_alpha_is_an_error():
    cfg = copy.deepcopy(small_config())
    cfg.INFERENCE.num_frames = 12
    with pytest.raises(ExportError, match="num_frames .12. must be a multiple of .*alpha .8."):
        input_shapes_from_config(cfg)


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ExportError, match="unknown export format 'tflite'"):
        export_inference_model(small_model(), small_config(), str(tmp_path), fmt="tflite")


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_writes_the_promised_files(fmt):
    paths = small_export(fmt)
    names = sorted(p.rsplit("/", 1)[-1] for p in paths.values())
    expected = {"pdmodel": ["SlowFast.pdiparams", "SlowFast.pdmodel"],
                "json": ["SlowFast.json", "SlowFast.pdiparams"], "onnx": ["SlowFast.onnx"],
                "openvino": ["SlowFast.bin", "SlowFast.xml"]}
    assert names == expected[fmt]


@functools.cache
def preprocessed_clips(batch_size: int):
    """Real model inputs: the centred clip of example.avi, or two clips spread over it."""
    return ClipPreprocessor(small_config(), num_views=batch_size)(EXAMPLE)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("batch_size", [1, 2])
def test_exported_output_equals_dynamic_model(fmt, batch_size):
    paths = small_export(fmt)
    slow, fast = preprocessed_clips(batch_size)
    fp32 = EngineOptions(precision="fp32")
    exported = create_engine(paths["model"], paths.get("params"), fp32).run(slow, fast)
    expected = dynamic_probs(small_model(), slow, fast)
    assert exported.shape == (batch_size, 400)
    np.testing.assert_allclose(exported.sum(axis=1), 1.0, atol=1e-5)
    # Weights are spread out, so a wrong graph could not pass by giving near-uniform outputs.
    assert expected.max() > 10 / 400
    assert np.abs(exported - expected).max() <= 1e-5


def test_batch_rows_are_independent():
    paths = small_export("pdmodel")
    slow, fast = random_inputs(input_shapes_from_config(small_config()), 2, seed=4)
    engine = create_engine(paths["model"], paths["params"])
    pair = engine.run(slow, fast)
    single = engine.run(slow[1:], fast[1:])
    assert np.abs(pair[0] - pair[1]).max() > 1e-3
    np.testing.assert_allclose(pair[1], single[0], atol=1e-6)


@pytest.mark.parametrize("fmt, engine", [("onnx", "onnxruntime"), ("onnx", "openvino"),
                                         ("openvino", "openvino")])
def test_fp32_engines_equal_paddle_inference(fmt, engine):
    slow, fast = random_inputs(input_shapes_from_config(small_config()), 2, seed=5)
    paddle_paths, other_paths = small_export("pdmodel"), small_export(fmt)
    paddle_out = create_engine(paddle_paths["model"], paddle_paths["params"]).run(slow, fast)
    other = create_engine(other_paths["model"], options=EngineOptions(engine=engine,
                                                                      precision="fp32"))
    assert other.choice.engine == engine and other.choice.precision == "fp32"
    assert np.abs(other.run(slow, fast) - paddle_out).max() <= 1e-4


def test_input_names_and_shapes_of_exported_models():
    import onnxruntime as ort

    engine = create_engine(small_export("json")["model"], small_export("json")["params"])
    assert engine.input_names == ["slow_input", "fast_input"]
    session = ort.InferenceSession(small_export("onnx")["model"],
                                   providers=["CPUExecutionProvider"])
    shapes = {i.name: i.shape[1:] for i in session.get_inputs()}
    assert shapes == {"slow_input": [3, 1, 64, 64], "fast_input": [3, 8, 64, 64]}
