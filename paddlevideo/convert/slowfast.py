"""Map SlowFast weights from PySlowFast and PyTorchVideo to this framework's names and layouts.

Three source namings are understood; for one BN of the slow pathway's first block, all map to
our ``backbone.s2.pathway0_res0.branch2.a_bn._variance``:

* ``pyslowfast``: ``s2.pathway0_res0.branch2.a_bn.running_var`` (PySlowFast ``.pyth``);
* ``caffe2``: ``res2_0_branch2a_bn_riv`` (PySlowFast's Caffe2 ``.pkl``; ``t_`` marks the fast
  pathway);
* ``pytorchvideo``: ``blocks.1.multipathway_blocks.0.res_blocks.0.branch2.norm_a.running_var``.

Layouts: convolution kernels are ``[out, in, t, h, w]`` on both sides; a PyTorch/Caffe2 linear
weight ``[out, in]`` becomes Paddle's ``[in, out]``; BN ``running_mean``/``running_var`` become
``_mean``/``_variance``; ``num_batches_tracked`` (and Caffe2 optimizer blobs) are dropped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .torch_format import LazyTensor, materialize

SOURCES = ("pyslowfast", "pytorchvideo")
HEAD_PREFIX = "head."
_LINEAR_WEIGHTS = ("head.projection.weight",)

_TORCH_SUFFIX = {"weight": "weight", "bias": "bias", "running_mean": "_mean",
                 "running_var": "_variance"}
_CAFFE2_CONV_SUFFIX = {"w": "weight", "b": "bias"}
_CAFFE2_BN_SUFFIX = {"s": "weight", "b": "bias", "rm": "_mean", "riv": "_variance"}

Rule = Tuple["re.Pattern[str]", Callable[["re.Match[str]"], str]]


def _rule(pattern: str, build: Callable[[re.Match], str]) -> Rule:
    return re.compile(pattern), build


# Module-path rules for PyTorch-named sources: the parameter suffix is renamed separately.
_PYSLOWFAST_MODULES: List[Rule] = [
    _rule(r"s1\.pathway(\d)_stem\.conv", lambda m: f"backbone.s1.pathway{m[1]}_stem._conv"),
    _rule(r"s1\.pathway(\d)_stem\.bn", lambda m: f"backbone.s1.pathway{m[1]}_stem._bn"),
    _rule(r"s(\d)_fuse\.conv_f2s", lambda m: f"backbone.s{m[1]}_fuse._conv_f2s"),
    _rule(r"s(\d)_fuse\.bn", lambda m: f"backbone.s{m[1]}_fuse._bn"),
    _rule(r"s\d\.pathway\d_res\d+\.(?:branch1|branch1_bn|branch2\.[abc]|branch2\.[abc]_bn)",
          lambda m: f"backbone.{m[0]}"),
    _rule(r"head\.projection", lambda m: "head.projection"),
]

_PTV_BLOCK = r"blocks\.(\d)\.multipathway_blocks\.(\d)\.res_blocks\.(\d+)\."


def _ptv_block(m: re.Match, part: str) -> str:
    return f"backbone.s{int(m[1]) + 1}.pathway{m[2]}_res{m[3]}.{part}"


_PYTORCHVIDEO_MODULES: List[Rule] = [
    _rule(r"blocks\.0\.multipathway_blocks\.(\d)\.conv",
          lambda m: f"backbone.s1.pathway{m[1]}_stem._conv"),
    _rule(r"blocks\.0\.multipathway_blocks\.(\d)\.norm",
          lambda m: f"backbone.s1.pathway{m[1]}_stem._bn"),
    _rule(r"blocks\.(\d)\.multipathway_fusion\.conv_fast_to_slow",
          lambda m: f"backbone.s{int(m[1]) + 1}_fuse._conv_f2s"),
    _rule(r"blocks\.(\d)\.multipathway_fusion\.norm",
          lambda m: f"backbone.s{int(m[1]) + 1}_fuse._bn"),
    _rule(_PTV_BLOCK + r"branch1_conv", lambda m: _ptv_block(m, "branch1")),
    _rule(_PTV_BLOCK + r"branch1_norm", lambda m: _ptv_block(m, "branch1_bn")),
    _rule(_PTV_BLOCK + r"branch2\.conv_([abc])", lambda m: _ptv_block(m, f"branch2.{m[4]}")),
    _rule(_PTV_BLOCK + r"branch2\.norm_([abc])", lambda m: _ptv_block(m, f"branch2.{m[4]}_bn")),
    _rule(r"blocks\.\d+\.proj", lambda m: "head.projection"),
]

_BN = r"_bn_(s|b|rm|riv)"


def _pathway(m: re.Match) -> int:
    return 1 if m["fast"] else 0


# Whole-name rules for Caffe2 blobs; ``t_`` marks the fast pathway.
_CAFFE2_NAMES: List[Rule] = [
    _rule(r"(?P<fast>t_)?conv1_(w)",
          lambda m: f"backbone.s1.pathway{_pathway(m)}_stem._conv."
                    f"{_CAFFE2_CONV_SUFFIX[m[2]]}"),
    _rule(r"(?P<fast>t_)?res_conv1" + _BN,
          lambda m: f"backbone.s1.pathway{_pathway(m)}_stem._bn.{_CAFFE2_BN_SUFFIX[m[2]]}"),
    _rule(r"t_pool1_subsample_(w)", lambda m: "backbone.s1_fuse._conv_f2s.weight"),
    _rule(r"t_pool1_subsample" + _BN,
          lambda m: f"backbone.s1_fuse._bn.{_CAFFE2_BN_SUFFIX[m[1]]}"),
    _rule(r"t_res(\d)_\d+_branch2c_bn_subsample_(w)",
          lambda m: f"backbone.s{m[1]}_fuse._conv_f2s.weight"),
    _rule(r"t_res(\d)_\d+_branch2c_bn_subsample" + _BN,
          lambda m: f"backbone.s{m[1]}_fuse._bn.{_CAFFE2_BN_SUFFIX[m[2]]}"),
    _rule(r"(?P<fast>t_)?res(\d)_(\d+)_branch1_(w)",
          lambda m: f"backbone.s{m[2]}.pathway{_pathway(m)}_res{m[3]}.branch1.weight"),
    _rule(r"(?P<fast>t_)?res(\d)_(\d+)_branch1" + _BN,
          lambda m: f"backbone.s{m[2]}.pathway{_pathway(m)}_res{m[3]}.branch1_bn."
                    f"{_CAFFE2_BN_SUFFIX[m[4]]}"),
    _rule(r"(?P<fast>t_)?res(\d)_(\d+)_branch2([abc])_(w)",
          lambda m: f"backbone.s{m[2]}.pathway{_pathway(m)}_res{m[3]}.branch2.{m[4]}.weight"),
    _rule(r"(?P<fast>t_)?res(\d)_(\d+)_branch2([abc])" + _BN,
          lambda m: f"backbone.s{m[2]}.pathway{_pathway(m)}_res{m[3]}.branch2.{m[4]}_bn."
                    f"{_CAFFE2_BN_SUFFIX[m[5]]}"),
    _rule(r"pred_(w|b)", lambda m: f"head.projection.{_CAFFE2_CONV_SUFFIX[m[1]]}"),
]


class ConversionError(ValueError):
    """Source weights that cannot be converted as asked; the message lists names."""


def is_ignored(name: str, scheme: str) -> bool:
    """Bookkeeping entries that carry no weights: BN batch counters, Caffe2 solver blobs."""
    if scheme == "caffe2":
        return name.endswith("_momentum") or name in ("lr", "model_iter")
    return name.endswith("num_batches_tracked")


def map_name(name: str, scheme: str) -> Optional[str]:
    """Our parameter name for a source ``name`` of ``scheme`` (``pyslowfast``, ``caffe2`` or
    ``pytorchvideo``), or None if the name is not part of a SlowFast ResNet."""
    if scheme == "caffe2":
        for pattern, build in _CAFFE2_NAMES:
            match = pattern.fullmatch(name)
            if match:
                return build(match)
        return None
    rules = {"pyslowfast": _PYSLOWFAST_MODULES, "pytorchvideo": _PYTORCHVIDEO_MODULES}[scheme]
    module, _, suffix = name.rpartition(".")
    if suffix not in _TORCH_SUFFIX:
        return None
    for pattern, build in rules:
        match = pattern.fullmatch(module)
        if match:
            return f"{build(match)}.{_TORCH_SUFFIX[suffix]}"
    return None


def target_shape(target: str, shape: Sequence[int]) -> List[int]:
    """The shape a source tensor takes in our layout (a linear weight is transposed; a Caffe2
    classifier stored as a ``[out, in, 1, 1, 1]`` convolution is first squeezed)."""
    shape = list(shape)
    if target in _LINEAR_WEIGHTS:
        while len(shape) > 2 and shape[-1] == 1:
            shape.pop()
        if len(shape) == 2:
            return [shape[1], shape[0]]
    return shape


def to_target_layout(target: str, array: np.ndarray) -> np.ndarray:
    """``array`` in our layout and dtype: float32, linear weights ``[in, out]``."""
    if target in _LINEAR_WEIGHTS:
        array = array.reshape(target_shape(target, array.shape)[::-1]).T
    if not np.issubdtype(array.dtype, np.floating):
        raise ConversionError(f"{target}: expected floating-point weights, got {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


@dataclass
class Conversion:
    """The result of :func:`convert_state_dict`: ``state`` in the model's order plus a report."""

    state: Dict[str, np.ndarray]
    unmapped: List[str] = field(default_factory=list)
    ignored: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    misshaped: List[str] = field(default_factory=list)
    duplicates: List[str] = field(default_factory=list)
    dropped_head: List[str] = field(default_factory=list)

    def problems(self) -> List[Tuple[str, List[str]]]:
        return [(title, items) for title, items in (
            ("source tensors with no place in the model", self.unmapped),
            ("model tensors missing from the source", self.missing),
            ("shape mismatches", self.misshaped),
            ("source tensors mapped twice", self.duplicates)) if items]


def _shape_of(value: Any) -> List[int]:
    return list(value.shape) if isinstance(value, LazyTensor) else list(np.shape(value))


def _listing(title: str, items: Sequence[str], limit: int = 25) -> str:
    shown = list(items[:limit]) + ([f"... and {len(items) - limit} more"]
                                   if len(items) > limit else [])
    return f"  {title} ({len(items)}):\n" + "\n".join(f"    {item}" for item in shown)


def _hints(conversion: Conversion, scheme: str, source_names: Sequence[str]) -> List[str]:
    hints = []
    if any("_conv_f2s" in m for m in conversion.misshaped):
        hints.append("the fusion convolutions differ: check MODEL.backbone.fusion_kernel_sz "
                     "(5 for 4x16 models, 7 for 8x8) and alpha")
    if any(m.startswith(HEAD_PREFIX) or " -> head." in m for m in conversion.misshaped):
        hints.append("the classifier differs: set MODEL.head.num_classes to the checkpoint's, "
                     "or pass --allow_missing to drop the head for fine-tuning")
    ptv_like = sum(n.startswith("blocks.") for n in source_names)
    if scheme == "pyslowfast" and ptv_like > len(source_names) // 2:
        hints.append("these names look like PyTorchVideo's: use --from pytorchvideo")
    if scheme == "pytorchvideo" and ptv_like < len(source_names) // 2:
        hints.append("these names do not look like PyTorchVideo's: try --from pyslowfast")
    return hints


def convert_state_dict(source: Mapping[str, Any], scheme: str,
                       model_shapes: Mapping[str, Sequence[int]],
                       allow_missing: bool = False, label: str = "checkpoint") -> Conversion:
    """Map ``source`` (name → LazyTensor/array) onto a model whose state dict has
    ``model_shapes`` (name → shape). Every shape is checked before any tensor is read.

    Raises :class:`ConversionError` listing every unmapped, missing, mis-shaped or duplicated
    name, unless ``allow_missing``: then unmapped and missing names are only reported and a
    classifier of another size is dropped (reported in ``dropped_head``). A mis-shaped backbone
    tensor is always an error: it means the config does not describe the checkpoint's network.
    """
    conversion = Conversion(state={})
    chosen: Dict[str, str] = {}
    misshaped_targets = set()
    for name, value in source.items():
        if is_ignored(name, scheme):
            conversion.ignored.append(name)
            continue
        target = map_name(name, scheme)
        if target is None or target not in model_shapes:
            conversion.unmapped.append(name if target is None else f"{name} -> {target}")
            continue
        if target in chosen:
            conversion.duplicates.append(f"{chosen[target]} and {name} -> {target}")
            continue
        got, want = target_shape(target, _shape_of(value)), list(model_shapes[target])
        if got != want:
            conversion.misshaped.append(f"{name} -> {target}: checkpoint {got} vs model {want}")
            misshaped_targets.add(target)
            continue
        chosen[target] = name
    conversion.missing = [t for t in model_shapes if t not in chosen and t not in misshaped_targets]
    head_misshaped = [m for m in conversion.misshaped if " -> head." in m]
    if allow_missing and head_misshaped and len(head_misshaped) == len(conversion.misshaped):
        conversion.dropped_head = head_misshaped
        conversion.misshaped = []
        for target in [t for t in chosen if t.startswith(HEAD_PREFIX)]:
            conversion.dropped_head.append(f"{chosen.pop(target)} -> {target}")
        conversion.missing = [t for t in conversion.missing if not t.startswith(HEAD_PREFIX)]
    fatal = conversion.misshaped or conversion.duplicates or (
        not allow_missing and (conversion.unmapped or conversion.missing))
    if fatal:
        lines = [f"{label} ({scheme} names) does not fit the model:"]
        lines += [_listing(title, items) for title, items in conversion.problems()]
        lines += [f"  hint: {hint}" for hint in _hints(conversion, scheme, list(source))]
        if not allow_missing and not (conversion.misshaped or conversion.duplicates):
            lines.append("  (pass --allow_missing to write the tensors that do fit)")
        raise ConversionError("\n".join(lines))
    for target in model_shapes:
        if target in chosen:
            array = materialize(source[chosen[target]], name=chosen[target])
            conversion.state[target] = to_target_layout(target, array)
    return conversion


def _strip_prefix(state: Dict[str, Any], prefix: str, before: str = "") -> Dict[str, Any]:
    if state and all(k.startswith(prefix + before) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def select_state_dict(obj: Any, fmt: str, source: str,
                      label: str = "checkpoint") -> Tuple[Dict[str, Any], str, List[str]]:
    """Find the weights in a file read by :func:`torch_format.read_checkpoint`.

    Returns ``(state, scheme, keys_used)``: PySlowFast keeps them under ``model_state`` (with
    ``epoch``/``optimizer_state``/``cfg`` beside), Caffe2 files under ``blobs``, PyTorchVideo hub
    files under ``model_state``; a bare state dict is taken whole. DDP ``module.`` prefixes (and
    the ``model.`` of PySlowFast's PyTorchVideo wrapper) are removed.
    """
    if source not in SOURCES:
        raise ConversionError(f"unknown source '{source}'; choose one of {list(SOURCES)}")
    if not isinstance(obj, dict):
        raise ConversionError(f"{label} holds a {type(obj).__name__}, not a dict of weights")
    if any(str(k).startswith("backbone.") and str(k).endswith(("._variance", "._mean"))
           for k in obj):
        raise ConversionError(f"{label} already uses this framework's names (a .pdparams "
                              f"file?): load it directly with -w")
    if fmt == "caffe2_pickle":
        if source != "pyslowfast":
            raise ConversionError(f"{label} is a Caffe2 pickle, which PySlowFast's model zoo "
                                  f"uses: convert it with --from pyslowfast")
        scheme = "caffe2"
        candidates = ("blobs",)
        is_tensor = lambda v: isinstance(v, np.ndarray)  # noqa: E731
    else:
        scheme = source
        candidates = ("model_state", "state_dict", "model_state_dict", "model")
        is_tensor = lambda v: isinstance(v, LazyTensor)  # noqa: E731
    used = next((k for k in candidates if isinstance(obj.get(k), dict)
                 and any(is_tensor(v) for v in obj[k].values())), None)
    if used is not None:
        state, keys = dict(obj[used]), [used]
    elif any(is_tensor(v) for v in obj.values()):
        state, keys = dict(obj), ["(whole file: a bare state dict)"]
    else:
        raise ConversionError(f"{label}: no weights found; top-level keys: {sorted(obj)[:20]} "
                              f"(expected one of {list(candidates)} or a bare state dict)")
    state = {str(k): v for k, v in state.items() if is_tensor(v)}
    state = _strip_prefix(state, "module.")
    if scheme == "pytorchvideo":
        state = _strip_prefix(state, "model.", before="blocks.")
    return state, scheme, keys
