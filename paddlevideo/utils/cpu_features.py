"""What this CPU and this Paddle build offer for training: oneDNN kernels, bf16 instructions.

Used to choose how the backbone trains (``paddlevideo.tasks.backbone_paths``) and to say why,
and by inference to detect bfloat16 support. Every check is cheap and safe to call on any build:
a missing feature answers ``False``, never raises.
"""
from __future__ import annotations

import contextlib
import functools
import os
from typing import Dict, FrozenSet, Iterator

import paddle

CPUINFO = "/proc/cpuinfo"
# phi kernel names the oneDNN training path needs, all float32
ONEDNN_TRAINING_KERNELS = ("conv3d", "conv3d_grad")


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def math_threads(count: int) -> Iterator[None]:
    """Paddle's CPU kernels (oneDNN, the GEMMs) use ``count`` threads in the body, then the
    number Paddle started with (``FLAGS_paddle_num_threads``, 1 unless set)."""
    from paddle.base import core

    core.set_num_threads(max(1, int(count)))
    try:
        yield
    finally:
        core.set_num_threads(int(paddle.get_flags(["FLAGS_paddle_num_threads"])
                                 ["FLAGS_paddle_num_threads"]))


def cpu_flags(cpuinfo_path: str = CPUINFO) -> FrozenSet[str]:
    """The instruction-set flags of the first CPU in ``/proc/cpuinfo`` (empty elsewhere)."""
    try:
        with open(cpuinfo_path) as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def has_bf16_instructions(flags: FrozenSet[str] | None = None) -> bool:
    """AVX-512 BF16 or AMX-BF16: the instructions that make bfloat16 math faster than float32."""
    flags = cpu_flags() if flags is None else flags
    return "avx512_bf16" in flags or "amx_bf16" in flags


@functools.cache
def _registered_kernels() -> Dict[str, tuple]:
    try:
        return {name: tuple(keys) for name, keys in
                paddle.base.core._get_all_register_op_kernels("phi").items()}
    except Exception:  # noqa: BLE001 - an older/other build without the query: nothing known
        return {}


def has_kernel(op: str, dtype: str, library: str | None = None) -> bool:
    """Whether Paddle registers a CPU kernel of ``op`` for ``dtype`` ("float", "bfloat16"),
    optionally of one library ("MKLDNN" for oneDNN, "PLAIN")."""
    for key in _registered_kernels().get(op, ()):
        if f"data_type[{dtype}]" in key.replace("::phi::dtype::", "") and "Place(cpu)" in key \
                and (library is None or f"library_type[{library}]" in key):
            return True
    return False


def onednn_training_kernels() -> bool:
    """Paddle is built with oneDNN and has float32 oneDNN kernels for conv3d and its gradient."""
    compiled = getattr(paddle.base.core, "is_compiled_with_onednn", None) or getattr(
        paddle.base.core, "is_compiled_with_mkldnn", lambda: False)
    return bool(compiled()) and all(has_kernel(op, "float", "MKLDNN")
                                    for op in ONEDNN_TRAINING_KERNELS)


def legacy_program_ir() -> bool:
    """Paddle still ships the ProgramDesc static graph and its ``to_static`` layer, where an op's
    ``use_mkldnn`` attribute picks its oneDNN kernel one op at a time."""
    try:
        from paddle import pir_utils
        from paddle.jit.dy2static import partial_program  # noqa: F401
    except ImportError:
        return False
    return hasattr(pir_utils, "_switch_to_old_ir_") and hasattr(pir_utils, "_switch_to_pir_")


def bf16_conv3d_kernel() -> bool:
    """Whether any CPU conv3d kernel (plain or oneDNN) takes bfloat16 inputs."""
    return has_kernel("conv3d", "bfloat16")


def describe() -> str:
    """One line for the training log: the features the CPU training path depends on."""
    bf16 = has_bf16_instructions()
    return (f"oneDNN conv3d training kernels: {'yes' if onednn_training_kernels() else 'no'}; "
            f"ProgramDesc static graph: {'yes' if legacy_program_ir() else 'no'}; "
            f"bf16 instructions: {'yes' if bf16 else 'no'}, bf16 conv3d kernel: "
            f"{'yes' if bf16_conv3d_kernel() else 'no'}")


def cpu_description() -> str:
    """``model name`` of /proc/cpuinfo and the instruction sets the engines use."""
    name = "unknown CPU"
    try:
        with open(CPUINFO) as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f
                         if ln.startswith("model name")), name)
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    flags = cpu_flags()
    return f"{name}; " + ", ".join(f"{flag}: {'yes' if flag in flags else 'no'}"
                                   for flag in wanted)
