"""int8 post-training quantization of an exported model with NNCF, for the OpenVINO engine.

Calibration clips come from a ``<path> <label>`` list (the validation list is the natural
set) through the prediction preprocessing (:class:`.preprocess.ClipPreprocessor`: one centred
clip per video), so the int8 ranges are measured on exactly what the model sees at run time.
After quantization both models run on the same clips: the share of clips whose top-1 class is
the same (``top1_agreement``) and each model's top-1 accuracy against the list's labels are
reported; agreement under :data:`AGREEMENT_THRESHOLD`, or int8 accuracy more than
:data:`ACCURACY_DROP_LIMIT` below fp32's, calls the quantization harmful.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..loader import VideoDecodeError
from ..loader.dataset.list_file import read_video_list
from .engines import model_format
from .names import EngineError, slow_fast_order
from .preprocess import ClipPreprocessor

# The share of calibration clips on which int8 must keep fp32's top-1 class (documented in
# docs/export_predict.md): below it the quantized model is reported as hurting accuracy.
AGREEMENT_THRESHOLD = 0.98
ACCURACY_DROP_LIMIT = 0.01  # int8 top-1 accuracy may be at most 1 point under fp32's
Clip = Tuple[np.ndarray, np.ndarray]  # (slow [1,3,T/alpha,S,S], fast [1,3,T,S,S])


class QuantizeError(RuntimeError):
    """A model, list or package problem that stops quantization, as one line."""


@dataclass
class QuantizeReport:
    """How an int8 model was made (written as JSON beside it)."""

    source_model: str
    calib_list: str
    num_samples: int
    clips_used: int
    clips_skipped: List[str] = field(default_factory=list)
    top1_agreement: float = 0.0
    agreement_threshold: float = AGREEMENT_THRESHOLD
    fp32_top1: float = 0.0  # top-1 accuracy on the calibration clips (the list's labels)
    int8_top1: float = 0.0
    int8_model: str = ""
    preset: str = "performance"
    bias_correction: str = "full"
    versions: Dict[str, str] = field(default_factory=dict)


def spread_indices(count: int, wanted: int) -> List[int]:
    """``min(count, wanted)`` indices spread evenly over ``range(count)`` (lists are usually
    sorted by class, so the first N lines would cover few classes)."""
    if wanted >= count:
        return list(range(count))
    return sorted({int(i) for i in np.linspace(0, count - 1, wanted)})


def calibration_clips(cfg: Mapping[str, Any], list_file: str, num_samples: int,
                      data_prefix: Optional[str] = None
                      ) -> Tuple[List[Clip], List[int], List[str]]:
    """Up to ``num_samples`` clips of the videos of ``list_file``, their labels, and the videos
    that could not be decoded (skipped: one bad file should not stop a calibration)."""
    videos = read_video_list(list_file, data_prefix)
    preprocess = ClipPreprocessor(cfg, num_views=1)
    clips: List[Clip] = []
    labels: List[int] = []
    skipped: List[str] = []
    for index in spread_indices(len(videos), num_samples):
        path = str(videos[index]["filename"])
        try:
            clips.append(preprocess(path))
        except VideoDecodeError:
            skipped.append(path)
            continue
        labels.append(int(videos[index]["labels"]))
    if not clips:
        raise QuantizeError(f"no video of {list_file} could be decoded for calibration")
    return clips, labels, skipped


def _paddle_to_onnx(model_file: str, params_file: Optional[str], tmp_dir: str) -> str:
    """An ONNX copy of a Paddle program (OpenVINO cannot read conv3d programs)."""
    import paddle2onnx

    if not params_file or not os.path.isfile(params_file):
        raise QuantizeError(f"{model_file} is a Paddle program: give its --params_file")
    onnx_file = os.path.join(tmp_dir, "model.onnx")
    try:
        paddle2onnx.export(model_file, params_file, save_file=onnx_file, opset_version=11)
    except Exception as err:  # paddle2onnx raises several types for what it cannot convert
        raise QuantizeError(f"cannot convert {model_file} to ONNX ({err}); export the model "
                            f"with tools/export_model.py --format openvino") from err
    return onnx_file


def read_float_model(model_file: str, params_file: Optional[str] = None):
    """The fp32 ``ov.Model`` of an ``.onnx``, OpenVINO ``.xml`` or Paddle program export."""
    from .openvino_engine import OpenVinoMissing, import_openvino, is_int8_model

    try:
        ov = import_openvino()
    except OpenVinoMissing as err:
        raise QuantizeError(str(err)) from err
    try:
        fmt = model_format(model_file)
    except EngineError as err:
        raise QuantizeError(str(err)) from err
    if not os.path.isfile(model_file):
        raise QuantizeError(f"model file not found: {model_file}")
    tmp_dir = tempfile.mkdtemp(prefix="quantize_")
    try:
        source = model_file
        if fmt in ("pdmodel", "json"):
            source = _paddle_to_onnx(model_file, params_file, tmp_dir)
        try:
            model = ov.Core().read_model(source)
        except Exception as err:  # OpenVINO's own RuntimeError types
            raise QuantizeError(f"OpenVINO cannot read {model_file}: "
                                f"{str(err).strip().splitlines()[0]}") from err
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    if is_int8_model(model):
        raise QuantizeError(f"{model_file} is already an int8 model")
    return model


def compare_top1(float_model: Any, int8_model: Any, clips: List[Clip],
                 labels: List[int]) -> Dict[str, float]:
    """Over ``clips``: ``agreement`` (the share on which the two models give the same top-1
    class), ``fp32_top1`` and ``int8_top1`` (each model's top-1 accuracy against ``labels``).
    Both run with fp32 compute, so only the quantization differs."""
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32"}
    runs = [core.compile_model(m, "CPU", config) for m in (float_model, int8_model)]
    top1 = np.array([[int(np.asarray(run(model_feeds(float_model, clip))[0]).argmax(-1)[0])
                      for run in runs] for clip in clips])
    truth = np.asarray(labels)
    return {"agreement": float(np.mean(top1[:, 0] == top1[:, 1])),
            "fp32_top1": float(np.mean(top1[:, 0] == truth)),
            "int8_top1": float(np.mean(top1[:, 1] == truth))}


def model_feeds(model: Any, clip: Clip) -> Dict[str, np.ndarray]:
    """``{input name: array}`` of one ``(slow, fast)`` clip for an ``ov.Model``."""
    return dict(zip(slow_fast_order([port.get_any_name() for port in model.inputs]), clip))


def quantize_clips(float_model: Any, clips: List[Clip], bias_correction: str = "full") -> Any:
    """The int8 ``ov.Model`` NNCF makes from ``float_model`` with ``clips`` as calibration.

    ``bias_correction``: ``full`` (NNCF's layer-by-layer bias correction: slower, and on narrow
    models the difference between keeping fp32's top-1 on every clip or not) or ``fast``."""
    try:
        import nncf
    except ImportError as err:
        raise QuantizeError("quantization needs the nncf package: pip install nncf (or pip "
                            "install .[quantize])") from err
    dataset = nncf.Dataset(clips, lambda clip: model_feeds(float_model, clip))
    return nncf.quantize(float_model, dataset, subset_size=len(clips),
                         preset=nncf.QuantizationPreset.PERFORMANCE,
                         fast_bias_correction=bias_correction == "fast")


def save_int8_model(int8_model: Any, report: QuantizeReport, out_dir: str,
                    name: str) -> Dict[str, str]:
    """``OUT/<name>_int8.xml`` + ``.bin`` and ``OUT/quantization.json``; their paths."""
    import openvino as ov

    os.makedirs(out_dir, exist_ok=True)
    xml = os.path.join(out_dir, f"{name}_int8.xml")
    ov.save_model(int8_model, xml, compress_to_fp16=False)
    report.int8_model = xml
    info = os.path.join(out_dir, "quantization.json")
    with open(info, "w", encoding="utf-8") as f:
        json.dump(asdict(report), f, indent=2)
    return {"model": xml, "weights": xml[:-4] + ".bin", "report": info}


def package_versions() -> Dict[str, str]:
    import nncf
    import openvino

    return {"openvino": openvino.__version__, "nncf": nncf.__version__}
