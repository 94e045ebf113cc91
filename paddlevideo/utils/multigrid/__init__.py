"""Multigrid training: sub-batch BN, the long/short-cycle schedule and its sampler."""
from .sub_batchnorm import SubBatchNorm3D, aggregate_sub_bn_stats, reset_sub_bn_stats

__all__ = ["SubBatchNorm3D", "aggregate_sub_bn_stats", "reset_sub_bn_stats"]
