"""Cross-entropy on logits, with optional label smoothing."""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..registry import LOSSES


@LOSSES.register()
class CrossEntropyLoss(nn.Layer):
    """``loss_weight × mean cross-entropy`` of logits ``[N, K]`` against int labels ``[N, 1]``.

    ``label_smoothing`` ε (0: off, PaddleVideo's behaviour) trains against ``1 - ε`` on the true
    class plus ``ε / K`` on every class, which keeps a small data set from being fitted with
    ever larger logits: ``loss = (1 - ε) · CE(logits, y) + ε · mean_k(-log softmax(logits)_k)``.
    """

    def __init__(self, loss_weight: float = 1.0, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must lie in [0, 1), got "
                             f"{label_smoothing}")
        self.loss_weight = loss_weight
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: paddle.Tensor, labels: paddle.Tensor) -> paddle.Tensor:
        labels = labels.reshape([-1, 1]).astype("int64")
        if self.label_smoothing == 0.0:
            return self.loss_weight * F.cross_entropy(logits, labels)
        # by hand: Paddle 3.3's label_smoothing has no CPU kernel for integer labels
        log_probs = F.log_softmax(logits.astype("float32"), axis=-1)
        true_class = -paddle.take_along_axis(log_probs, labels, axis=-1).mean()
        uniform = -log_probs.mean()
        eps = self.label_smoothing
        return self.loss_weight * ((1.0 - eps) * true_class + eps * uniform)
