"""``cpu_fast_path``: train on a CPU with oneDNN's 3D convolutions instead of Paddle's plain ones.

A CPU training step of SlowFast is almost all 3D convolution: ``conv3d`` and ``conv3d_grad``
take 84% of the demo model's step and 94% of the R50 4x16's (``docs/benchmarks.md``). In Paddle
3.3 the dynamic graph runs them with the plain im2col + GEMM kernels whatever
``FLAGS_use_onednn`` says; oneDNN's kernels (forward, data and weight gradients) run only inside
a static program. There are two kinds of static program, and only one of them trains well:

- a PIR program with ``FLAGS_use_onednn`` moves *every* op that has a oneDNN kernel onto oneDNN;
  in training, ``concat_grad`` then raises and ``pad`` crashes, and batch-norm and ReLU gradients
  whose inputs arrive in two memory formats fall back to oneDNN's slow reference kernels;
- a ProgramDesc program picks oneDNN one op at a time from the op's ``use_mkldnn`` attribute.

So ``onednn`` converts the backbone with ``paddle.jit.to_static`` under the ProgramDesc IR and
marks only its ``conv3d`` and ``conv3d_grad`` ops: everything else runs the kernels it runs today,
and the losses equal the dygraph ones to float tolerance. Parameters, buffers and the state dict
are untouched (the program reads the dygraph parameters), so the optimizer, checkpoints, precise
BN and the head see the same model. The IR switch is scoped to the backbone call: the rest of the
process (export, ``to_static`` elsewhere) keeps Paddle's default PIR.

Config (top level): ``cpu_fast_path: auto | onednn | dygraph`` (``dygraph`` when absent; YAML
reads ``off``/``false`` as the boolean false, which also means ``dygraph``).

- ``dygraph``: today's path.
- ``onednn``: the path above; where a piece is missing it warns once and trains in dygraph.
- ``auto``: ``onednn`` where it measured faster (training on the CPU in float32 with the oneDNN
  kernels present, one process), ``dygraph`` elsewhere (GPU, AMP, ``to_static=True``, several
  processes, no oneDNN).

bfloat16 is not offered: Paddle 3.3 has no bfloat16 conv3d kernel (plain or oneDNN), so bf16
autocast cannot reach the convolutions even on CPUs with AVX-512 BF16.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import paddle
import paddle.nn as nn
from paddle.static import InputSpec

from ..utils import cpu_features
from ..utils.config import ConfigError
from ..utils.logger import get_logger
from .layers import norm_momenta

logger = get_logger()

PATHS = ("auto", "onednn", "dygraph")
ONEDNN_OPS = frozenset({"conv3d", "conv3d_grad"})


class OneDNNFallbackWarning(UserWarning):
    """The oneDNN training path could not be used; training goes on in dygraph."""


@contextlib.contextmanager
def program_desc_ir() -> Iterator[None]:
    """Run the body with Paddle's ProgramDesc static graph instead of PIR, then switch back."""
    from paddle import pir_utils

    was_pir = paddle.base.framework.use_pir_api()
    if was_pir:
        paddle.framework.set_flags({"FLAGS_enable_pir_api": False})
        pir_utils._switch_to_old_ir_()
    try:
        yield
    finally:
        if was_pir:
            paddle.framework.set_flags({"FLAGS_enable_pir_api": True})
            pir_utils._switch_to_pir_()


def mark_onednn_ops(programs: Sequence[Any], op_types=ONEDNN_OPS) -> int:
    """Set ``use_mkldnn`` on every op of ``op_types`` in the programs' blocks; returns the count."""
    count = 0
    for program in programs:
        for block in program.blocks:
            for op in block.ops:
                if op.type in op_types:
                    op._set_attr("use_mkldnn", True)
                    count += 1
    return count


class OneDNNBackboneForward:
    """Stands in for ``backbone.forward``: ``[slow, fast]`` (each ``[N,3,T,H,W]``) through a
    ProgramDesc program whose convolutions run on oneDNN; the backbone's outputs unchanged.

    The training program is built and marked on the first training call; evaluation runs in
    dygraph (an eval program would keep the weights it was traced with). If
    building or running it raises, the backbone's own ``forward`` is restored, a
    :class:`OneDNNFallbackWarning` says why, and that call (and every later one) runs in dygraph.

    A program holds the BN momentum it was traced with; a call while some BN layer has another
    momentum (precise BN sets 0 to read batch statistics) runs in dygraph, so it sees it.
    """

    def __init__(self, backbone: nn.Layer, static_fn: Callable, dygraph_fn: Callable) -> None:
        self.backbone = backbone
        self.static_fn = static_fn
        self.dygraph_fn = dygraph_fn
        self.marked: Dict[bool, int] = {}  # training mode -> oneDNN ops in its programs
        self.traced_momenta = norm_momenta(backbone)

    def _prepare(self, inputs: List[paddle.Tensor]) -> None:
        training = self.backbone.training
        _, partial = self.static_fn.get_concrete_program(inputs, is_train=training)
        partial.training = training
        programs = ([partial.forward_program, partial.backward_program] if training
                    else [partial.infer_program])
        self.marked[training] = mark_onednn_ops(programs)
        if not self.marked[training]:
            raise RuntimeError("the traced backbone has no conv3d op to run on oneDNN")

    def __call__(self, inputs: Sequence[paddle.Tensor]) -> List[paddle.Tensor]:
        inputs = list(inputs)
        # Evaluation (validation between epochs) runs in dygraph: an eval program keeps the
        # weights it was traced with, not the ones trained since.
        if not self.backbone.training or norm_momenta(self.backbone) != self.traced_momenta:
            return self.dygraph_fn(inputs)
        try:
            with program_desc_ir():
                if self.backbone.training not in self.marked:
                    self._prepare(inputs)
                return self.static_fn(inputs)
        except Exception as err:  # noqa: BLE001 - any failure means: keep training in dygraph
            restore_dygraph(self.backbone)
            _warn_fallback(f"the oneDNN program failed ({_first_line(err)})")
            return self.dygraph_fn(inputs)


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = f"{type(err).__name__}: {lines[0] if lines else 'no message'}"
    return text if len(text) <= 200 else text[:197] + "..."


def _warn_fallback(reason: str) -> None:
    message = f"cpu_fast_path=onednn: {reason}; training in dygraph"
    logger.warning(message)
    warnings.warn(message, OneDNNFallbackWarning, stacklevel=3)


def backbone_input_spec() -> List[List[InputSpec]]:
    """``[[slow, fast]]``, each ``[N, 3, T, H, W]`` float32 with only the channels fixed, so
    a short last batch and larger eval crops reuse the program."""
    shape = [None, 3, None, None, None]
    return [[InputSpec(shape, "float32", "slow"), InputSpec(shape, "float32", "fast")]]


def use_onednn_backbone(model: nn.Layer) -> Optional[str]:
    """Run ``model.backbone`` through :class:`OneDNNBackboneForward` (in place); returns why
    not when the backbone cannot be converted, else None."""
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Layer):
        return f"{type(model).__name__} has no backbone layer"
    if is_onednn(model):
        return None
    dygraph_fn = backbone.forward
    try:
        with program_desc_ir():
            static_fn = paddle.jit.to_static(dygraph_fn, input_spec=backbone_input_spec(),
                                             full_graph=True)
    except Exception as err:  # noqa: BLE001 - same fallback as a failure at the first call
        return f"paddle.jit.to_static failed ({_first_line(err)})"
    # an instance attribute shadows the class's forward; nn.Layer.__call__ looks it up there
    backbone.__dict__["forward"] = OneDNNBackboneForward(backbone, static_fn, dygraph_fn)
    return None


def is_onednn(model: nn.Layer) -> bool:
    """Whether ``model``'s backbone currently runs through :class:`OneDNNBackboneForward`."""
    backbone = getattr(model, "backbone", model)
    return isinstance(getattr(backbone, "__dict__", {}).get("forward"), OneDNNBackboneForward)


def restore_dygraph(model_or_backbone: nn.Layer) -> nn.Layer:
    """Undo :func:`use_onednn_backbone` (no-op when not converted)."""
    layer = getattr(model_or_backbone, "backbone", model_or_backbone)
    if isinstance(layer.__dict__.get("forward"), OneDNNBackboneForward):
        del layer.__dict__["forward"]
    return model_or_backbone


def requested_path(cfg: Dict[str, Any]) -> str:
    """``cfg['cpu_fast_path']`` checked: one of :data:`PATHS` (absent or false: ``dygraph``)."""
    value = cfg.get("cpu_fast_path", "dygraph")
    if value is False or value is None:
        return "dygraph"
    if value not in PATHS:
        raise ConfigError(f"cpu_fast_path: must be one of {', '.join(PATHS)}, got {value!r}")
    return value


def choose_path(requested: str, use_amp: bool = False, to_static: bool = False,
                world_size: int = 1) -> Tuple[str, str]:
    """``(path, reason)``: the path ``requested`` resolves to on this machine and why."""
    if requested not in PATHS:
        raise ConfigError(f"cpu_fast_path: must be one of {', '.join(PATHS)}, got {requested!r}")
    if requested == "dygraph":
        return "dygraph", "cpu_fast_path=dygraph"
    missing = []
    if not paddle.get_device().startswith("cpu"):
        missing.append(f"the device is {paddle.get_device()}, not the CPU")
    if use_amp:
        missing.append("AMP is on (the oneDNN path is float32)")
    if to_static:
        missing.append("to_static=True already converts the backbone")
    if world_size > 1 and requested == "auto":
        missing.append(f"{world_size} processes (measured in one process only)")
    if not cpu_features.onednn_training_kernels():
        missing.append("this Paddle has no oneDNN conv3d/conv3d_grad kernels")
    if not cpu_features.legacy_program_ir():
        missing.append("this Paddle has no ProgramDesc static graph")
    if missing:
        return "dygraph", "; ".join(missing)
    return "onednn", "oneDNN conv3d kernels for the forward and both gradients"


def apply_cpu_training_options(model: nn.Layer, optimizer: Optional[Any],
                               cfg: Dict[str, Any], use_amp: bool = False) -> str:
    """Apply ``cfg['cpu_fast_path']`` to ``model`` (in place) before training; returns the
    path that runs: ``'onednn'`` or ``'dygraph'``. Call it before wrapping the model in
    ``paddle.DataParallel``. ``optimizer`` is untouched (the parameters stay the same)."""
    del optimizer  # the program reads and writes the dygraph parameters the optimizer holds
    requested = requested_path(cfg)
    path, reason = choose_path(requested, use_amp, bool(cfg.get("to_static", False)),
                               paddle.distributed.get_world_size())
    failure = use_onednn_backbone(model) if path == "onednn" else None
    if failure:
        path, reason = "dygraph", failure
    if requested == "onednn" and path == "dygraph":
        _warn_fallback(reason)
    logger.info("cpu_fast_path=%s: training path %s (%s)", requested, path, reason)
    return path
