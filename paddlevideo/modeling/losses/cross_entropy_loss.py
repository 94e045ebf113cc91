"""Cross-entropy on logits."""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..registry import LOSSES


@LOSSES.register()
class CrossEntropyLoss(nn.Layer):
    """``loss_weight × mean cross-entropy`` of logits ``[N, K]`` against int labels ``[N, 1]``."""

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, logits: paddle.Tensor, labels: paddle.Tensor) -> paddle.Tensor:
        labels = labels.reshape([-1, 1]).astype("int64")
        return self.loss_weight * F.cross_entropy(logits, labels)
