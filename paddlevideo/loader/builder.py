"""Build pipelines, datasets and data loaders from config sections (PaddleVideo's entry points)."""
from __future__ import annotations

import ctypes
import gc
import os
import signal
from typing import Any, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import paddle
from paddle.io import DataLoader, DistributedBatchSampler

from ..utils.config import ConfigError, to_plain
from ..utils.registry import build_from_config
from .pipelines.compose import Compose
from .pipelines.random_state import seed_pipeline_rng
from .registry import DATASETS


def build_pipeline(cfg: Mapping[str, Any]) -> Compose:
    """``cfg.PIPELINE.<mode>`` (``decode_sampler`` + ``transform`` list) → a callable pipeline."""
    return Compose(to_plain(cfg))


def build_dataset(cfg: Tuple[Mapping[str, Any], Mapping[str, Any]]) -> Any:
    """``(cfg.DATASET.<mode>, cfg.PIPELINE.<mode>)`` → the dataset named by ``format``."""
    dataset_cfg, pipeline_cfg = cfg
    dataset_cfg = dict(to_plain(dataset_cfg))
    if "format" not in dataset_cfg:
        raise ConfigError(f"DATASET section needs a 'format' key (e.g. SFVideoDataset), got "
                          f"{sorted(dataset_cfg)}", key="format")
    return build_from_config(dataset_cfg, DATASETS, key="format",
                             pipeline=build_pipeline(pipeline_cfg))


def _rank_and_world() -> Tuple[int, int]:
    return paddle.distributed.get_rank(), max(paddle.distributed.get_world_size(), 1)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(signum: int = signal.SIGKILL) -> bool:
    """Ask the kernel (Linux ``PR_SET_PDEATHSIG``) to send ``signum`` to this process when its
    parent ends, and end now if the parent is already gone. Call it first in a loader worker's
    ``worker_init_fn``. Returns False where the call does not exist (not Linux)."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        installed = libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
    if installed and os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signum)
    return installed


def _worker_started(worker_id: int) -> None:
    """A loader worker ends with its trainer, even one killed outright (``kill -9``)."""
    die_with_parent()


class _SeededItems:
    """The data set as the loader reads it: item ``(key, sample_seed)`` seeds the pipeline stream
    from ``sample_seed``, then returns ``dataset[key]``. Every sample's random choices therefore
    depend on its seed alone, not on the worker that reads it or the samples read before."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: Tuple[Any, Tuple[int, ...]]) -> Any:
        key, sample_seed = item
        seed_pipeline_rng(sample_seed)
        return self.dataset[key]


class _SeededBatches:
    """The batch sampler as the loader reads it: each batch's keys paired with their seeds.

    A sample's seed is ``(seed, epoch, id)`` where the sampler gives ids (``sample_ids(i)`` of
    :class:`GlobalBatchSampler`: the same on every topology), else ``(seed, epoch, rank, i, j)``
    for item ``j`` of batch ``i``. The first ``loader.start_batch`` batches are skipped without
    being read, with the same seeds for the rest, so a resumed epoch draws what it would have.
    """

    def __init__(self, loader: VideoDataLoader) -> None:
        self.loader = loader

    def __iter__(self) -> Iterator[List[Tuple[Any, Tuple[int, ...]]]]:
        # the epoch and start are read now, when the pass begins, not at the first batch
        loader = self.loader
        return self._batches(loader.batch_sampler, loader.start_batch,
                             (loader.seed, loader.epoch), loader.rank)

    @staticmethod
    def _batches(sampler: Any, start: int, base: Tuple[int, int], rank: int
                 ) -> Iterator[List[Tuple[Any, Tuple[int, ...]]]]:
        ids = getattr(sampler, "sample_ids", None)
        for i, batch in enumerate(sampler):
            if i < start:
                continue
            keys = ids(i) if ids else [(rank, i, j) for j in range(len(batch))]
            yield [(item, base + (tuple(k) if isinstance(k, tuple) else (int(k),)))
                   for item, k in zip(batch, keys)]

    def __len__(self) -> int:
        return max(len(self.loader.batch_sampler) - self.loader.start_batch, 0)


class VideoDataLoader:
    """A ``paddle.io.DataLoader`` over a batch sampler with per-sample seeded augmentations.

    Iterating yields lists of paddle Tensors (``[slow, fast, label]``, plus the sample index in
    test mode). Each iteration is one epoch; :meth:`set_epoch` picks the epoch explicitly,
    otherwise it advances by one per iteration. The epoch reshuffles the batch sampler and changes
    every sample's seed (see :class:`_SeededBatches`). :meth:`start_at` makes the next pass begin
    at a later batch (resuming inside an epoch).
    """

    def __init__(self, dataset: Any, batch_sampler: Any, num_workers: int, places: Any,
                 seed: int, use_shared_memory: bool, **kwargs: Any) -> None:
        self.dataset, self.batch_sampler, self.num_workers = dataset, batch_sampler, num_workers
        self.seed, self.rank, self.epoch, self.start_batch = int(seed), _rank_and_world()[0], 0, 0
        self._loader = DataLoader(_SeededItems(dataset), batch_sampler=_SeededBatches(self),
                                  places=places, num_workers=num_workers,
                                  use_shared_memory=use_shared_memory, return_list=True,
                                  worker_init_fn=_worker_started, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.batch_sampler, "set_epoch"):
            # the batch samplers shuffle with a generator seeded by their epoch alone; offsetting
            # it by the seed makes --seed change the data order too
            self.batch_sampler.set_epoch((self.seed * 1000 + int(epoch)) % 2**31)

    def start_at(self, batch: int) -> None:
        """Begin the next pass at batch ``batch`` of the epoch (0: the whole epoch)."""
        self.start_batch = int(batch)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[List[paddle.Tensor]]:
        if self.num_workers == 0:
            iterator = self._iter_in_process(iter(_SeededBatches(self)))
        else:
            # An unreachable object still alive in a reference cycle can hold a video decoder
            # with frame threads (FFmpeg's); a worker forked now inherits it without the threads
            # and hangs when it frees it. Collected here, before the fork, it is gone.
            gc.collect()
            # created here, not lazily, so the workers see this epoch's sampler and seeds
            iterator = _name_worker_failures(iter(self._loader))
        # The next pass is the next epoch unless set_epoch says otherwise, and whole.
        self.epoch += 1
        self.start_batch = 0
        return iterator

    def _iter_in_process(self, batches: Iterator[List[Any]]) -> Iterator[List[paddle.Tensor]]:
        """Batches read in this process. Paddle's single-process reader runs the dataset in a
        thread whose exceptions leave the reader blocked; here they reach the caller as raised."""
        items = _SeededItems(self.dataset)
        for batch in batches:
            samples = [items[item] for item in batch]
            yield [paddle.to_tensor(np.stack(field)) for field in zip(*samples)]


def _name_worker_failures(iterator: Iterator[List[paddle.Tensor]]
                          ) -> Iterator[List[paddle.Tensor]]:
    """Paddle reports a worker's exception as a generic "Blocking queue is killed" error after
    the worker has printed the real one; say where to look."""
    try:
        yield from iterator
    except SystemError as err:
        if "Blocking queue is killed" not in str(err):
            raise
        raise RuntimeError("a data loader worker failed; its error (for example a BadVideoError "
                           "naming the videos) is printed above") from err


def build_dataloader(dataset: Any, batch_size: int, num_workers: int, places: Any = None,
                     shuffle: bool = True, drop_last: bool = True, seed: int = 1234,
                     use_shared_memory: bool = True, batch_sampler: Optional[Any] = None,
                     **kwargs: Any) -> VideoDataLoader:
    """Data loader over ``dataset``; this process reads its shard
    (``paddle.io.DistributedBatchSampler`` with rank/world from ``paddle.distributed``) unless a
    ``batch_sampler`` (e.g. the multigrid short-cycle sampler) is given.

    ``kwargs`` go to ``paddle.io.DataLoader`` (``timeout``, ``prefetch_factor``...); PaddleVideo's
    ``multigrid``/``collate_fn_cfg`` keys are accepted and ignored.
    """
    for ignored in ("multigrid", "collate_fn_cfg"):
        kwargs.pop(ignored, None)
    if batch_sampler is None:
        rank, world = _rank_and_world()
        batch_sampler = DistributedBatchSampler(dataset, batch_size=batch_size,
                                                num_replicas=world, rank=rank, shuffle=shuffle,
                                                drop_last=drop_last)
    return VideoDataLoader(dataset, batch_sampler, num_workers, places, seed, use_shared_memory,
                           **kwargs)


__all__: Sequence[str] = ("build_pipeline", "build_dataset", "build_dataloader",
                          "VideoDataLoader")
