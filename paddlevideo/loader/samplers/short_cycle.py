"""Distributed batch sampler for the multigrid short cycle: batch sizes cycle batch by batch.

Each batch is a list of ``(index, short_cycle_idx)`` tuples; ``short_cycle_idx`` 0 and 1 are the
two short (small-crop, large-batch) shapes and 2 the long-cycle shape, so the dataset can pick the
crop for the whole batch. Use it as a DataLoader's ``batch_sampler``; batches of different sizes
then need nothing special from the collate function.

Splitting among processes follows ``paddle.io.DistributedBatchSampler``: one permutation per epoch
seeded by ``seed + epoch`` (the same on every process), padded by repeating its first indices to a
multiple of the number of processes, then process ``r`` takes positions ``r, r + W, r + 2W, ...``.
Together the processes see every sample once per epoch, plus the padding.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle

from ...multigrid.schedule import EpochShape

__all__ = ["ShortCycleBatchSampler"]


class ShortCycleBatchSampler(paddle.io.Sampler):
    """Yield batches of ``(index, short_cycle_idx)`` whose sizes cycle through ``batch_sizes``.

    Args:
        dataset: the data set, or its length.
        batch_sizes: per-process batch sizes in turn, e.g. ``[32, 16, 8]``; the position in this
            list is the short-cycle index given with each sample.
        shuffle: a new permutation every epoch (see :meth:`set_epoch`); else data-set order.
        drop_last: drop each process's last, incomplete batch. Otherwise that batch is filled up to
            its full size with the first indices of the process's share, so every batch has one of
            the sizes in ``batch_sizes`` (sub-batch BN needs sizes divisible by its splits).
        num_replicas, rank: process count and rank; default from ``paddle.distributed``.
        seed: added to the epoch to seed the shuffle.
    """

    def __init__(self, dataset: Union[Sequence, int], batch_sizes: Sequence[int],
                 shuffle: bool = True, drop_last: bool = False,
                 num_replicas: Optional[int] = None, rank: Optional[int] = None,
                 seed: int = 0) -> None:
        self.num_samples_total = dataset if isinstance(dataset, int) else len(dataset)
        if not batch_sizes or any(int(b) < 1 for b in batch_sizes):
            raise ValueError(f"batch_sizes must be positive integers, got {list(batch_sizes)}")
        if num_replicas is None:
            num_replicas = paddle.distributed.get_world_size()
        if rank is None:
            rank = paddle.distributed.get_rank()
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside [0, {num_replicas})")
        if self.num_samples_total < 1:
            raise ValueError("ShortCycleBatchSampler needs a non-empty data set")
        self.batch_sizes = [int(b) for b in batch_sizes]
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.nranks = num_replicas
        self.local_rank = rank
        self.seed = seed
        self.epoch = 0
        # samples per process after padding to a multiple of the process count
        self.num_samples = -(-self.num_samples_total // num_replicas)

    @classmethod
    def from_epoch_shape(cls, dataset: Union[Sequence, int], shape: EpochShape,
                         **kwargs) -> ShortCycleBatchSampler:
        """A sampler with the short-cycle batch sizes of one epoch's shape."""
        return cls(dataset, shape.short_cycle_batch_sizes, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``; call it before iterating, on every process."""
        self.epoch = epoch

    def _rank_indices(self) -> List[int]:
        """This process's share of the (shuffled, padded) indices for the current epoch."""
        indices = np.arange(self.num_samples_total)
        if self.shuffle:
            indices = np.random.RandomState(self.seed + self.epoch).permutation(indices)
        padding = self.num_samples * self.nranks - self.num_samples_total
        if padding:
            indices = np.concatenate([indices, np.resize(indices, padding)])
        return indices[self.local_rank::self.nranks].tolist()

    def _batch_bounds(self) -> List[Tuple[int, int, int]]:
        """(start, end, short_cycle_idx) of each batch over ``num_samples`` positions."""
        bounds = []
        start, counter = 0, 0
        while start < self.num_samples:
            cycle_idx = counter % len(self.batch_sizes)
            end = start + self.batch_sizes[cycle_idx]
            if end > self.num_samples and self.drop_last:
                break
            bounds.append((start, end, cycle_idx))
            start, counter = end, counter + 1
        return bounds

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        indices = self._rank_indices()
        for start, end, cycle_idx in self._batch_bounds():
            batch = indices[start:end]
            if len(batch) < end - start:   # the last batch: fill it from the start
                batch += np.resize(indices, end - start - len(batch)).tolist()
            yield [(index, cycle_idx) for index in batch]

    def __len__(self) -> int:
        return len(self._batch_bounds())
