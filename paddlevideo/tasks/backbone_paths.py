"""How a recognizer's backbone runs in training: ``dygraph``, ``to_static`` or ``onednn``.

``Recognizer3D.forward(batch, mode)`` takes a mode string and returns a dict, a poor fit for one
static graph; the backbone holds nearly all of the compute (the 3D convolutions) and is a pure
function of ``[slow, fast]`` whose code does not depend on the input shape. So both static paths
convert the backbone only, with the batch, time and space dimensions left dynamic (a short last
batch, larger eval crops and multigrid's clip shapes reuse the program); the head, the loss and
the metrics stay in dygraph. Parameters, buffers and the state dict are untouched, so the
optimizer, checkpoints, ``paddle.DataParallel`` and precise BN see the same model.

- ``to_static`` (``-o to_static=True``): ``paddle.jit.to_static`` under Paddle's PIR, for training
  and evaluation.
- ``onednn`` (``cpu_fast_path``): a CPU training step is almost all ``conv3d``/``conv3d_grad``
  (84 % of the demo model's step, 94 % of the R50 4x16's, ``docs/benchmarks.md``), and Paddle 3.3's
  dygraph runs them with the plain im2col + GEMM kernels whatever ``FLAGS_use_onednn`` says. A PIR
  program with that flag moves *every* op with a oneDNN kernel onto oneDNN (``concat_grad`` then
  raises, ``pad`` crashes, BN/ReLU gradients fall back to reference kernels); a ProgramDesc
  program picks oneDNN one op at a time from its ``use_mkldnn`` attribute. So this path traces
  under the ProgramDesc IR (scoped to the backbone call) and marks only ``conv3d`` and
  ``conv3d_grad``: the losses equal the dygraph ones to float tolerance. Evaluation (validation
  between epochs) runs its own eval program, traced afresh for each evaluation because an eval
  program keeps the weight values it first ran with; its scores equal dygraph's.

One wrapper, :class:`ProgramBackbone`, holds what both share: it stands in for
``backbone.forward``, runs dygraph while a BN momentum differs from the traced one (precise BN
sets 0 to read batch statistics, which a program would not see), and on any failure restores the
backbone's own ``forward`` and warns once with the reason. :func:`resolve_backbone_path` makes
the one decision; :func:`apply_backbone_path` applies it.

Config (top level): ``to_static: bool`` and ``cpu_fast_path: auto | onednn | dygraph``
(``auto`` by default; YAML reads ``off``/``false`` as false, meaning ``dygraph``). ``auto`` picks
``onednn`` where it measured faster (CPU, float32, one process, the kernels present) and
``dygraph`` elsewhere. bfloat16 is not offered: Paddle 3.3 has no bfloat16 conv3d kernel.
"""
from __future__ import annotations

import contextlib
import os
import re
import warnings
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Optional, Sequence, Tuple

import paddle
import paddle.nn as nn
from paddle.static import InputSpec

from ..modeling.layers import norm_momenta
from ..utils.config import ConfigError
from ..utils.logger import get_logger
from . import training_kernels

logger = get_logger()

PATHS = ("auto", "onednn", "dygraph")  # the values of cpu_fast_path
ONEDNN_OPS = frozenset({"conv3d", "conv3d_grad"})


class BackboneFallbackWarning(UserWarning):
    """A static backbone path could not be used; the backbone runs in dygraph."""


class ToStaticFallbackWarning(BackboneFallbackWarning):
    """``to_static`` could not convert the model; it keeps running in dynamic mode."""


class OneDNNFallbackWarning(BackboneFallbackWarning):
    """The oneDNN training path could not be used; training goes on in dygraph."""


def backbone_input_spec() -> List[List[InputSpec]]:
    """``[[slow, fast]]``, each ``[N, 3, T, H, W]`` float32 with only the channels fixed."""
    shape = [None, 3, None, None, None]
    return [[InputSpec(shape, "float32", "slow"), InputSpec(shape, "float32", "fast")]]


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


def first_line(err: BaseException) -> str:
    """``Type: first line of the message``, at most 200 characters."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = f"{type(err).__name__}: {lines[0] if lines else 'no message'}"
    return text if len(text) <= 200 else text[:197] + "..."


def _warn(message: str, category: type) -> None:
    logger.warning(message)
    warnings.warn(message, category, stacklevel=4)


def _to_static(dygraph_fn: Callable) -> Callable:
    return paddle.jit.to_static(dygraph_fn, input_spec=backbone_input_spec(), full_graph=True)


class ToStaticProgram:
    """Program builder of the ``to_static`` path: PIR, every op as Paddle chooses, all modes."""

    path = "to_static"

    def trace(self, dygraph_fn: Callable) -> Callable:
        return _to_static(dygraph_fn)

    def scope(self) -> ContextManager:
        return contextlib.nullcontext()

    def prepare(self, static_fn: Callable, backbone: nn.Layer, inputs: List) -> Callable:
        """The program itself, traced on its first call."""
        return static_fn

    def warn_fallback(self, err: BaseException) -> None:
        _warn(f"to_static=True: paddle.jit.to_static failed ({failure_reason(err)}); "
              f"training in dygraph", ToStaticFallbackWarning)


class OneDNNProgram:
    """Program builder of the ``onednn`` path: ProgramDesc, only ``conv3d``/``conv3d_grad`` on
    oneDNN, training and evaluation. ``marked``: training mode -> oneDNN ops in its programs.

    The training program reads the current weights at every step; an evaluation program keeps
    the values it first ran with, so one is traced afresh for each evaluation (the first eval
    call after a training call): validation between epochs scores the weights trained since."""

    path = "onednn"

    def __init__(self) -> None:
        self.marked: Dict[bool, int] = {}
        self.dygraph_fn: Optional[Callable] = None
        self.eval_fn: Optional[Callable] = None
        self.evaluations = 0  # evaluation programs traced so far

    def trace(self, dygraph_fn: Callable) -> Callable:
        self.dygraph_fn = dygraph_fn
        with program_desc_ir():
            return _to_static(dygraph_fn)

    def scope(self) -> ContextManager:
        return program_desc_ir()

    def prepare(self, static_fn: Callable, backbone: nn.Layer, inputs: List) -> Callable:
        """The program for this call with its convolutions marked: the training program (built
        once), or this evaluation's program (built on its first call)."""
        training = backbone.training
        if training:
            self.eval_fn = None  # the weights change: the next evaluation traces anew
            if training not in self.marked:
                self.marked[training] = self._mark(static_fn, inputs, training)
            return static_fn
        if self.eval_fn is None:
            eval_fn = _to_static(self.dygraph_fn)
            self.marked[training] = self._mark(eval_fn, inputs, training)
            self.eval_fn, self.evaluations = eval_fn, self.evaluations + 1
        return self.eval_fn

    @staticmethod
    def _mark(static_fn: Callable, inputs: List, training: bool) -> int:
        _, partial = static_fn.get_concrete_program(inputs, is_train=training)
        partial.training = training
        programs = ([partial.forward_program, partial.backward_program] if training
                    else [partial.infer_program])
        marked = mark_onednn_ops(programs)
        if not marked:
            raise RuntimeError("the traced backbone has no conv3d op to run on oneDNN")
        return marked

    def warn_fallback(self, err: BaseException) -> None:
        _warn(f"cpu_fast_path=onednn: the oneDNN program failed ({first_line(err)}); "
              f"running in dygraph", OneDNNFallbackWarning)


BUILDERS = {"to_static": ToStaticProgram, "onednn": OneDNNProgram}


class ProgramBackbone:
    """Stands in for ``backbone.forward``: ``[slow, fast]`` (each ``[N,3,T,H,W]``) through the
    builder's static program, the backbone's outputs unchanged; dygraph after a failure.

    A call while some BN layer has another momentum than at tracing (precise BN) runs in
    dygraph. If building or running the program raises, the backbone's own ``forward`` is
    restored, the builder warns with the reason, and that call (and every later one) runs in
    dygraph. ``verified``: a program call has succeeded.
    """

    def __init__(self, backbone: nn.Layer, builder: Any, static_fn: Callable,
                 dygraph_fn: Callable) -> None:
        self.backbone = backbone
        self.builder = builder
        self.static_fn = static_fn
        self.dygraph_fn = dygraph_fn
        self.verified = False
        self.traced_momenta = norm_momenta(backbone)

    @property
    def path(self) -> str:
        return self.builder.path

    def __call__(self, inputs: Sequence[paddle.Tensor]) -> List[paddle.Tensor]:
        inputs = list(inputs)
        if norm_momenta(self.backbone) != self.traced_momenta:
            return self.dygraph_fn(inputs)
        try:
            with self.builder.scope():
                program = self.builder.prepare(self.static_fn, self.backbone, inputs)
                outputs = program(inputs)
        except Exception as err:  # noqa: BLE001 - any program failure means: keep dygraph
            restore_dygraph(self.backbone)
            self.builder.warn_fallback(err)
            return self.dygraph_fn(inputs)
        self.verified = True
        return outputs


def program_of(model: nn.Layer) -> Optional[ProgramBackbone]:
    """The :class:`ProgramBackbone` ``model``'s backbone (or ``model`` itself) runs through."""
    layer = getattr(model, "backbone", model)
    forward = getattr(layer, "__dict__", {}).get("forward")
    return forward if isinstance(forward, ProgramBackbone) else None


def backbone_path(model: nn.Layer) -> str:
    """``'dygraph'``, ``'to_static'`` or ``'onednn'``: how the backbone runs now."""
    program = program_of(model)
    return program.path if program is not None else "dygraph"


def convert_info(model: nn.Layer) -> str:
    """``'static'``, ``'pending'`` (converted, not yet run) or ``'dygraph'``: for logs/tests."""
    program = program_of(model)
    if program is None:
        return "dygraph"
    return "static" if program.verified else "pending"


def convert_backbone(model: nn.Layer, path: str) -> Optional[str]:
    """Run ``model.backbone`` through ``path``'s program (in place; ``dygraph``: unchanged).

    ``model`` is a ``Recognizer3D`` (anything with a ``backbone`` taking ``[slow [N,3,Ts,H,W],
    fast [N,3,Tf,H,W]]``): convert before wrapping it with ``paddle.DataParallel`` or AMP. The
    program is built on the first forward. Returns why not when tracing fails at once, else
    None; a model without a backbone layer is a ``TypeError``.
    """
    if path == "dygraph":
        return None
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Layer):
        raise TypeError(f"{path}: {type(model).__name__} has no backbone layer to convert; "
                        f"only Recognizer3D-like models are supported")
    if program_of(model) is not None:
        return None
    builder = BUILDERS[path]()
    dygraph_fn = backbone.forward
    try:
        static_fn = builder.trace(dygraph_fn)
    except Exception as err:  # noqa: BLE001 - same fallback as a failure at the first call
        return f"paddle.jit.to_static failed ({first_line(err)})"
    # an instance attribute shadows the class's forward; nn.Layer.__call__ looks it up there
    backbone.__dict__["forward"] = ProgramBackbone(backbone, builder, static_fn, dygraph_fn)
    return None


def restore_dygraph(model_or_backbone: nn.Layer) -> nn.Layer:
    """Undo :func:`convert_backbone` on a recognizer or its backbone (no-op when not converted)."""
    layer = getattr(model_or_backbone, "backbone", model_or_backbone)
    if isinstance(layer.__dict__.get("forward"), ProgramBackbone):
        del layer.__dict__["forward"]
    return model_or_backbone


def requested_path(cfg: Dict[str, Any]) -> str:
    """``cfg['cpu_fast_path']`` checked: one of :data:`PATHS` (absent: ``auto``; false:
    ``dygraph``)."""
    value = cfg.get("cpu_fast_path", "auto")
    if value is False or value is None:
        return "dygraph"
    if value not in PATHS:
        raise ConfigError(f"cpu_fast_path: must be one of {', '.join(PATHS)}, got {value!r}",
                          key="cpu_fast_path")
    return value


def _onednn_missing(requested: str, amp: bool, world_size: int, device: str) -> List[str]:
    """Why the oneDNN path cannot run here (empty: it can)."""
    missing = []
    if not device.startswith("cpu"):
        missing.append(f"the device is {device}, not the CPU")
    if amp:
        missing.append("AMP is on (the oneDNN path is float32)")
    if world_size > 1 and requested == "auto":
        missing.append(f"{world_size} processes (measured in one process only)")
    if not training_kernels.onednn_training_kernels():
        missing.append("this Paddle has no oneDNN conv3d/conv3d_grad kernels")
    if not training_kernels.legacy_program_ir():
        missing.append("this Paddle has no ProgramDesc static graph")
    return missing


def explain_backbone_path(cfg: Dict[str, Any], amp: bool = False, world_size: int = 1,
                          device: Optional[str] = None) -> Tuple[str, str]:
    """``(path, reason)``: what :func:`resolve_backbone_path` chooses and why."""
    requested = requested_path(cfg)
    device = device or paddle.get_device()
    if cfg.get("to_static"):
        return "to_static", "to_static=True converts the backbone"
    if requested == "dygraph":
        return "dygraph", "cpu_fast_path=dygraph"
    missing = _onednn_missing(requested, amp, world_size, device)
    if missing:
        return "dygraph", "; ".join(missing)
    return "onednn", "oneDNN conv3d kernels for the forward and both gradients"


def resolve_backbone_path(cfg: Dict[str, Any], amp: bool = False, world_size: int = 1,
                          device: Optional[str] = None) -> str:
    """``'dygraph'``, ``'to_static'`` or ``'onednn'``: how the backbone trains for ``cfg``
    (``to_static``, ``cpu_fast_path``) with AMP on or off, ``world_size`` processes, on
    ``device`` (``paddle.get_device()`` when None). A bad ``cpu_fast_path`` is a ConfigError."""
    return explain_backbone_path(cfg, amp, world_size, device)[0]


def apply_backbone_path(model: nn.Layer, cfg: Dict[str, Any], amp: bool = False,
                        world_size: int = 1, device: Optional[str] = None) -> str:
    """Resolve the path, convert ``model``'s backbone to it (in place, before AMP or
    DataParallel wrap the model), log the choice; returns the path that runs. A forced
    ``cpu_fast_path=onednn`` that cannot run warns (:class:`OneDNNFallbackWarning`)."""
    requested = requested_path(cfg)
    path, reason = explain_backbone_path(cfg, amp, world_size, device)
    failure = convert_backbone(model, path)
    if failure:
        if path == "to_static":
            _warn(f"to_static=True: {failure}; training in dygraph", ToStaticFallbackWarning)
        path, reason = "dygraph", failure
    if requested == "onednn" and path != "onednn":
        _warn(f"cpu_fast_path=onednn: {reason}; training in {path}", OneDNNFallbackWarning)
    if path == "to_static":
        logger.info("to_static=True: %s runs as a static graph", type(model.backbone).__name__)
    logger.info("cpu_fast_path=%s: training path %s (%s)", requested, path, reason)
    return path
