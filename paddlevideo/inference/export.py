"""Export a Recognizer3D as a static inference model (``.pdmodel``, PIR ``.json``, ONNX or
OpenVINO IR) and check the exported model against the dynamic one."""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import paddle
import paddle.nn as nn
from paddle.static import InputSpec

from .names import INPUT_NAMES

FORMATS = ("pdmodel", "json", "onnx", "openvino")
ONNX_OPSET = 11


class ExportError(RuntimeError):
    """An export that could not be written or whose output differs from the dynamic model."""


@dataclass(frozen=True)
class InputShapes:
    """Clip geometry of the exported model: ``num_frames`` fast frames, ``num_frames // alpha``
    slow frames, square crops of ``target_size``."""

    num_frames: int
    alpha: int
    target_size: int

    def slow_shape(self, batch: int = -1) -> List[int]:
        return [batch, 3, self.num_frames // self.alpha, self.target_size, self.target_size]

    def fast_shape(self, batch: int = -1) -> List[int]:
        return [batch, 3, self.num_frames, self.target_size, self.target_size]


def _find_transform(pipeline: Mapping[str, Any], step: str) -> Optional[Mapping[str, Any]]:
    for item in pipeline.get("transform") or []:
        if isinstance(item, Mapping) and step in item:
            return item[step] or {}
    return None


def input_shapes_from_config(cfg: Mapping[str, Any]) -> InputShapes:
    """Read ``INFERENCE.{num_frames, alpha, target_size}``; keys absent there come from the test
    pipeline (decode sampler, ``PackOutput``, ``MultiCrop``) and then from ``MODEL``."""
    inference = cfg.get("INFERENCE") or {}
    test_pipeline = (cfg.get("PIPELINE") or {}).get("test") or {}
    sampler = test_pipeline.get("decode_sampler") or {}
    pack = _find_transform(test_pipeline, "PackOutput") or {}
    crop = _find_transform(test_pipeline, "MultiCrop") or {}
    model = cfg.get("MODEL") or {}
    backbone, head = model.get("backbone") or {}, model.get("head") or {}
    candidates = {
        "num_frames": (inference.get("num_frames"), sampler.get("num_frames"),
                       head.get("num_frames")),
        "alpha": (inference.get("alpha"), pack.get("alpha"), backbone.get("alpha")),
        "target_size": (inference.get("target_size"), crop.get("target_size"),
                        head.get("crop_size")),
    }
    values: Dict[str, int] = {}
    for key, options in candidates.items():
        value = next((v for v in options if v is not None), None)
        if value is None:
            raise ExportError(f"config has no INFERENCE.{key} and no test pipeline or MODEL "
                              f"value to take it from")
        values[key] = int(value)
    if values["num_frames"] % values["alpha"]:
        raise ExportError(f"INFERENCE.num_frames ({values['num_frames']}) must be a multiple of "
                          f"INFERENCE.alpha ({values['alpha']})")
    return InputShapes(**values)


class InferenceNet(nn.Layer):
    """``forward([slow [N,3,T/alpha,S,S], fast [N,3,T,S,S]])`` → probabilities ``[N, K]``.

    Wraps a recognizer so the static graph has one list argument and no ``mode`` string.
    """

    def __init__(self, recognizer: nn.Layer) -> None:
        super().__init__()
        self.recognizer = recognizer

    def forward(self, inputs: List[paddle.Tensor]) -> paddle.Tensor:
        return self.recognizer(inputs, mode="infer")


def export_paths(out_dir: str, save_name: str, fmt: str) -> Dict[str, str]:
    """The files an export in ``fmt`` writes: ``model`` and, for Paddle formats, ``params``
    (OpenVINO: ``weights``, the ``.bin`` beside the ``.xml``)."""
    stem = os.path.join(out_dir, save_name)
    if fmt == "onnx":
        return {"model": f"{stem}.onnx"}
    if fmt == "openvino":
        return {"model": f"{stem}.xml", "weights": f"{stem}.bin"}
    return {"model": f"{stem}.{fmt}", "params": f"{stem}.pdiparams"}


def _save_static(model: nn.Layer, shapes: InputShapes, stem: str, pir: bool) -> None:
    """``paddle.jit.save`` under the IR that gives ``.json`` (PIR) or ``.pdmodel`` (legacy).

    The guards switch the process-wide IR flag only for this call, so the same process can
    export both formats.
    """
    spec = [[InputSpec(shapes.slow_shape(), "float32", INPUT_NAMES[0]),
             InputSpec(shapes.fast_shape(), "float32", INPUT_NAMES[1])]]
    guard = paddle.pir_utils.DygraphPirGuard() if pir else paddle.pir_utils.DygraphOldIrGuard()
    with guard:
        static_net = paddle.jit.to_static(InferenceNet(model), input_spec=spec, full_graph=True)
        paddle.jit.save(static_net, stem)


def _to_onnx(model: nn.Layer, shapes: InputShapes, onnx_path: str) -> None:
    import paddle2onnx

    tmp_dir = tempfile.mkdtemp(prefix="export_onnx_")
    try:
        stem = os.path.join(tmp_dir, "model")
        _save_static(model, shapes, stem, pir=True)
        paddle2onnx.export(f"{stem}.json", f"{stem}.pdiparams", save_file=onnx_path,
                           opset_version=ONNX_OPSET, enable_onnx_checker=True)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    if not os.path.isfile(onnx_path):
        raise ExportError(f"paddle2onnx did not write {onnx_path}")


def _to_openvino(model: nn.Layer, shapes: InputShapes, xml_path: str) -> None:
    """OpenVINO IR through ONNX (OpenVINO's Paddle frontend cannot read conv3d programs)."""
    from .openvino_engine import OpenVinoMissing, convert_onnx_to_ir

    tmp_dir = tempfile.mkdtemp(prefix="export_openvino_")
    try:
        onnx_path = os.path.join(tmp_dir, "model.onnx")
        _to_onnx(model, shapes, onnx_path)
        convert_onnx_to_ir(onnx_path, xml_path)
    except OpenVinoMissing as err:
        raise ExportError(str(err)) from err
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def export_inference_model(model: nn.Layer, cfg: Mapping[str, Any], out_dir: str,
                           save_name: str = "SlowFast", fmt: str = "pdmodel") -> Dict[str, str]:
    """Save ``model`` (weights already loaded) for deployment and return the written paths.

    ``fmt``: ``pdmodel`` → ``NAME.pdmodel`` + ``NAME.pdiparams``; ``json`` → PIR ``NAME.json`` +
    ``NAME.pdiparams``; ``onnx`` → ``NAME.onnx``; ``openvino`` → ``NAME.xml`` + ``NAME.bin``
    (fp32 weights). Inputs ``slow_input [-1,3,T/alpha,S,S]`` and
    ``fast_input [-1,3,T,S,S]`` (see :func:`input_shapes_from_config`), output ``[N, K]``.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {FORMATS}")
    shapes = input_shapes_from_config(cfg)
    os.makedirs(out_dir, exist_ok=True)
    model.eval()
    paths = export_paths(out_dir, save_name, fmt)
    if fmt == "onnx":
        _to_onnx(model, shapes, paths["model"])
    elif fmt == "openvino":
        _to_openvino(model, shapes, paths["model"])
    else:
        _save_static(model, shapes, os.path.join(out_dir, save_name), pir=fmt == "json")
        missing = [p for p in paths.values() if not os.path.isfile(p)]
        if missing:
            raise ExportError(f"paddle.jit.save did not write {missing}")
    return paths


def random_inputs(shapes: InputShapes, batch_size: int = 1, seed: int = 0) -> List[np.ndarray]:
    """Normalised-looking random clips ``[slow, fast]`` for comparing exported models."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shapes.slow_shape(batch_size)).astype("float32"),
            rng.standard_normal(shapes.fast_shape(batch_size)).astype("float32")]


def dynamic_probs(model: nn.Layer, slow: np.ndarray, fast: np.ndarray) -> np.ndarray:
    """Class probabilities ``[N, K]`` of the dynamic-graph model in eval mode."""
    model.eval()
    with paddle.no_grad():
        out = model([paddle.to_tensor(slow), paddle.to_tensor(fast)], mode="infer")
    return out.numpy()


def compare_with_dynamic(model: nn.Layer, paths: Dict[str, str], cfg: Mapping[str, Any],
                         batch_size: int = 1, seed: int = 0, options: Any = None) -> float:
    """Largest absolute difference between the exported and the dynamic model's probabilities
    on the same random input of ``batch_size`` clips.

    Paddle Inference runs without oneDNN here unless ``options`` (an ``EngineOptions``) says
    otherwise: the dynamic graph uses the same plain CPU kernels then, so any difference comes
    from the exported graph, not from another summation order.
    """
    from .engines import EngineOptions, create_engine

    slow, fast = random_inputs(input_shapes_from_config(cfg), batch_size, seed)
    options = options or EngineOptions(precision="fp32", enable_mkldnn=False)
    engine = create_engine(paths["model"], paths.get("params"), options)
    exported = engine.run(slow, fast)
    expected = dynamic_probs(model, slow, fast)
    if exported.shape != expected.shape:
        raise ExportError(f"exported model {paths['model']} gives shape {list(exported.shape)}, "
                          f"the dynamic model {list(expected.shape)}")
    return float(np.abs(exported - expected).max())
