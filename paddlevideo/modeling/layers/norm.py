"""What the static-program wrappers of a backbone need to know about its normalisation layers."""
from __future__ import annotations

from typing import Tuple

import paddle.nn as nn


def norm_momenta(layer: nn.Layer) -> Tuple[float, ...]:
    """The running-statistics momentum of every BN-like sublayer, in order. A traced program
    keeps the values it was traced with; precise BN sets them to 0 to read batch statistics, so
    a wrapper compares this with its traced value to know when to run in dygraph instead."""
    return tuple(float(sub._momentum) for sub in layer.sublayers() if hasattr(sub, "_momentum"))
