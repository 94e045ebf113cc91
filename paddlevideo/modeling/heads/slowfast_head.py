"""SlowFast classification head: per-pathway average pool → concat → dropout → linear."""
from __future__ import annotations

from typing import List

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..registry import HEADS


@HEADS.register()
class SlowFastHead(nn.Layer):
    """``[slow [N,Cs,Ts,h,w], fast [N,Cf,Tf,h,w]]`` → scores ``[N, num_classes]``.

    Each pathway is average-pooled with a kernel that covers a training clip's feature map
    (``[num_frames/alpha, crop/32, crop/32]`` slow, ``[num_frames, crop/32, crop/32]`` fast,
    stride 1), so a larger test crop leaves several positions: the classifier runs on each
    (fully-convolutional testing). ``multigrid_short`` pools adaptively to one position instead,
    as clip shapes change during multigrid training.

    ``forward(x)`` returns logits averaged over positions; ``forward(x, probs=True)`` returns the
    softmax over classes averaged over positions (rows sum to 1).
    """

    def __init__(self, width_per_group: int = 64, alpha: int = 8, beta: int = 8,
                 num_classes: int = 400, num_frames: int = 32, crop_size: int = 224,
                 dropout_rate: float = 0.5, multigrid_short: bool = False,
                 fusion_conv_channel_ratio: int = 2) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.multigrid_short = multigrid_short
        self.dim_in = [32 * width_per_group, 32 * width_per_group // beta]
        spatial = crop_size // 32
        self.pool_size = [[num_frames // alpha, spatial, spatial], [num_frames, spatial, spatial]]
        self.dropout = nn.Dropout(p=dropout_rate) if dropout_rate > 0 else None
        self.projection = nn.Linear(
            sum(self.dim_in), num_classes,
            weight_attr=paddle.ParamAttr(initializer=nn.initializer.Normal(0.0, 0.01)),
            bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)))

    def _pool(self, x: paddle.Tensor, pathway: int) -> paddle.Tensor:
        if self.multigrid_short:
            return F.adaptive_avg_pool3d(x, 1)
        kernel = [min(k, s) for k, s in zip(self.pool_size[pathway], x.shape[2:])]
        return F.avg_pool3d(x, kernel_size=kernel, stride=1)

    def forward(self, inputs: List[paddle.Tensor], probs: bool = False) -> paddle.Tensor:
        pooled = [self._pool(x, p) for p, x in enumerate(inputs)]
        x = paddle.concat(pooled, axis=1)                # [N, C, t, h, w]
        x = paddle.transpose(x, [0, 2, 3, 4, 1])         # channels last for the linear layer
        if self.dropout is not None:
            x = self.dropout(x)
        x = self.projection(x)                           # [N, t, h, w, num_classes]
        if probs:
            x = F.softmax(x, axis=-1)
        return paddle.mean(x.reshape([x.shape[0], -1, self.num_classes]), axis=1)
