"""Recognizer3D: backbone + head + loss behind one ``forward(batch, mode)``."""
from __future__ import annotations

from typing import Dict, Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ...mixing import batch_rng, draw_mix, mix_clips
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

    def __init__(self, backbone: nn.Layer, head: nn.Layer, loss: nn.Layer | None = None,
                 mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, mix_prob: float = 1.0,
                 mix_switch_prob: float = 0.5) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        if loss is None:
            from ...losses import CrossEntropyLoss

            loss = CrossEntropyLoss()
        self.loss_func = loss
        # mixup / cutmix of training batches (modeling/mixing.py); 0: off, as in PaddleVideo
        for name, value in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
            if value < 0:
                raise ValueError(f"Recognizer3D: {name} must be >= 0, got {value}")
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.mix_prob, self.mix_switch_prob = float(mix_prob), float(mix_switch_prob)

    def forward_net(self, inputs: Sequence[paddle.Tensor], probs: bool = False) -> paddle.Tensor:
        return self.head(self.backbone(list(inputs)), probs=probs)

    def forward(self, data_batch, mode: str = "infer"):
        if mode in ("train", "valid"):
            return self.train_step(data_batch)
        if mode in ("test", "infer"):
            return self.forward_net(data_batch[:2], probs=True)
        raise ValueError(f"Recognizer3D: mode must be one of {MODES}, got {mode!r}")

    def train_step(self, data_batch) -> Dict[str, paddle.Tensor]:
        labels = data_batch[2].reshape([-1, 1]).astype("int64")
        if self.training and (self.mixup_alpha > 0 or self.cutmix_alpha > 0):
            return self.mixed_train_step(list(data_batch[:2]), labels)
        logits = self.forward_net(data_batch[:2])
        return self.loss_metrics(logits, labels)

    def mixed_train_step(self, inputs, labels: paddle.Tensor) -> Dict[str, paddle.Tensor]:
        """Loss of a mixed batch: ``lam · loss(y) + (1 - lam) · loss(y[partner])``; top-1/top-5
        count each clip's own label."""
        rng = batch_rng()
        if rng.random() >= self.mix_prob:
            return self.loss_metrics(self.forward_net(inputs), labels)
        height, width = inputs[0].shape[-2:]
        draw = draw_mix(labels.shape[0], height, width, self.mixup_alpha, self.cutmix_alpha,
                        self.mix_switch_prob, rng)
        logits = self.forward_net(mix_clips(inputs, draw))
        partner_labels = paddle.index_select(labels, paddle.to_tensor(draw.partner), axis=0)
        outputs = self.loss_metrics(logits, labels)
        outputs["loss"] = draw.lam * outputs["loss"] + (1.0 - draw.lam) * self.loss_func(
            logits, partner_labels)
        return outputs

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
