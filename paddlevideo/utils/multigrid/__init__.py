"""Multigrid training: sub-batch BN, the long/short-cycle schedule and its sampler."""
from .schedule import (
    EpochShape,
    LongCycleShape,
    LRSettings,
    MultigridSchedule,
    MultigridSettings,
    Phase,
    build_multigrid_schedule,
    read_multigrid_settings,
)
from .short_cycle_sampler import ShortCycleBatchSampler
from .sub_batchnorm import SubBatchNorm3D, aggregate_sub_bn_stats, reset_sub_bn_stats

__all__ = ["EpochShape", "LRSettings", "LongCycleShape", "MultigridSchedule",
           "MultigridSettings", "Phase", "ShortCycleBatchSampler", "SubBatchNorm3D",
           "aggregate_sub_bn_stats", "build_multigrid_schedule", "read_multigrid_settings",
           "reset_sub_bn_stats"]
