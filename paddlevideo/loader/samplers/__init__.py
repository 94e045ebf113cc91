"""Batch samplers: each evaluation sample once across processes; the multigrid short cycle."""
from .eval_sampler import DistributedEvalBatchSampler
from .short_cycle import ShortCycleBatchSampler

__all__ = ["DistributedEvalBatchSampler", "ShortCycleBatchSampler"]
