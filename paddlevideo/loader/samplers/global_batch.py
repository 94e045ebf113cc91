"""Training batches that depend on the global batch, not on how it is split among processes.

An epoch is one permutation of the data set, seeded by ``(seed, epoch)`` alone. Update ``t``
trains on its slice ``perm[t·G : (t+1)·G]`` with ``G = batch_size × processes × accumulation``;
within it, micro-step ``m`` of rank ``r`` takes the ``batch_size`` samples starting at
``(m·processes + r)·batch_size``. So 1 × 4 processes, 2 nodes × 2 and 1 × 2 with accumulation 2 see
the same samples in every update, and a rank's shard is a function of the seed, the epoch and its
global rank only. Each sample also gets an id, its position in the epoch's permutation, from
which the data loader seeds that sample's augmentations: the draws do not depend on the topology,
on the number of loader workers, or on where a resumed epoch starts.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Sequence, Union

import numpy as np

from ...utils.dist import get_rank, get_world_size


class GlobalBatchSampler:
    """Yield this process's micro-batches (lists of sample indices), full batches only.

    Args:
        dataset: the data set, or its length.
        batch_size: samples per process per iteration.
        accumulation: iterations (micro-steps) per optimizer update.
        shuffle: a new permutation every epoch (:meth:`set_epoch`); else data-set order.
        num_replicas, rank: process count and global rank (default: ``paddle.distributed``).
        seed: mixed with the epoch into the permutation's seed.
    """

    def __init__(self, dataset: Union[Sequence, int], batch_size: int, accumulation: int = 1,
                 shuffle: bool = True, num_replicas: Optional[int] = None,
                 rank: Optional[int] = None, seed: int = 0) -> None:
        self.num_samples_total = dataset if isinstance(dataset, int) else len(dataset)
        if batch_size < 1 or accumulation < 1:
            raise ValueError(f"batch_size and accumulation must be >= 1, got {batch_size} and "
                             f"{accumulation}")
        self.batch_size, self.accumulation = int(batch_size), int(accumulation)
        self.nranks = get_world_size() if num_replicas is None else int(num_replicas)
        self.local_rank = get_rank() if rank is None else int(rank)
        if not 0 <= self.local_rank < self.nranks:
            raise ValueError(f"rank {self.local_rank} is outside [0, {self.nranks})")
        self.shuffle, self.seed, self.epoch = shuffle, int(seed), 0
        self.global_batch = self.batch_size * self.nranks * self.accumulation
        self.drop_last = True

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``; call it before iterating, on every process."""
        self.epoch = int(epoch)

    def permutation(self) -> np.ndarray:
        indices = np.arange(self.num_samples_total)
        if not self.shuffle:
            return indices
        return np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch])
                                     ).permutation(indices)

    @property
    def num_updates(self) -> int:
        return self.num_samples_total // self.global_batch

    def _start(self, iteration: int) -> int:
        """Position in the permutation of this rank's micro-batch ``iteration``."""
        update, micro = divmod(iteration, self.accumulation)
        return update * self.global_batch + (micro * self.nranks + self.local_rank) * \
            self.batch_size

    def sample_ids(self, iteration: int) -> List[int]:
        """Epoch-wide ids of the samples of micro-batch ``iteration`` (their permutation
        positions): the same samples get the same ids on any topology."""
        start = self._start(iteration)
        return list(range(start, start + self.batch_size))

    def __iter__(self) -> Iterator[List[int]]:
        perm = self.permutation()
        for iteration in range(len(self)):
            start = self._start(iteration)
            yield perm[start:start + self.batch_size].tolist()

    def __len__(self) -> int:
        return self.num_updates * self.accumulation
