"""The OpenVINO engine: engine/precision choice, one-line refusals, model cache, bf16 answers."""
import shutil
import subprocess
import sys

import numpy as np
import pytest

from paddlevideo.inference import (
    ClipPreprocessor,
    EngineError,
    EngineOptions,
    choose_engine,
    create_engine,
)
from paddlevideo.utils import cpu_features
from tests.inference.helpers import (
    REPO_ROOT,
    SHARED_VIDEOS,
    small_config,
    small_export,
    synthetic_video,
)

BF16_FLAGS = frozenset({"avx512f", "avx512_bf16"})
PLAIN_FLAGS = frozenset({"avx2", "avx512f"})


@pytest.fixture
def cpu_without_bf16(monkeypatch):
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda *args: PLAIN_FLAGS)


@pytest.fixture
def cpu_with_bf16(monkeypatch):
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda *args: BF16_FLAGS)


def test_auto_picks_openvino_bf16_on_a_bf16_cpu(cpu_with_bf16):
    onnx, xml = small_export("onnx")["model"], small_export("openvino")["model"]
    pdmodel = small_export("pdmodel")["model"]
    assert (choose_engine(onnx, EngineOptions()).engine,
            choose_engine(onnx, EngineOptions()).precision) == ("openvino", "bf16")
    assert choose_engine(xml, EngineOptions()).precision == "bf16"
    assert choose_engine(pdmodel, EngineOptions()).engine == "paddle"
    assert choose_engine(pdmodel, EngineOptions()).precision == "fp32"
    assert choose_engine(onnx, EngineOptions(precision="fp32")).precision == "fp32"
    assert choose_engine(onnx, EngineOptions(engine="onnxruntime")).engine == "onnxruntime"


def test_auto_picks_fp32_where_the_cpu_has_no_bf16(cpu_without_bf16):
    choice = choose_engine(small_export("onnx")["model"], EngineOptions())
    assert (choice.engine, choice.precision) == ("openvino", "fp32")
    assert choice.describe() == "OpenVINO, fp32 (auto: ONNX model on the CPU)"


def test_bf16_is_refused_in_one_line_without_the_instructions(cpu_without_bf16):
    with pytest.raises(EngineError, match=r"^precision bf16 needs a CPU with AVX512-BF16 or "
                                          r"AMX instructions; this CPU has neither \(use fp32\)$"):
        choose_engine(small_export("openvino")["model"], EngineOptions(precision="bf16"))


@pytest.mark.parametrize("engine, precision, message", [
    ("openvino", None, r"OpenVINO cannot read Paddle programs .*SlowFast\.pdmodel\); export "
                       r"the model with tools/export_model.py --format openvino"),
    ("paddle", "bf16", "precision bf16 runs on the openvino engine only"),
    ("auto", "fp16", "fp16 is a TensorRT precision"),
    ("onnxruntime", None, "the onnxruntime engine cannot read"),
])
def test_impossible_combinations_are_one_line(engine, precision, message):
    fmt = "onnx" if precision == "fp16" else "pdmodel"
    model = small_export(fmt)["model"]
    with pytest.raises(EngineError, match=message) as info:
        choose_engine(model, EngineOptions(engine=engine, precision=precision))
    assert "\n" not in str(info.value)


def test_int8_needs_an_int8_model():
    xml = small_export("openvino")["model"]
    with pytest.raises(EngineError, match="precision int8 needs an int8 model; .* is not one "
                                          r"\(make one with tools/quantize.py\)"):
        create_engine(xml, options=EngineOptions(precision="int8"))


def run_without_openvino(code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter where ``import openvino`` fails."""
    prelude = "import sys; sys.modules['openvino'] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=300)


def test_without_openvino_auto_skips_it_and_openvino_says_how_to_install():
    onnx = small_export("onnx")["model"]
    proc = run_without_openvino(
        "from paddlevideo.inference import EngineError, EngineOptions, create_engine\n"
        f"engine = create_engine({onnx!r})\n"
        "print(engine.choice.describe())\n"
        "try:\n"
        f"    create_engine({onnx!r}, options=EngineOptions(engine='openvino'))\n"
        "except EngineError as err:\n"
        "    print(err)\n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == [
        "ONNX Runtime, fp32 (auto: ONNX model, openvino not installed)",
        "the openvino engine needs the openvino package: pip install openvino"]


def test_predict_tool_without_openvino_is_one_line():
    paths = small_export("onnx")
    tool = [sys.executable, "-c", "import sys, runpy; sys.modules['openvino'] = None; "
            "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
            "tools/predict.py", "-i", str(SHARED_VIDEOS / "example.avi"), "-c",
            str(REPO_ROOT / "configs/recognition/slowfast/slowfast.yaml"), "--model_file",
            paths["model"], "--engine", "openvino", "--use_gpu", "False"]
    proc = subprocess.run(tool, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "Error: the openvino engine needs the openvino package: pip install openvino"]


def test_second_start_reuses_the_model_cache(tmp_path):
    xml = small_export("openvino")["model"]
    for suffix in (".xml", ".bin"):
        shutil.copy(xml[:-4] + suffix, tmp_path / ("model" + suffix))
    model = str(tmp_path / "model.xml")
    options = EngineOptions(precision="fp32", batch_size=2)
    first = create_engine(model, options=options)
    cache = tmp_path / "model.ov_cache"
    assert first.cache_dir == str(cache) and not first.loaded_from_cache(2)
    blobs = sorted(p.name for p in cache.iterdir())
    assert blobs
    second = create_engine(model, options=options)
    assert second.loaded_from_cache(2)
    assert sorted(p.name for p in cache.iterdir()) == blobs


def test_threads_and_batch_size_reach_openvino():
    engine = create_engine(small_export("openvino")["model"],
                           options=EngineOptions(precision="fp32", cpu_threads=1, batch_size=3))
    compiled = engine.compiled_for(3)
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert [list(port.get_shape())[0] for port in compiled.inputs] == [3, 3]
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) in ("f32", "<Type: 'float32'>")
    # a service compiles every batch size its batcher may form before the first request
    engine.prepare_batches(range(1, 5))
    assert sorted(engine._compiled) == [1, 2, 3, 4]
    assert [list(port.get_shape())[0] for port in engine.compiled_for(4).inputs] == [4, 4]


def real_clips(tmp_path, views: int = 8):
    """``views`` clips of each of example.avi, demo.mp4 and a generated video."""
    preprocess = ClipPreprocessor(small_config(), num_views=views)
    videos = [SHARED_VIDEOS / "example.avi", SHARED_VIDEOS / "demo.mp4",
              synthetic_video(tmp_path / "gen.mp4", num_frames=64)]
    clips = [preprocess(str(v)) for v in videos]
    return np.concatenate([c[0] for c in clips]), np.concatenate([c[1] for c in clips])


@pytest.mark.skipif(not cpu_features.has_bf16_instructions(),
                    reason="bf16 runs only on CPUs with AVX512-BF16 or AMX")
def test_bf16_agrees_with_fp32_on_top1(tmp_path):
    slow, fast = real_clips(tmp_path)
    xml = small_export("openvino")["model"]
    fp32 = create_engine(xml, options=EngineOptions(precision="fp32")).run(slow, fast)
    bf16_engine = create_engine(xml, options=EngineOptions(precision="bf16"))
    bf16 = bf16_engine.run(slow, fast)
    assert bf16_engine.choice.precision == "bf16"
    agreement = np.mean(fp32.argmax(1) == bf16.argmax(1))
    assert agreement >= 0.98, agreement
    assert 0 < np.abs(bf16 - fp32).max() < 0.05  # bf16 really ran, and stayed close
