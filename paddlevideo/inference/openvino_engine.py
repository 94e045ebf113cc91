"""The OpenVINO engine: an ONNX export or OpenVINO IR (``.xml`` + ``.bin``) on the CPU in fp32,
bf16 (CPUs with AVX512-BF16 or AMX) or int8 (a model quantized by ``tools/quantize.py``).

OpenVINO cannot read Paddle programs (its Paddle frontend has no conv3d), so its input is the
ONNX export or its own IR. The compiled model is cached beside the model file
(``<stem>.ov_cache/``) so a second start skips the compilation.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

import numpy as np

from ..utils import cpu_features
from .names import INPUT_NAMES, EngineError, slow_fast_order

INSTALL_HINT = "pip install openvino"
# OpenVINO's names for the precisions it computes in on the CPU
_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


class OpenVinoMissing(ImportError):
    """The ``openvino`` package is not installed."""


def import_openvino():
    """The ``openvino`` module, or :class:`OpenVinoMissing` saying how to install it."""
    try:
        import openvino
    except ImportError as err:
        raise OpenVinoMissing(f"the openvino engine needs the openvino package: "
                              f"{INSTALL_HINT}") from err
    return openvino


def openvino_available() -> bool:
    try:
        import_openvino()
    except OpenVinoMissing:
        return False
    return True


def cpu_has_bf16() -> bool:
    """AVX512-BF16 or AMX-BF16 on this CPU (bf16 is slower than fp32 without them)."""
    return cpu_features.has_bf16_instructions()


def cache_dir_for(model_file: str) -> Optional[str]:
    """``<model folder>/<stem>.ov_cache``, or None where that folder is not writable."""
    folder = os.path.dirname(os.path.abspath(model_file))
    if not os.access(folder, os.W_OK):
        return None
    return os.path.join(folder, os.path.splitext(os.path.basename(model_file))[0] + ".ov_cache")


def is_int8_model(model: Any) -> bool:
    """Whether an ``ov.Model`` holds quantization nodes (NNCF writes FakeQuantize, or
    FakeConvert for fp8), i.e. it was made by ``tools/quantize.py``."""
    return any(op.get_type_name() in ("FakeQuantize", "FakeConvert") for op in model.get_ops())


class OpenVinoEngine:
    """``run(slow [N,3,T/alpha,S,S], fast [N,3,T,S,S]) -> probabilities [N, K]`` with OpenVINO.

    ``precision``: fp32, bf16 or int8 (int8 needs a quantized model; a quantized model needs
    int8). ``batch_size``: the model is compiled for this many clips per run (static shapes
    are faster on the CPU); another batch size is compiled when first met.
    """

    def __init__(self, model_file: str, precision: str = "fp32",
                 cpu_threads: Optional[int] = None, batch_size: int = 1) -> None:
        try:
            ov = import_openvino()
        except OpenVinoMissing as err:
            raise EngineError(str(err)) from err
        if not os.path.isfile(model_file):
            raise EngineError(f"model file not found: {model_file}")
        self.core = ov.Core()
        try:
            self.model = self.core.read_model(model_file)
        except Exception as err:  # OpenVINO raises RuntimeError subclasses of its own
            raise EngineError(f"OpenVINO cannot read {model_file}: "
                              f"{str(err).strip().splitlines()[0]}") from err
        quantized = is_int8_model(self.model)
        if precision == "int8" and not quantized:
            raise EngineError(f"precision int8 needs an int8 model; {model_file} is not one "
                              f"(make one with tools/quantize.py)")
        if quantized and precision != "int8":
            raise EngineError(f"{model_file} is an int8 model (tools/quantize.py); run it with "
                              f"--precision int8")
        self.model_file, self.precision = model_file, precision
        self.input_names = slow_fast_order([port.get_any_name() for port in self.model.inputs])
        self.cache_dir = cache_dir_for(model_file)
        self.config: Dict[str, Any] = {"INFERENCE_PRECISION_HINT": _HINTS[precision],
                                       "PERFORMANCE_HINT": "LATENCY"}
        if cpu_threads:
            self.config["INFERENCE_NUM_THREADS"] = int(cpu_threads)
        if self.cache_dir:
            self.config["CACHE_DIR"] = self.cache_dir
        self._compiled: Dict[int, Any] = {}
        self.compiled_for(batch_size)

    def compiled_for(self, batch: int):
        """The model compiled for ``batch`` clips (compiled, or read from the cache, once)."""
        if batch not in self._compiled:
            model = self.model.clone()
            shapes = {}
            for port in model.inputs:
                shape = port.get_partial_shape()
                shape[0] = batch
                shapes[port.get_any_name()] = shape
            model.reshape(shapes)
            self._compiled[batch] = self.core.compile_model(model, "CPU", self.config)
        return self._compiled[batch]

    def prepare_batches(self, batches: Any) -> None:
        """Compile for each batch size in ``batches`` now (a service's batcher forms them all;
        compiling on first use would stall the requests of that batch)."""
        for batch in batches:
            self.compiled_for(int(batch))

    def loaded_from_cache(self, batch: int) -> bool:
        """Whether the model for ``batch`` clips came from the on-disk cache."""
        return bool(self.compiled_for(batch).get_property("LOADED_FROM_CACHE"))

    def run(self, slow: np.ndarray, fast: np.ndarray) -> np.ndarray:
        compiled = self.compiled_for(int(slow.shape[0]))
        feeds = dict(zip(self.input_names, (np.ascontiguousarray(slow, np.float32),
                                            np.ascontiguousarray(fast, np.float32))))
        return np.asarray(compiled(feeds)[0])


def convert_onnx_to_ir(onnx_file: str, xml_file: str) -> None:
    """OpenVINO IR (``xml_file`` + ``.bin``) from an ONNX export, weights kept in fp32 (the
    default of ``save_model`` would halve them to fp16)."""
    ov = import_openvino()
    model = ov.convert_model(onnx_file)
    names = {port.get_any_name() for port in model.inputs}
    if not set(INPUT_NAMES) <= names:  # keep the project's input names for slow_fast_order
        raise RuntimeError(f"{onnx_file} has inputs {sorted(names)}, expected {INPUT_NAMES}")
    ov.save_model(model, xml_file, compress_to_fp16=False)
