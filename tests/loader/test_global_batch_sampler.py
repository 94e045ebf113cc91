"""GlobalBatchSampler: the same samples per update on any topology; seeded per sample."""
import numpy as np
import pytest

from paddlevideo.loader import build_dataloader, build_dataset
from paddlevideo.loader.samplers import GlobalBatchSampler
from tests.conftest import train_pipeline, write_video


def _updates(n, batch, world, accum, epoch=0):
    """{update: set of samples} over all ranks and micro-steps, plus each rank's shard."""
    per_update, shards = {}, {}
    for rank in range(world):
        sampler = GlobalBatchSampler(n, batch, accum, num_replicas=world, rank=rank, seed=3)
        sampler.set_epoch(epoch)
        batches = list(sampler)
        shards[rank] = batches
        for i, indices in enumerate(batches):
            per_update.setdefault(i // accum, []).extend(indices)
            assert sampler.sample_ids(i) == list(range(
                sampler._start(i), sampler._start(i) + batch))
    return {u: sorted(v) for u, v in per_update.items()}, shards


def test_updates_hold_the_same_samples_on_every_topology():
    four, _ = _updates(50, batch=2, world=4, accum=1)
    two_accum, _ = _updates(50, batch=2, world=2, accum=2)
    one, _ = _updates(50, batch=2, world=1, accum=4)
    assert four == two_accum == one
    assert len(four) == 50 // 8 and all(len(v) == 8 for v in four.values())
    flat = [i for v in four.values() for i in v]
    assert len(set(flat)) == len(flat)  # no sample twice in an epoch


def test_shards_depend_on_seed_epoch_and_rank_only():
    _, a = _updates(40, batch=2, world=2, accum=1, epoch=1)
    _, b = _updates(40, batch=2, world=2, accum=1, epoch=1)
    _, c = _updates(40, batch=2, world=2, accum=1, epoch=2)
    assert a == b and a != c
    assert a[0] != a[1]


def test_rank_outside_the_world_is_refused():
    with pytest.raises(ValueError, match="rank 2"):
        GlobalBatchSampler(10, 2, num_replicas=2, rank=2)


@pytest.fixture(scope="module")
def noise_dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("global")
    frames = np.random.default_rng(0).integers(0, 256, (40, 48, 64, 3), dtype=np.uint8)
    video = write_video(folder / "noise.mp4", frames)
    path = folder / "train.list"
    path.write_text("".join(f"{video} {i}\n" for i in range(8)))
    return str(path)


def _loader(list_path, num_workers):
    dataset = build_dataset(({"format": "SFVideoDataset", "file_path": list_path},
                             train_pipeline(48, 64, 40)))
    sampler = GlobalBatchSampler(dataset, 2, num_replicas=1, rank=0)
    return build_dataloader(dataset, 2, num_workers, batch_sampler=sampler, seed=4)


def _epoch(loader):
    return [[t.numpy() for t in batch] for batch in loader]


def test_augmentations_do_not_depend_on_workers_and_a_resumed_epoch_draws_the_same(
        noise_dataset):
    in_process = _loader(noise_dataset, 0)
    in_process.set_epoch(1)
    full = _epoch(in_process)
    workers = _loader(noise_dataset, 2)
    workers.set_epoch(1)
    for a, b in zip(full, _epoch(workers)):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    resumed = _loader(noise_dataset, 2)
    resumed.set_epoch(1)
    resumed.start_at(2)
    tail = _epoch(resumed)
    assert len(tail) == len(full) - 2
    for a, b in zip(full[2:], tail):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    # the next pass is the whole next epoch again
    assert len(_epoch(resumed)) == len(full)
