"""The engine flags shared by ``tools/predict.py`` and ``tools/serve.py``: PaddleVideo's
predict flags (booleans spelled ``True``/``true``/``t``/``1`` or ``False``/``false``/``f``/``0``)
plus ``--engine``, and the one :class:`~.engines.EngineOptions` they describe."""
from __future__ import annotations

import argparse

from .engines import EngineOptions


def str2bool(value: str) -> bool:
    """PaddleVideo's boolean flags: ``--use_gpu=True`` / ``--use_gpu False``."""
    text = str(value).strip().lower()
    if text in ("true", "t", "1", "yes", "y"):
        return True
    if text in ("false", "f", "0", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def add_engine_arguments(parser: argparse.ArgumentParser, use_gpu: bool = True) -> None:
    """Add ``--engine``, ``--precision``, the device flags and Paddle Inference's settings;
    ``use_gpu`` is ``--use_gpu``'s default (PaddleVideo's predict.py: True)."""
    parser.add_argument("--engine", choices=("auto", "paddle", "onnxruntime", "openvino"),
                        default="auto",
                        help="auto: Paddle Inference for Paddle programs and GPUs, OpenVINO for "
                             "ONNX/IR on the CPU (ONNX Runtime without openvino)")
    parser.add_argument("--use_gpu", type=str2bool, metavar="BOOL", default=use_gpu,
                        help="run on the GPU (without one: a one-line note, then the CPU)")
    parser.add_argument("--use_xpu", type=str2bool, metavar="BOOL", default=False,
                        help="run on a Kunlun XPU (needs Paddle's XPU build)")
    parser.add_argument("--use_npu", type=str2bool, metavar="BOOL", default=False,
                        help="run on an Ascend NPU (needs the paddle-custom-npu plugin)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16", "int8"), default=None,
                        help="None: the engine's choice (bf16 for OpenVINO on a CPU with bf16 "
                             "instructions, else fp32); fp16/int8 with TensorRT; bf16 and int8 "
                             "(a tools/quantize.py model) with OpenVINO")
    parser.add_argument("--ir_optim", type=str2bool, metavar="BOOL", default=True,
                        help="Paddle Inference graph optimisation (operator fusion)")
    parser.add_argument("--use_tensorrt", type=str2bool, metavar="BOOL", default=False,
                        help="TensorRT subgraphs (GPU build with TensorRT)")
    parser.add_argument("--gpu_mem", type=int, default=8000,
                        help="MB of GPU memory Paddle Inference starts with")
    parser.add_argument("--enable_mkldnn", type=str2bool, metavar="BOOL", default=True,
                        help="oneDNN kernels on the CPU (much faster for 3D convolutions)")
    parser.add_argument("--cpu_threads", type=int, default=None,
                        help="CPU math threads (None: Paddle's choice)")
    parser.add_argument("--disable_glog", type=str2bool, metavar="BOOL", default=True,
                        help="hide Paddle Inference's C++ INFO log (False: show it on stderr)")


def engine_options(args: argparse.Namespace, batch_size: int) -> EngineOptions:
    """The flags of :func:`add_engine_arguments` as one ``EngineOptions`` running
    ``batch_size`` videos per model run."""
    return EngineOptions(engine=args.engine, precision=args.precision, use_gpu=args.use_gpu,
                         use_tensorrt=args.use_tensorrt, enable_mkldnn=args.enable_mkldnn,
                         cpu_threads=args.cpu_threads, batch_size=batch_size,
                         gpu_mem=args.gpu_mem, ir_optim=args.ir_optim, use_xpu=args.use_xpu,
                         use_npu=args.use_npu, disable_glog=args.disable_glog)
