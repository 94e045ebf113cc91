"""Which kernels this Paddle build has for the CPU training paths: oneDNN conv3d and its
gradient, the ProgramDesc static graph, bfloat16 conv3d.

Used by :mod:`.backbone_paths` to choose how the backbone trains and to say why. Every check is
cheap and safe on any build: a missing feature answers ``False``, never raises.
"""
from __future__ import annotations

import functools
from typing import Dict

import paddle

from ..utils.cpu_features import has_bf16_instructions

# phi kernel names the oneDNN training path needs, all float32
ONEDNN_TRAINING_KERNELS = ("conv3d", "conv3d_grad")


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
