"""Batch samplers: topology-independent training batches, each evaluation sample once across
processes, the multigrid short cycle."""
from .eval_sampler import DistributedEvalBatchSampler
from .global_batch import GlobalBatchSampler
from .short_cycle import ShortCycleBatchSampler

__all__ = ["DistributedEvalBatchSampler", "GlobalBatchSampler", "ShortCycleBatchSampler"]
