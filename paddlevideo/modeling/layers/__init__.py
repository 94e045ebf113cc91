"""Layers the backbones are built from that Paddle does not provide."""
from .norm import norm_momenta
from .sub_batchnorm import SubBatchNorm3D, aggregate_sub_bn_stats, reset_sub_bn_stats

__all__ = ["SubBatchNorm3D", "aggregate_sub_bn_stats", "norm_momenta", "reset_sub_bn_stats"]
