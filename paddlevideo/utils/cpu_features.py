"""What this CPU offers: its instruction sets (bf16), the cores this process may use, Paddle's
math threads, and one line describing it for benchmarks.

Used by inference (bf16 detection), training and testing (threads). Every check is cheap and
safe on any machine: a missing feature answers ``False``, never raises. Which oneDNN kernels
this Paddle build has is a question of the training paths: ``tasks/training_kernels.py``.
"""
from __future__ import annotations

import contextlib
import os
from typing import FrozenSet, Iterator

import paddle

CPUINFO = "/proc/cpuinfo"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def one_cpu_process(world_size: int) -> bool:
    """This is the only process of the run and it runs on the CPU: its model may use every
    core it may use."""
    on_cpu = not paddle.is_compiled_with_cuda() or paddle.device.get_device() == "cpu"
    return on_cpu and world_size == 1


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
