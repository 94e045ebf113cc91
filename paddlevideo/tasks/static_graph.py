"""``-o to_static=True``: run a recognizer's backbone through ``paddle.jit.to_static``.

``Recognizer3D.forward(batch, mode)`` takes a mode string and returns a dict, so the whole
recognizer is a poor fit for one static graph. The backbone holds nearly all of the compute (the
3D convolutions) and is a pure function of ``[slow, fast]`` whose code does not depend on the
input shape, so it is what gets converted, with the batch, time and space dimensions left
dynamic: training, validation with a short last batch, larger test crops and multigrid's
changing clip shapes all run through the same program. The head (pooling sized from the input
shape, dropout, one linear layer), the loss and the metrics stay in dynamic mode.

Parameters, buffers and the state dict are untouched, so the optimizer, checkpoints,
``paddle.DataParallel`` and precise BN see the same model. If Paddle cannot convert the
backbone, the first forward says why in one warning and the model carries on in dynamic mode.
"""
from __future__ import annotations

import os
import re
import warnings
from typing import Callable, List, Sequence

import paddle
import paddle.nn as nn
from paddle.static import InputSpec

from ..modeling.layers import norm_momenta
from ..utils.logger import get_logger

logger = get_logger()


class ToStaticFallbackWarning(UserWarning):
    """``to_static`` could not convert the model; it keeps running in dynamic mode."""


def backbone_input_spec() -> List[List[InputSpec]]:
    """``[[slow, fast]]``, each ``[N, 3, T, H, W]`` float32 with only the channels fixed."""
    shape = [None, 3, None, None, None]
    return [[InputSpec(shape, "float32", "slow"), InputSpec(shape, "float32", "fast")]]


class StaticBackboneForward:
    """Stands in for ``backbone.forward``: runs the static program, or dygraph after a failure.

    The program is traced on the first call; if tracing or running it raises, the backbone's
    own ``forward`` is restored, a :class:`ToStaticFallbackWarning` names the error, and that
    call (and every later one) runs in dynamic mode.
    """

    def __init__(self, backbone: nn.Layer, static_fn: Callable, dygraph_fn: Callable) -> None:
        self.backbone = backbone
        self.static_fn = static_fn
        self.dygraph_fn = dygraph_fn
        self.verified = False
        self.traced_momenta = norm_momenta(backbone)

    def __call__(self, inputs: Sequence[paddle.Tensor]) -> List[paddle.Tensor]:
        # The program holds the BN momentum it was traced with; precise BN sets 0 to read each
        # batch's statistics, so those calls run in dygraph.
        if norm_momenta(self.backbone) != self.traced_momenta:
            return self.dygraph_fn(list(inputs))
        if self.verified:
            return self.static_fn(list(inputs))
        try:
            outputs = self.static_fn(list(inputs))
        except Exception as err:  # noqa: BLE001 - any conversion failure means: keep dygraph
            restore_dygraph(self.backbone)
            _warn_fallback(err)
            return self.dygraph_fn(inputs)
        self.verified = True
        return outputs


def failure_reason(err: BaseException) -> str:
    """One line from a dy2static error: the innermost ``XxxError: ...`` and the user code line.

    Paddle's messages span many lines (the transformed code, then the original error, then
    advice); the error line and the first ``File "...", line N, in fn`` are what matter.
    """
    text = str(err)
    errors = re.findall(r"^\s*(\w+(?:Error|Exception): .+)$", text, flags=re.MULTILINE)
    reason = errors[-1].strip() if errors else f"{type(err).__name__}: " + next(
        (line.strip() for line in text.splitlines() if line.strip()), "no message")
    where = re.search(r'File "([^"]+)", line (\d+), in (\w+)', text)
    if where:
        reason += f" at {os.path.basename(where.group(1))}:{where.group(2)} in {where.group(3)}"
    return reason if len(reason) <= 300 else reason[:297] + "..."


def _warn_fallback(err: BaseException) -> None:
    message = (f"to_static=True: paddle.jit.to_static failed ({failure_reason(err)}); "
               f"training in dygraph")
    logger.warning(message)
    warnings.warn(message, ToStaticFallbackWarning, stacklevel=3)


def is_static(model: nn.Layer) -> bool:
    """Whether ``model``'s backbone currently runs through :class:`StaticBackboneForward`."""
    backbone = getattr(model, "backbone", None)
    return isinstance(getattr(backbone, "__dict__", {}).get("forward"), StaticBackboneForward)


def apply_to_static(model: nn.Layer, enabled: bool) -> nn.Layer:
    """Convert ``model.backbone`` with ``paddle.jit.to_static(full_graph=True)`` when enabled.

    ``model`` is a ``Recognizer3D`` (anything with a ``backbone`` taking ``[slow [N,3,Ts,H,W],
    fast [N,3,Tf,H,W]]``). It is changed in place and returned, so wrap it with
    ``paddle.DataParallel`` or AMP afterwards. ``enabled=False`` returns it unchanged. The
    program is built on the first forward (tens of seconds for the full model on CPU).
    """
    if not enabled or is_static(model):
        return model
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Layer):
        raise TypeError(f"to_static: {type(model).__name__} has no backbone layer to convert; "
                        f"only Recognizer3D-like models are supported")
    dygraph_fn = backbone.forward
    try:
        static_fn = paddle.jit.to_static(dygraph_fn, input_spec=backbone_input_spec(),
                                         full_graph=True)
    except Exception as err:  # noqa: BLE001 - same fallback as a failure at the first call
        _warn_fallback(err)
        return model
    # An instance attribute shadows the class's forward; nn.Layer.__call__ looks it up there.
    backbone.__dict__["forward"] = StaticBackboneForward(backbone, static_fn, dygraph_fn)
    logger.info("to_static=True: %s runs as a static graph", type(backbone).__name__)
    return model


def restore_dygraph(model_or_backbone: nn.Layer) -> nn.Layer:
    """Undo :func:`apply_to_static` on a recognizer or its backbone (no-op when not converted)."""
    layer = getattr(model_or_backbone, "backbone", model_or_backbone)
    if isinstance(layer.__dict__.get("forward"), StaticBackboneForward):
        del layer.__dict__["forward"]
    return model_or_backbone


def convert_info(model: nn.Layer) -> str:
    """``'static'``, ``'pending'`` (converted, not yet run) or ``'dygraph'``: for logs/tests."""
    forward = getattr(getattr(model, "backbone", None), "__dict__", {}).get("forward")
    if not isinstance(forward, StaticBackboneForward):
        return "dygraph"
    return "static" if forward.verified else "pending"
