"""Fine-tuning weights: every backbone weight of a checkpoint, and a fresh classifier when the
checkpoint's does not fit this run's number of classes (Kinetics-400 weights into a 6-class run).

``skip_head`` stays the explicit switch (the head is never loaded); without it the head is left
out only when its class count differs or the checkpoint has none, and one line says so. Every
other difference (another depth, 8x8 weights into a 4x16 model) stays an error naming the keys.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import paddle.nn as nn

from ..utils.checkpoint import HEAD_PREFIXES, load, load_weights

HEAD_WEIGHT = "head.projection.weight"  # Linear weight [features, num_classes]


def checkpoint_classes(state: Dict[str, Any]) -> Optional[int]:
    """The number of classes of a checkpoint's classifier; None when it has none."""
    weight = state.get(HEAD_WEIGHT)
    if weight is None:
        return None
    shape = np.shape(weight.numpy() if hasattr(weight, "numpy") else weight)
    return int(shape[-1]) if len(shape) == 2 else None


def head_decision(model: nn.Layer, state: Dict[str, Any]) -> Optional[str]:
    """The log line when the checkpoint's head must be left out, else None (it fits)."""
    expected = model.state_dict().get(HEAD_WEIGHT)
    if expected is None:
        return None
    wanted = int(expected.shape[-1])
    has_head = any(k.startswith(HEAD_PREFIXES) for k in state)
    found = checkpoint_classes(state)
    if not has_head:
        return f"head: checkpoint has no classifier, this run {wanted} classes: head " \
               f"initialised fresh"
    if found is not None and found != wanted:
        return f"head: checkpoint has {found} classes, this run {wanted}: head initialised fresh"
    return None


def load_finetune_weights(model: nn.Layer, path_or_state: Any, skip_head: bool = False,
                          source: Optional[str] = None) -> Optional[str]:
    """Load a checkpoint (file or state dict) to start training from; returns the line to log
    when the head was initialised fresh (None when every weight was loaded). Raises
    :class:`~paddlevideo.utils.checkpoint.CheckpointError` naming the keys on any other
    mismatch."""
    source = source or (path_or_state if isinstance(path_or_state, str) else "checkpoint")
    state = load(path_or_state) if isinstance(path_or_state, str) else path_or_state
    message = None if skip_head else head_decision(model, state)
    if skip_head:
        message = "head: skip_head=True: head initialised fresh"
    load_weights(model, state, skip_head=skip_head or message is not None, source=source)
    return message
