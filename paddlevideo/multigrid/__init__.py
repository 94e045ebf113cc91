"""The multigrid schedule (long and short cycles), read by the sampler and the training task."""
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

__all__ = ["EpochShape", "LRSettings", "LongCycleShape", "MultigridSchedule",
           "MultigridSettings", "Phase", "build_multigrid_schedule", "read_multigrid_settings"]
