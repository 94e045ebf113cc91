"""SlowFast ResNet backbone (Feichtenhofer et al., ICCV 2019) with PaddleVideo's layer names.

Layer and parameter names (``s1.pathway0_stem._conv``, ``s2.pathway1_res0.branch2.a_bn`` ...)
match PaddleVideo's released SlowFast checkpoints exactly, so they load without conversion.
Pathway 0 is the slow pathway, pathway 1 the fast one.
"""
from __future__ import annotations

from typing import List, Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..layers import SubBatchNorm3D
from ..registry import BACKBONES

# depth -> number of bottleneck blocks in res2..res5 (26: a shallow variant for small data)
_STAGE_DEPTHS = {26: (2, 2, 2, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
# temporal kernel of conv "a" in each stage, per pathway (slow, fast)
_TEMPORAL_KERNELS = ((1, 3), (1, 3), (3, 3), (3, 3))
_SPATIAL_STRIDES = (1, 2, 2, 2)


def _conv3d(dim_in: int, dim_out: int, kernel: Sequence[int], stride: Sequence[int],
            padding: Sequence[int]) -> nn.Conv3D:
    """Bias-free Conv3D with Kaiming-normal (fan-out) init, as in the SlowFast reference."""
    fan_out = dim_out * kernel[0] * kernel[1] * kernel[2]
    init = nn.initializer.KaimingNormal(fan_in=fan_out)
    return nn.Conv3D(dim_in, dim_out, kernel, stride=stride, padding=padding,
                     weight_attr=paddle.ParamAttr(initializer=init), bias_attr=False)


def make_norm(dim: int, norm_type: str = "batchnorm", num_splits: int = 1,
              init_weight: float = 1.0, epsilon: float = 1e-5, momentum: float = 0.9) -> nn.Layer:
    """BatchNorm3D (or SubBatchNorm3D) with no weight decay on its affine parameters."""
    no_decay = paddle.regularizer.L2Decay(0.0)
    weight_attr = paddle.ParamAttr(initializer=nn.initializer.Constant(init_weight),
                                   regularizer=no_decay)
    bias_attr = paddle.ParamAttr(initializer=nn.initializer.Constant(0.0), regularizer=no_decay)
    if norm_type == "sub_batchnorm" and num_splits > 1:
        return SubBatchNorm3D(dim, num_splits, momentum=momentum, epsilon=epsilon,
                              weight_attr=weight_attr, bias_attr=bias_attr)
    if norm_type not in ("batchnorm", "sub_batchnorm"):
        raise ValueError(f"bn_norm_type must be 'batchnorm' or 'sub_batchnorm', got {norm_type!r}")
    return nn.BatchNorm3D(dim, momentum=momentum, epsilon=epsilon, weight_attr=weight_attr,
                          bias_attr=bias_attr)


class VideoModelStem(nn.Layer):
    """Per pathway: conv [k_t,7,7] stride [1,2,2] → BN → ReLU → max-pool [1,3,3] stride [1,2,2]."""

    def __init__(self, dim_in: Sequence[int], dim_out: Sequence[int],
                 temporal_kernels: Sequence[int], norm: dict) -> None:
        super().__init__()
        for i, (c_in, c_out, k_t) in enumerate(zip(dim_in, dim_out, temporal_kernels)):
            stem = nn.Layer()
            stem._conv = _conv3d(c_in, c_out, [k_t, 7, 7], [1, 2, 2], [k_t // 2, 3, 3])
            stem._bn = make_norm(c_out, **norm)
            self.add_sublayer(f"pathway{i}_stem", stem)
        self.num_pathways = len(dim_in)

    def forward(self, xs: List[paddle.Tensor]) -> List[paddle.Tensor]:
        out = []
        for i, x in enumerate(xs):
            stem = getattr(self, f"pathway{i}_stem")
            x = F.relu(stem._bn(stem._conv(x)))
            out.append(F.max_pool3d(x, kernel_size=[1, 3, 3], stride=[1, 2, 2],
                                    padding=[0, 1, 1], data_format="NCDHW"))
        return out


class FuseFastToSlow(nn.Layer):
    """Lateral connection: fast [N,C,T,H,W] → conv [k,1,1] stride [alpha,1,1] → [N,2C,T/a,H,W],
    concatenated after the slow features on the channel axis."""

    def __init__(self, dim_in: int, channel_ratio: int, kernel: int, alpha: int,
                 norm: dict) -> None:
        super().__init__()
        self._conv_f2s = _conv3d(dim_in, dim_in * channel_ratio, [kernel, 1, 1], [alpha, 1, 1],
                                 [kernel // 2, 0, 0])
        self._bn = make_norm(dim_in * channel_ratio, **norm)

    def forward(self, xs: List[paddle.Tensor]) -> List[paddle.Tensor]:
        slow, fast = xs
        fuse = F.relu(self._bn(self._conv_f2s(fast)))
        return [paddle.concat([slow, fuse], axis=1), fast]


class BottleneckTransform(nn.Layer):
    """a: [t,1,1] → b: [1,3,3] with spatial stride → c: [1,1,1]; BN after each, ReLU after a, b.
    The last BN starts at weight 0 so each block starts as an identity."""

    def __init__(self, dim_in: int, dim_out: int, dim_inner: int, temporal_kernel: int,
                 stride: int, norm: dict) -> None:
        super().__init__()
        t = temporal_kernel
        self.a = _conv3d(dim_in, dim_inner, [t, 1, 1], [1, 1, 1], [t // 2, 0, 0])
        self.a_bn = make_norm(dim_inner, **norm)
        self.b = _conv3d(dim_inner, dim_inner, [1, 3, 3], [1, stride, stride], [0, 1, 1])
        self.b_bn = make_norm(dim_inner, **norm)
        self.c = _conv3d(dim_inner, dim_out, [1, 1, 1], [1, 1, 1], [0, 0, 0])
        self.c_bn = make_norm(dim_out, init_weight=0.0, **norm)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = F.relu(self.a_bn(self.a(x)))
        x = F.relu(self.b_bn(self.b(x)))
        return self.c_bn(self.c(x))


class ResBlock(nn.Layer):
    """Bottleneck block with a projection shortcut (``branch1``) when the shape changes."""

    def __init__(self, dim_in: int, dim_out: int, dim_inner: int, temporal_kernel: int,
                 stride: int, norm: dict) -> None:
        super().__init__()
        self.has_branch1 = dim_in != dim_out or stride != 1
        if self.has_branch1:
            self.branch1 = _conv3d(dim_in, dim_out, [1, 1, 1], [1, stride, stride], [0, 0, 0])
            self.branch1_bn = make_norm(dim_out, **norm)
        self.branch2 = BottleneckTransform(dim_in, dim_out, dim_inner, temporal_kernel, stride,
                                           norm)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        shortcut = self.branch1_bn(self.branch1(x)) if self.has_branch1 else x
        return F.relu(shortcut + self.branch2(x))


class ResStage(nn.Layer):
    """One ResNet stage for every pathway: ``pathway{p}_res{i}`` blocks."""

    def __init__(self, dim_in: Sequence[int], dim_out: Sequence[int],
                 dim_inner: Sequence[int], temporal_kernels: Sequence[int], stride: int,
                 num_blocks: int, norm: dict) -> None:
        super().__init__()
        self.num_blocks = num_blocks
        self.num_pathways = len(dim_in)
        for p in range(self.num_pathways):
            for i in range(num_blocks):
                block = ResBlock(dim_in[p] if i == 0 else dim_out[p], dim_out[p], dim_inner[p],
                                 temporal_kernels[p], stride if i == 0 else 1, norm)
                self.add_sublayer(f"pathway{p}_res{i}", block)

    def forward(self, xs: List[paddle.Tensor]) -> List[paddle.Tensor]:
        out = []
        for p, x in enumerate(xs):
            for i in range(self.num_blocks):
                x = getattr(self, f"pathway{p}_res{i}")(x)
            out.append(x)
        return out


@BACKBONES.register()
class ResNetSlowFast(nn.Layer):
    """SlowFast ResNet: ``[slow [N,3,T/alpha,H,W], fast [N,3,T,H,W]]`` →
    ``[slow [N,32W,T/alpha,H/32,W/32], fast [N,32W/beta,T,H/32,W/32]]`` with W = width_per_group.

    Args:
        alpha: frame-rate ratio between the fast and slow pathways.
        beta: channel ratio between the slow and fast pathways.
        depth: 50 (101, or 26 for a shallow variant with two blocks per stage).
        width_per_group: stem width of the slow pathway (64 for R50).
        fusion_kernel_sz: temporal kernel of the fast → slow lateral convolutions.
        fusion_conv_channel_ratio: channels of a lateral connection / fast channels.
        bn_norm_type: ``batchnorm`` or ``sub_batchnorm`` (statistics over ``bn_num_splits``
            sub-batches; used by multigrid training).
    """

    def __init__(self, alpha: int = 8, beta: int = 8, depth: int = 50, width_per_group: int = 64,
                 fusion_kernel_sz: int = 5, fusion_conv_channel_ratio: int = 2,
                 num_groups: int = 1, input_channel_num: Sequence[int] = (3, 3),
                 bn_norm_type: str = "batchnorm", bn_num_splits: int = 1,
                 pretrained: str | None = None) -> None:
        super().__init__()
        if depth not in _STAGE_DEPTHS:
            raise ValueError(f"ResNetSlowFast: depth must be one of {sorted(_STAGE_DEPTHS)}, "
                             f"got {depth}")
        if num_groups != 1:
            raise ValueError("ResNetSlowFast: only num_groups=1 (ResNet, not ResNeXt) is supported")
        if width_per_group % beta:
            raise ValueError(f"ResNetSlowFast: width_per_group ({width_per_group}) must be "
                             f"divisible by beta ({beta})")
        self.alpha, self.beta, self.depth = alpha, beta, depth
        self.pretrained = pretrained
        norm = {"norm_type": bn_norm_type, "num_splits": bn_num_splits}
        w, ratio = width_per_group, fusion_conv_channel_ratio

        self.s1 = VideoModelStem(input_channel_num, [w, w // beta], [1, 5], norm)
        self.s1_fuse = FuseFastToSlow(w // beta, ratio, fusion_kernel_sz, alpha, norm)
        dim_in = [w + w // beta * ratio, w // beta]
        for stage, num_blocks in enumerate(_STAGE_DEPTHS[depth]):
            scale = 2 ** stage  # inner width doubles each stage; output = 4 × inner
            dim_out = [4 * w * scale, 4 * w * scale // beta]
            dim_inner = [w * scale, w * scale // beta]
            self.add_sublayer(f"s{stage + 2}", ResStage(
                dim_in, dim_out, dim_inner, _TEMPORAL_KERNELS[stage], _SPATIAL_STRIDES[stage],
                num_blocks, norm))
            if stage < 3:
                self.add_sublayer(f"s{stage + 2}_fuse", FuseFastToSlow(
                    dim_out[1], ratio, fusion_kernel_sz, alpha, norm))
                dim_in = [dim_out[0] + dim_out[1] * ratio, dim_out[1]]
        self.out_channels = [32 * w, 32 * w // beta]

    def forward(self, inputs: List[paddle.Tensor]) -> List[paddle.Tensor]:
        x = self.s1_fuse(self.s1(list(inputs)))
        for stage in (2, 3, 4):
            x = getattr(self, f"s{stage}_fuse")(getattr(self, f"s{stage}")(x))
        return self.s5(x)
