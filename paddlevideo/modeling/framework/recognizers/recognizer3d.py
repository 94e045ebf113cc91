"""Recognizer3D: backbone + head + loss behind one ``forward(batch, mode)``."""
from __future__ import annotations

from typing import Dict, Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ...registry import RECOGNIZERS

MODES = ("train", "valid", "test", "infer")


@RECOGNIZERS.register()
class Recognizer3D(nn.Layer):
    """A two-pathway video classifier.

    ``forward(batch, mode)``:

    - ``train`` / ``valid``: ``batch = (slow [N,3,Ts,H,W], fast [N,3,Tf,H,W], label [N,1], ...)``
      → ``{'loss', 'top1', 'top5'}`` with the loss on logits (call ``eval()`` for ``valid``);
    - ``test``: same batch (label and clip index ignored) → class probabilities ``[N, K]``;
    - ``infer``: ``batch = [slow, fast]`` → class probabilities ``[N, K]``.
    """

    def __init__(self, backbone: nn.Layer, head: nn.Layer, loss: nn.Layer | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        if loss is None:
            from ...losses import CrossEntropyLoss

            loss = CrossEntropyLoss()
        self.loss_func = loss

    def forward_net(self, inputs: Sequence[paddle.Tensor], probs: bool = False) -> paddle.Tensor:
        return self.head(self.backbone(list(inputs)), probs=probs)

    def forward(self, data_batch, mode: str = "infer"):
        if mode in ("train", "valid"):
            return self.train_step(data_batch)
        if mode in ("test", "infer"):
            return self.forward_net(data_batch[:2], probs=True)
        raise ValueError(f"Recognizer3D: mode must be one of {MODES}, got {mode!r}")

    def train_step(self, data_batch) -> Dict[str, paddle.Tensor]:
        logits = self.forward_net(data_batch[:2])
        labels = data_batch[2].reshape([-1, 1]).astype("int64")
        return self.loss_metrics(logits, labels)

    def loss_metrics(self, logits: paddle.Tensor,
                     labels: paddle.Tensor) -> Dict[str, paddle.Tensor]:
        """Loss and top-1/top-5 accuracy of ``logits [N,K]`` against ``labels [N,1]``."""
        k = min(5, logits.shape[-1])
        probs = F.softmax(logits, axis=-1)
        return {
            "loss": self.loss_func(logits, labels),
            "top1": paddle.metric.accuracy(probs, labels, k=1),
            "top5": paddle.metric.accuracy(probs, labels, k=k),
        }

    # PaddleVideo's entry points, kept so existing scripts keep working.
    def val_step(self, data_batch) -> Dict[str, paddle.Tensor]:
        return self.train_step(data_batch)

    def test_step(self, data_batch) -> paddle.Tensor:
        return self.forward(data_batch, mode="test")

    def infer_step(self, data_batch) -> paddle.Tensor:
        return self.forward(data_batch, mode="infer")
