"""Build pipelines, datasets and data loaders from config sections (PaddleVideo's entry points)."""
from __future__ import annotations

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


class _WorkerSeeder:
    """``worker_init_fn`` that seeds a worker's pipeline stream from (seed, epoch, rank, id).

    Workers are started per epoch (or pickled at start), so they see the epoch current then.
    """

    def __init__(self, seed: int, rank: int) -> None:
        self.seed, self.rank, self.epoch = int(seed), int(rank), 0

    def __call__(self, worker_id: int) -> None:
        seed_pipeline_rng((self.seed, self.epoch, self.rank, int(worker_id)))


class VideoDataLoader:
    """A ``paddle.io.DataLoader`` over a distributed batch sampler with seeded workers.

    Iterating yields lists of paddle Tensors (``[slow, fast, label]``, plus the sample index in
    test mode). Each iteration is one epoch; :meth:`set_epoch` picks the epoch explicitly,
    otherwise it advances by one per iteration. The epoch reshuffles the batch sampler and
    re-seeds every worker (``num_workers=0``: the main process) from ``(seed, epoch, rank,
    worker_id)``.
    """

    def __init__(self, dataset: Any, batch_sampler: Any, num_workers: int, places: Any,
                 seed: int, use_shared_memory: bool, **kwargs: Any) -> None:
        self.dataset, self.batch_sampler, self.num_workers = dataset, batch_sampler, num_workers
        self._seeder = _WorkerSeeder(seed, _rank_and_world()[0])
        self._loader = DataLoader(dataset, batch_sampler=batch_sampler, places=places,
                                  num_workers=num_workers, use_shared_memory=use_shared_memory,
                                  return_list=True, worker_init_fn=self._seeder, **kwargs)

    @property
    def epoch(self) -> int:
        return self._seeder.epoch

    def set_epoch(self, epoch: int) -> None:
        self._seeder.epoch = int(epoch)
        if hasattr(self.batch_sampler, "set_epoch"):
            # the batch samplers shuffle with a generator seeded by their epoch alone; offsetting
            # it by the seed makes --seed change the data order too
            self.batch_sampler.set_epoch((self._seeder.seed * 1000 + int(epoch)) % 2**31)

    def __len__(self) -> int:
        return len(self._loader)

    def __iter__(self) -> Iterator[List[paddle.Tensor]]:
        if self.num_workers == 0:
            self._seeder(0)
            iterator = self._iter_in_process()
        else:
            # created here, not lazily, so the workers start with this epoch's seeds
            iterator = _name_worker_failures(iter(self._loader))
        # The next pass is the next epoch unless set_epoch says otherwise (the batch sampler
        # advances its own epoch the same way).
        self._seeder.epoch += 1
        return iterator


    def _iter_in_process(self) -> Iterator[List[paddle.Tensor]]:
        """Batches read in this process. Paddle's single-process reader runs the dataset in a
        thread whose exceptions leave the reader blocked; here they reach the caller as raised."""
        for indices in self.batch_sampler:
            samples = [self.dataset[i] for i in indices]
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
