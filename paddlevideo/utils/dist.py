"""Process-group helpers that also work on a single process without an initialised group."""
from __future__ import annotations

from typing import Any, List

import numpy as np
import paddle
import paddle.distributed as dist


def get_rank() -> int:
    return dist.get_rank() if dist.is_initialized() else int(paddle.distributed.ParallelEnv().rank)


def get_world_size() -> int:
    if dist.is_initialized():
        return dist.get_world_size()
    return int(paddle.distributed.ParallelEnv().world_size)


def init_distributed() -> int:
    """Initialise the process group when launched with several processes; return world size."""
    world = int(paddle.distributed.ParallelEnv().world_size)
    if world > 1 and not dist.is_initialized():
        dist.init_parallel_env()
    return world


def _all_reduce_numpy(array: np.ndarray, op: Any) -> np.ndarray:
    if get_world_size() == 1 or not dist.is_initialized():
        return array
    tensor = paddle.to_tensor(np.ascontiguousarray(array))
    dist.all_reduce(tensor, op=op)
    return tensor.numpy()


def all_reduce_sum(array: np.ndarray) -> np.ndarray:
    """Sum a NumPy array over all processes (identity on one process)."""
    return _all_reduce_numpy(array, dist.ReduceOp.SUM)


def all_reduce_max(array: np.ndarray) -> np.ndarray:
    """Element-wise maximum of a NumPy array over all processes."""
    return _all_reduce_numpy(array, dist.ReduceOp.MAX)


def all_reduce_mean_(tensor: paddle.Tensor) -> None:
    """Average a tensor over all processes, in place."""
    if get_world_size() == 1 or not dist.is_initialized():
        return
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    paddle.assign(tensor / get_world_size(), tensor)


def all_gather_objects(obj: Any) -> List[Any]:
    """Every process's ``obj`` (picklable), in rank order; ``[obj]`` on one process."""
    if get_world_size() == 1 or not dist.is_initialized():
        return [obj]
    gathered: List[Any] = []
    dist.all_gather_object(gathered, obj)
    return gathered
