"""The header of a training log: the environment a run used and its resolved config."""
from __future__ import annotations

import platform
import sys
from typing import Any, Dict

from ..utils.config import dump_config


def environment_lines() -> Dict[str, str]:
    """``{name: value}`` for Paddle version and build, device, processes, Python, OS."""
    import paddle

    from ..utils.dist import get_world_size

    cuda = paddle.version.cuda() if paddle.is_compiled_with_cuda() else "False"
    return {
        "Paddle": f"{paddle.__version__} (commit {paddle.version.commit[:10]}, CUDA {cuda})",
        "Device": paddle.get_device(),
        "Processes": str(get_world_size()),
        "Python": sys.version.split()[0],
        "OS": platform.platform(),
    }


def run_header(cfg: Dict[str, Any]) -> str:
    """Multi-line text: an environment block then the resolved config as YAML, for the first
    lines of ``train.log`` so a log alone tells how its run was made."""
    environment = environment_lines()
    width = max(len(name) for name in environment)
    env = [f"  {name:<{width}}  {value}" for name, value in environment.items()]
    config = ["  " + line for line in dump_config(cfg).rstrip("\n").splitlines()]
    return "\n".join(["Environment:", *env, "Config:", *config])
