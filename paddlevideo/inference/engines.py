"""Run an exported model: Paddle Inference for ``.pdmodel``/``.json``; ONNX Runtime or OpenVINO
for ``.onnx``; OpenVINO for its IR (``.xml``).

Every engine has ``run(slow [N,3,T/alpha,S,S], fast [N,3,T,S,S]) -> probabilities [N, K]``.
:func:`choose_engine` resolves ``EngineOptions.engine == "auto"`` and the precision;
:func:`create_engine` builds the chosen engine.
"""
from __future__ import annotations

import json
import os
import struct
import sys
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .names import EngineError, slow_fast_order

ENGINES = ("auto", "paddle", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
ENGINE_NAMES = {"paddle": "Paddle Inference", "onnxruntime": "ONNX Runtime",
                "openvino": "OpenVINO"}


@dataclass
class EngineOptions:
    """How to run the model, named as ``tools/predict.py``'s flags.

    ``engine``: auto, paddle, onnxruntime or openvino. ``precision``: None (the engine's
    choice: bf16 for OpenVINO on a CPU with bf16 instructions, else fp32), fp32, bf16
    (OpenVINO), fp16 (TensorRT) or int8 (TensorRT, or OpenVINO with a model made by
    ``tools/quantize.py``). ``batch_size``: clips per model run. The rest are Paddle Inference
    settings; ``cpu_threads`` applies to every engine.
    """

    engine: str = "auto"
    precision: Optional[str] = None
    use_gpu: bool = False
    use_tensorrt: bool = False
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

        if self.engine not in ENGINES:
            raise EngineError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.precision is not None and self.precision not in PRECISIONS:
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
    """``pdmodel``, ``json``, ``onnx`` or ``xml`` (OpenVINO IR) from the file extension."""
    ext = os.path.splitext(model_file)[1].lower().lstrip(".")
    if ext not in ("pdmodel", "json", "onnx", "xml"):
        raise EngineError(f"cannot tell the model format of {model_file}: expected a .pdmodel, "
                          f".json, .onnx or OpenVINO .xml file")
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
    needed = [model_file]
    if fmt in ("pdmodel", "json"):
        needed.append(params_file)
    elif fmt == "xml":
        needed.append(os.path.splitext(model_file)[0] + ".bin")
    for path in needed:
        if not path or not os.path.isfile(path):
            raise EngineError(f"model file not found: {path}")
        if os.path.getsize(path) == 0:
            raise EngineError(f"model file is empty: {path}")
    if fmt in ("onnx", "xml"):
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
        precision = options.precision or "fp32"
        if precision != "fp32" and not options.use_tensorrt:
            raise EngineError(f"precision {precision} is not available in Paddle Inference "
                              f"without TensorRT (--use_tensorrt True); use fp32 here, or bf16/"
                              f"int8 with --engine openvino")
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
            if precision == "bf16":
                raise EngineError("TensorRT precisions are fp32, fp16 and int8; bf16 runs on "
                                  "the openvino engine")
            trt_precision = {"fp32": PrecisionType.Float32, "fp16": PrecisionType.Half,
                             "int8": PrecisionType.Int8}[precision]
            config.enable_tensorrt_engine(precision_mode=trt_precision,
                                          max_batch_size=options.batch_size,
                                          use_calib_mode=precision == "int8")
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


@dataclass(frozen=True)
class EngineChoice:
    """The engine and precision :func:`choose_engine` resolved, and why."""

    engine: str  # paddle, onnxruntime or openvino
    precision: str
    reason: str = ""

    def describe(self) -> str:
        """One line such as ``OpenVINO, bf16 (auto: ...)``."""
        text = f"{ENGINE_NAMES[self.engine]}, {self.precision}"
        return f"{text} ({self.reason})" if self.reason else text


_READERS = {"paddle": ("pdmodel", "json"), "onnxruntime": ("onnx",),
            "openvino": ("onnx", "xml")}
_EXPORT_FOR = {"paddle": "pdmodel", "onnxruntime": "onnx", "openvino": "openvino"}


def _auto_engine(fmt: str) -> Tuple[str, str]:
    """The fastest engine that reads ``fmt`` here, with the reason: Paddle Inference for Paddle
    programs (and every GPU/XPU/NPU run), else OpenVINO when installed, else ONNX Runtime."""
    from .openvino_engine import openvino_available

    if fmt in ("pdmodel", "json"):
        return "paddle", "auto: Paddle program"
    if fmt == "xml":
        return "openvino", "auto: OpenVINO IR"
    if openvino_available():
        return "openvino", "auto: ONNX model on the CPU"
    return "onnxruntime", "auto: ONNX model, openvino not installed"


def _resolve_precision(engine: str, precision: Optional[str]) -> str:
    from .openvino_engine import cpu_has_bf16

    if precision is None:
        # bf16 keeps fp32's top-1 and is ~2x faster where the CPU has the instructions.
        return "bf16" if engine == "openvino" and cpu_has_bf16() else "fp32"
    if precision == "bf16":
        if engine != "openvino":
            raise EngineError(f"precision bf16 runs on the openvino engine only, not "
                              f"{ENGINE_NAMES[engine]}")
        if not cpu_has_bf16():
            raise EngineError("precision bf16 needs a CPU with AVX512-BF16 or AMX instructions; "
                              "this CPU has neither (use fp32)")
    if engine == "onnxruntime" and precision != "fp32":
        raise EngineError(f"precision {precision}: ONNX Runtime runs ONNX models in fp32 here "
                          f"(--engine openvino runs bf16 and int8)")
    if engine == "openvino" and precision == "fp16":
        raise EngineError("precision fp16 is a TensorRT precision; OpenVINO on the CPU runs "
                          "fp32, bf16 or int8")
    return precision


def choose_engine(model_file: str, options: EngineOptions) -> EngineChoice:
    """Resolve ``options.engine`` (``auto``: see :func:`_auto_engine`) and
    ``options.precision`` for ``model_file``; one-line :class:`EngineError` for a
    combination that cannot run. int8 is never chosen here: it takes an int8 model file."""
    options.check()
    fmt = model_format(model_file)
    engine, reason = options.engine, ""
    if engine == "auto":
        engine, reason = _auto_engine(fmt)
    elif fmt not in _READERS[engine]:
        if engine == "openvino":
            raise EngineError(f"OpenVINO cannot read Paddle programs ({model_file}); export "
                              f"the model with tools/export_model.py --format openvino (or "
                              f"--format onnx)")
        raise EngineError(f"the {engine} engine cannot read {model_file}; export the model "
                          f"with tools/export_model.py --format {_EXPORT_FOR[engine]}")
    if engine != "paddle" and (options.use_tensorrt or options.use_xpu or options.use_npu):
        raise EngineError(f"TensorRT, XPU and NPU are Paddle Inference options; "
                          f"{ENGINE_NAMES[engine]} runs on the CPU")
    return EngineChoice(engine, _resolve_precision(engine, options.precision), reason)


def create_engine(model_file: str, params_file: Optional[str] = None,
                  options: Optional[EngineOptions] = None):
    """The engine :func:`choose_engine` picks for ``model_file`` (``params_file``: Paddle
    programs only). The engine's ``choice`` attribute says which engine and precision run."""
    options = options or EngineOptions()
    choice = choose_engine(model_file, options)
    check_model_files(model_file, params_file)
    if choice.engine == "paddle":
        engine = PaddleEngine(model_file, params_file, options)
    else:
        _gpu_available(options.use_gpu)
        if choice.engine == "openvino":
            from .openvino_engine import OpenVinoEngine

            engine = OpenVinoEngine(model_file, choice.precision, options.cpu_threads,
                                    options.batch_size)
        else:
            engine = OnnxEngine(model_file, options.cpu_threads)
    engine.choice = choice
    return engine
