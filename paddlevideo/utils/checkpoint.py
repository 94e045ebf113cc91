"""Save and load checkpoints: atomic writes of finite weights only, loads that run no code from
the file and say exactly what does not fit."""
from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import paddle
import paddle.nn as nn

from .fileio import write_atomic
from .safe_pickle import UnsafePickleError, load_paddle_pickle

HEAD_PREFIXES = ("head.",)


class CheckpointError(RuntimeError):
    """A checkpoint file that is missing, unreadable or does not fit the model."""


class NonFiniteCheckpointError(CheckpointError):
    """Weights holding NaN or infinity that were not written; ``keys`` names the entries."""

    def __init__(self, path: str, keys: List[str], shown: int = 10) -> None:
        listed = ", ".join(keys[:shown]) + (f" ... and {len(keys) - shown} more"
                                             if len(keys) > shown else "")
        super().__init__(f"not writing {path}: {len(keys)} entries hold NaN or infinity "
                         f"({listed})")
        self.path, self.keys = path, keys


def save(obj: Any, path: str) -> None:
    """``paddle.save`` to ``path`` through a temporary file, so a crash never leaves a torn file.

    A failed write (disk full, no permission) raises a
    :class:`~paddlevideo.utils.fileio.FileWriteError` naming ``path``.
    """
    write_atomic(path, lambda tmp: paddle.save(obj, tmp))


def _leaves(state: Any, prefix: str = "") -> Iterator[Tuple[str, Any]]:
    if isinstance(state, dict):
        for key, value in state.items():
            yield from _leaves(value, f"{prefix}{key}" if not prefix else f"{prefix}.{key}")
    else:
        yield prefix, state


def non_finite_entries(state: Dict[str, Any]) -> List[str]:
    """Keys of ``state`` whose floating-point tensor/array holds a NaN or an infinity (nested
    dicts give dotted keys), in ``state``'s order; parameters and BN buffers alike."""
    bad = []
    for key, value in _leaves(state):
        if isinstance(value, paddle.Tensor):
            if value.dtype in (paddle.float16, paddle.bfloat16, paddle.float32, paddle.float64) \
                    and not bool(paddle.isfinite(value).all()):
                bad.append(key)
        elif isinstance(value, (np.ndarray, np.floating, float)):
            array = np.asarray(value)
            if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
                bad.append(key)
    return bad


def save_finite_weights(state: Dict[str, Any], path: str) -> None:
    """:func:`save` a model state dict only when every entry is finite; otherwise raise
    :class:`NonFiniteCheckpointError` naming the entries, and leave ``path`` untouched.

    Every ``.pdparams`` a training run writes (epoch checkpoints, ``_best``) goes through this.
    """
    bad = non_finite_entries(state)
    if bad:
        raise NonFiniteCheckpointError(path, bad)
    save(state, path)


def load(path: str, keep_name_table: bool = False) -> Dict[str, Any]:
    """Read a ``.pdparams``/``.pdopt`` file as NumPy arrays (what ``paddle.load(path,
    return_numpy=True)`` returns) through a restricted unpickler: a file that names anything
    but arrays, scalars and plain containers is refused naming the file and the refused
    ``module.name``, without running it. A missing or corrupt file is a CheckpointError too.

    ``keep_name_table`` keeps the ``StructuredToParameterName@@`` entry (structured name →
    the writer's parameter name) of a state dict saved by ``paddle.save``."""
    if not os.path.isfile(path):
        raise CheckpointError(f"Checkpoint not found: {path}")
    try:
        with open(path, "rb") as f:
            state = load_paddle_pickle(f, keep_name_table)
    except UnsafePickleError as err:
        raise CheckpointError(f"Refusing to load {path}: {err} (a weights file holds arrays, "
                              f"never code)") from None
    except Exception as err:  # a torn or foreign file raises many kinds
        raise CheckpointError(f"Cannot read checkpoint {path}: {type(err).__name__}: "
                              f"{str(err)[:200]}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"Checkpoint {path} holds a {type(state).__name__}, not a dict")
    return state


def _shape(value: Any) -> List[int]:
    return list(np.shape(value.numpy() if hasattr(value, "numpy") else value))


def _as_array(value: Any) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def _cast_to_model_dtype(key: str, value: Any, target: paddle.Tensor) -> np.ndarray:
    """A float checkpoint entry in another precision (float64 from a converted checkpoint, float16
    from a half-precision export) is cast to the model's dtype; other dtype changes are refused."""
    array = _as_array(value)
    want = str(target.dtype).replace("paddle.", "")
    if array.dtype.name == want:
        return array
    if np.issubdtype(array.dtype, np.floating) and want in ("float16", "float32", "float64"):
        return array.astype(want)
    raise CheckpointError(f"{key}: checkpoint dtype {array.dtype.name} cannot be loaded into a "
                          f"{want} parameter")


def match_state_dict(model: nn.Layer, state: Dict[str, Any], skip_head: bool = False,
                     source: str = "checkpoint") -> Dict[str, Any]:
    """Check ``state`` against ``model.state_dict()``; return the entries to load.

    Raises a :class:`CheckpointError` that lists missing, unexpected and mis-shaped keys by name.
    Float entries in another precision are cast to the model's dtype.
    With ``skip_head``, classifier entries (``head.*``) are left out of the check and not loaded,
    so a checkpoint trained on another number of classes can start a fine-tuning run.
    """
    expected = model.state_dict()
    if skip_head:
        expected = {k: v for k, v in expected.items() if not k.startswith(HEAD_PREFIXES)}
        state = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIXES)}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = [f"{k}: checkpoint {_shape(state[k])} vs model {list(expected[k].shape)}"
                 for k in sorted(set(state) & set(expected))
                 if _shape(state[k]) != list(expected[k].shape)]
    if missing or unexpected or misshaped:
        lines = [f"{source} does not fit the model:"]
        for title, items in (("missing", missing), ("unexpected", unexpected),
                             ("shape mismatch", misshaped)):
            if items:
                shown = items[:20] + ([f"... and {len(items) - 20} more"] if len(items) > 20
                                      else [])
                lines.append(f"  {title} ({len(items)}): " + ", ".join(shown))
        if not skip_head and any(k.startswith(HEAD_PREFIXES) for k in missing + unexpected) \
                or any(m.startswith(HEAD_PREFIXES) for m in misshaped):
            lines.append("  (to fine-tune with another number of classes, load with "
                         "skip_head=True / -o skip_head=True)")
        raise CheckpointError("\n".join(lines))
    return {k: _cast_to_model_dtype(k, state[k], expected[k]) for k in expected}


def load_weights(model: nn.Layer, path_or_state: Any, skip_head: bool = False,
                 source: Optional[str] = None) -> None:
    """Load a checkpoint file (or state dict) into ``model``, refusing one that does not fit;
    ``source`` names a state dict's file in the error.

    Layers that keep state derived from their loaded buffers (sub-batch BN's per-split
    statistics) rebuild it in their ``state_loaded()`` method, called here after loading.
    """
    source = source or (path_or_state if isinstance(path_or_state, str) else "checkpoint")
    state = load(path_or_state) if isinstance(path_or_state, str) else path_or_state
    model.set_state_dict(match_state_dict(model, state, skip_head=skip_head, source=source))
    for layer in model.sublayers(include_self=True):
        state_loaded = getattr(layer, "state_loaded", None)
        if callable(state_loaded):
            state_loaded()


def load_pretrained(layer: nn.Layer, path: str, prefix: str = "") -> None:
    """Load ``path`` into a sub-layer; keys written for the whole model (``prefix`` + name)
    are accepted too, as PaddleVideo's ``pretrained:`` option does."""
    state = load(path)
    if prefix and any(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    load_weights(layer, state)
