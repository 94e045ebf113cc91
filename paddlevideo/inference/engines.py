"""Run an exported model: Paddle Inference for ``.pdmodel``/``.json``, ONNX Runtime for ``.onnx``.

Every engine has ``run(slow [N,3,T/alpha,S,S], fast [N,3,T,S,S]) -> probabilities [N, K]``.
"""
from __future__ import annotations

import json
import os
import struct
import sys
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from .names import INPUT_NAMES

PRECISIONS = ("fp32", "fp16", "int8")


class EngineError(RuntimeError):
    """A model file that cannot be loaded or options this Paddle build cannot honour."""


@dataclass
class EngineOptions:
    """Paddle Inference settings, named as ``tools/predict.py``'s flags."""

    use_gpu: bool = False
    use_tensorrt: bool = False
    precision: str = "fp32"
    enable_mkldnn: bool = True
    cpu_threads: Optional[int] = None
    batch_size: int = 1
    gpu_mem: int = 8000  # MB of GPU memory Paddle Inference starts with
    ir_optim: bool = True  # graph optimisation passes (operator fusion)
    use_xpu: bool = False
    use_npu: bool = False
    disable_glog: bool = True  # False: Paddle Inference's C++ INFO log goes to stderr

    def check(self) -> None:
        """Values this Paddle build cannot honour, as one-line :class:`EngineError`."""
        import paddle

        if self.precision not in PRECISIONS:
            raise EngineError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("batch_size", "gpu_mem"):
            if getattr(self, name) < 1:
                raise EngineError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise EngineError(f"cpu_threads must be at least 1, got {self.cpu_threads}")
        if self.use_xpu and not paddle.is_compiled_with_xpu():
            raise EngineError("use_xpu=True: this Paddle build has no XPU support (install "
                              "PaddlePaddle's XPU build, or run with --use_xpu False)")
        if self.use_npu and "npu" not in paddle.device.get_all_custom_device_type():
            raise EngineError("use_npu=True: this Paddle has no NPU device plugin (install "
                              "paddle-custom-npu, or run with --use_npu False)")


def model_format(model_file: str) -> str:
    """``pdmodel``, ``json`` or ``onnx`` from the file extension."""
    ext = os.path.splitext(model_file)[1].lower().lstrip(".")
    if ext not in ("pdmodel", "json", "onnx"):
        raise EngineError(f"cannot tell the model format of {model_file}: expected a .pdmodel, "
                          f".json or .onnx file")
    return ext


def _check_program_desc(model_file: str, data: bytes) -> None:
    from paddle.base.proto import framework_pb2

    try:
        program = framework_pb2.ProgramDesc.FromString(data)
    except Exception:  # protobuf's DecodeError and friends
        program = None
    if program is None or not program.blocks or not program.blocks[0].ops:
        raise EngineError(f"{model_file} is not a Paddle .pdmodel program (no ProgramDesc "
                          f"with operators in it); export the model again with "
                          f"tools/export_model.py")


def _check_pir_json(model_file: str, data: bytes) -> None:
    try:
        program = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        program = None
    magic = (program.get("base_code") or {}).get("magic") if isinstance(program, dict) else None
    if magic != "pir" or not isinstance(program.get("program"), dict):
        raise EngineError(f"{model_file} is not a Paddle PIR .json program; export the model "
                          f"again with tools/export_model.py --format json")


def _check_params(params_file: str) -> None:
    """The header of the first tensor of a ``.pdiparams`` file: format version 0, no LoD,
    tensor version 0, then a TensorDesc protobuf of ``desc_size`` bytes that has dimensions."""
    from paddle.base.proto import framework_pb2

    with open(params_file, "rb") as f:
        head = f.read(1 << 16)
    desc = None
    if len(head) >= 20:
        lod_version, lod_level, tensor_version, desc_size = struct.unpack_from("<IQIi", head)
        if lod_version == lod_level == tensor_version == 0 and 0 < desc_size <= len(head) - 20:
            try:
                desc = framework_pb2.VarType.TensorDesc.FromString(head[20:20 + desc_size])
            except Exception:  # protobuf's DecodeError and friends
                desc = None
    if desc is None or not desc.dims:
        raise EngineError(f"{params_file} is not a Paddle .pdiparams weights file; use the "
                          f".pdiparams that tools/export_model.py wrote with the model")


def check_model_files(model_file: str, params_file: Optional[str]) -> str:
    """The format of ``model_file`` after checking, without handing them to Paddle (which can
    crash on a malformed file), that the model and weights files are what they claim to be."""
    fmt = model_format(model_file)
    needed = [model_file] + ([] if fmt == "onnx" else [params_file])
    for path in needed:
        if not path or not os.path.isfile(path):
            raise EngineError(f"model file not found: {path}")
        if os.path.getsize(path) == 0:
            raise EngineError(f"model file is empty: {path}")
    if fmt == "onnx":
        return fmt
    with open(model_file, "rb") as f:
        data = f.read()
    (_check_program_desc if fmt == "pdmodel" else _check_pir_json)(model_file, data)
    _check_params(params_file)
    return fmt


def _tensorrt_available() -> bool:
    import paddle
    from paddle import inference

    return paddle.is_compiled_with_cuda() and tuple(inference.get_trt_compile_version()) > (0,)


def _gpu_available(use_gpu: bool) -> bool:
    """``use_gpu`` if this Paddle can run on a GPU; otherwise warn once and use the CPU."""
    import paddle

    if not use_gpu:
        return False
    if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        return True
    print("Warning: use_gpu=True but this Paddle has no usable GPU; running on the CPU",
          file=sys.stderr)
    return False


class PaddleEngine:
    """A Paddle Inference predictor for a ``.pdmodel`` or PIR ``.json`` model."""

    def __init__(self, model_file: str, params_file: str,
                 options: Optional[EngineOptions] = None) -> None:
        from paddle.inference import create_predictor

        options = options or EngineOptions()
        options.check()
        check_model_files(model_file, params_file)
        self.options = options
        self.config = config = self._build_config(model_file, params_file, options)
        try:
            self.predictor = create_predictor(config)
        except Exception as err:  # Paddle raises several error types for a bad model
            raise EngineError(f"Paddle Inference cannot load {model_file}: {err}") from err
        self.input_names = slow_fast_order(self.predictor.get_input_names())
        self.output_name = self.predictor.get_output_names()[0]

    @staticmethod
    def _build_config(model_file: str, params_file: str, options: EngineOptions):
        from paddle.inference import Config, PrecisionType

        config = Config(model_file, params_file)
        if options.disable_glog:
            config.disable_glog_info()
        use_gpu = _gpu_available(options.use_gpu)
        if options.use_tensorrt and not (use_gpu and _tensorrt_available()):
            raise EngineError("use_tensorrt=True needs a GPU build of Paddle with TensorRT; "
                              "this one has none (run with --use_tensorrt False)")
        if options.precision != "fp32" and not options.use_tensorrt:
            raise EngineError(f"precision {options.precision} is only available with TensorRT "
                              f"(--use_tensorrt True); use fp32 otherwise")
        if use_gpu:
            config.enable_use_gpu(options.gpu_mem, 0)
        elif options.use_xpu:
            config.enable_xpu()
        elif options.use_npu:
            config.enable_custom_device("npu")
        else:
            config.disable_gpu()
            if options.cpu_threads:
                config.set_cpu_math_library_num_threads(options.cpu_threads)
            if options.enable_mkldnn:
                config.set_mkldnn_cache_capacity(10)
                config.enable_mkldnn()
            else:
                config.disable_mkldnn()
        config.switch_ir_optim(options.ir_optim)
        if options.use_tensorrt:
            precision = {"fp32": PrecisionType.Float32, "fp16": PrecisionType.Half,
                         "int8": PrecisionType.Int8}[options.precision]
            config.enable_tensorrt_engine(precision_mode=precision,
                                          max_batch_size=options.batch_size,
                                          use_calib_mode=options.precision == "int8")
        # PIR (.json) programs fail in create_predictor with memory optimisation on.
        if model_format(model_file) == "pdmodel":
            config.enable_memory_optim()
        config.switch_use_feed_fetch_ops(False)
        return config

    def run(self, slow: np.ndarray, fast: np.ndarray) -> np.ndarray:
        for name, array in zip(self.input_names, (slow, fast)):
            self.predictor.get_input_handle(name).copy_from_cpu(np.ascontiguousarray(array))
        self.predictor.run()
        return self.predictor.get_output_handle(self.output_name).copy_to_cpu()


class OnnxEngine:
    """An ONNX Runtime session on the CPU for a ``.onnx`` model."""

    def __init__(self, model_file: str, cpu_threads: Optional[int] = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise EngineError(f"{model_file} is an ONNX model: install onnxruntime to run it"
                              ) from err
        if not os.path.isfile(model_file):
            raise EngineError(f"model file not found: {model_file}")
        session_options = ort.SessionOptions()
        session_options.log_severity_level = 3  # unused-initializer notes are noise here
        if cpu_threads:
            session_options.intra_op_num_threads = cpu_threads
        try:
            self.session = ort.InferenceSession(model_file, session_options,
                                                providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise EngineError(f"ONNX Runtime cannot load {model_file}: {err}") from err
        self.input_names = slow_fast_order([item.name for item in self.session.get_inputs()])

    def run(self, slow: np.ndarray, fast: np.ndarray) -> np.ndarray:
        feeds = dict(zip(self.input_names, (slow, fast)))
        return self.session.run(None, feeds)[0]


def slow_fast_order(names: Sequence[str]) -> List[str]:
    """The model's input names as ``[slow, fast]``: by name when the model uses this project's
    names (``slow_input``, ``fast_input``), else in the model's own order."""
    if set(INPUT_NAMES) <= set(names):
        return list(INPUT_NAMES)
    return list(names)


def create_engine(model_file: str, params_file: Optional[str] = None,
                  options: Optional[EngineOptions] = None):
    """The engine that fits ``model_file``'s extension (``params_file`` unused for ONNX)."""
    options = options or EngineOptions()
    if model_format(model_file) == "onnx":
        options.check()
        check_model_files(model_file, params_file)
        if options.use_tensorrt or options.precision != "fp32":
            raise EngineError("TensorRT and reduced precision are Paddle Inference options; "
                              "ONNX models run in fp32 on the CPU")
        _gpu_available(options.use_gpu)
        return OnnxEngine(model_file, options.cpu_threads)
    return PaddleEngine(model_file, params_file, options)
