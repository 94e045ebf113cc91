"""Mixed precision: fp16 with loss scaling on GPU, bf16 where the CPU supports it."""
from __future__ import annotations

import contextlib
from typing import Any, Dict, Optional

import paddle

from ..utils.logger import get_logger

logger = get_logger()


def _amp_dtype() -> Optional[str]:
    """The mixed-precision dtype this device supports, or None."""
    if paddle.is_compiled_with_cuda() and "gpu" in paddle.device.get_device():
        return "float16"
    is_supported = getattr(paddle.amp, "is_bfloat16_supported", None)
    if is_supported is not None and is_supported():
        return "bfloat16"
    return None


class AmpContext:
    """Everything the training loop does differently under ``--amp``, behind one object."""

    def __init__(self, enabled: bool = False, level: Optional[str] = None) -> None:
        self.level = (level or "O1").upper()
        if self.level not in ("O1", "O2"):
            raise ValueError(f"--amp_level must be O1 or O2, got {level!r}")
        self.dtype = _amp_dtype() if enabled else None
        if enabled and self.dtype is None:
            logger.warning("--amp: device %s supports neither float16 (GPU) nor bfloat16 "
                           "mixed precision; training in float32", paddle.device.get_device())
        self.enabled = self.dtype is not None
        self.scaler = (paddle.amp.GradScaler(init_loss_scaling=2.0 ** 16)
                       if self.dtype == "float16" else None)
        if self.enabled:
            logger.info("Mixed precision: %s, level %s", self.dtype, self.level)

    def autocast(self):
        if not self.enabled:
            return contextlib.nullcontext()
        return paddle.amp.auto_cast(enable=True, level=self.level, dtype=self.dtype)

    def decorate(self, model, optimizer):
        if self.enabled and self.level == "O2":
            return paddle.amp.decorate(models=model, optimizers=optimizer, level="O2",
                                       dtype=self.dtype)
        return model, optimizer

    def backward(self, loss: paddle.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self, optimizer) -> None:
        if self.scaler:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()

    @staticmethod
    def no_sync(model, sync: bool):
        """Skip the gradient all-reduce on accumulation steps that don't update weights."""
        if not sync and hasattr(model, "no_sync"):
            return model.no_sync()
        return contextlib.nullcontext()

    def state_dict(self) -> Optional[Dict[str, Any]]:
        return self.scaler.state_dict() if self.scaler else None

    def load_state_dict(self, state: Optional[Dict[str, Any]]) -> None:
        if self.scaler and state:
            self.scaler.load_state_dict(state)
