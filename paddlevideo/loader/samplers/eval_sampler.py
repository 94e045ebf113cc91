"""Batch sampler for validation and testing: every sample exactly once across processes."""
from __future__ import annotations

import math
from typing import Iterator, List, Optional

from ...utils.dist import get_rank, get_world_size


class DistributedEvalBatchSampler:
    """Splits ``range(dataset_size)`` into contiguous, non-overlapping shards, one per process,
    in order and without padding (``paddle.io.DistributedBatchSampler`` pads by repeating
    samples, which would count them twice in an evaluation). Shards may differ in length by one
    batch, so evaluation must not run collectives per batch; results are reduced at the end.
    Contiguous shards keep the views of one video together on (at most two) processes.
    """

    def __init__(self, dataset_size: int, batch_size: int, rank: Optional[int] = None,
                 world_size: Optional[int] = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.rank = get_rank() if rank is None else rank
        self.world_size = get_world_size() if world_size is None else world_size
        per_rank = math.ceil(dataset_size / self.world_size)
        self.start = min(self.rank * per_rank, dataset_size)
        self.stop = min(self.start + per_rank, dataset_size)
        self.drop_last = False
        self.shuffle = False

    def set_epoch(self, epoch: int) -> None:
        """Nothing to reshuffle; present so loaders can treat all samplers alike."""

    def __iter__(self) -> Iterator[List[int]]:
        for begin in range(self.start, self.stop, self.batch_size):
            yield list(range(begin, min(begin + self.batch_size, self.stop)))

    def __len__(self) -> int:
        return math.ceil((self.stop - self.start) / self.batch_size)
