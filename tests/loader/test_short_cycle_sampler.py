"""ShortCycleBatchSampler: cycling batch sizes, coverage over processes, per-epoch shuffles."""
from collections import Counter

import pytest

from paddlevideo.loader.samplers import ShortCycleBatchSampler
from paddlevideo.multigrid import build_multigrid_schedule
from paddlevideo.utils.config import get_config

SIZES = [8, 4, 2]


def _samplers(num_samples, sizes=SIZES, **kwargs):
    return [ShortCycleBatchSampler(num_samples, sizes, num_replicas=2, rank=r, **kwargs)
            for r in (0, 1)]


def _epoch(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


def test_batch_sizes_and_short_cycle_index_cycle():
    sampler = _samplers(56)[0]         # 28 per process = two full cycles of 14
    batches = _epoch(sampler, 0)
    assert [len(b) for b in batches] == [8, 4, 2, 8, 4, 2]
    assert [{idx for _, idx in b} for b in batches] == [{0}, {1}, {2}] * 2
    assert len(sampler) == 6


def test_two_processes_cover_the_data_set_once_when_divisible():
    seen = Counter()
    for sampler in _samplers(56):
        for batch in _epoch(sampler, 3):
            seen.update(index for index, _ in batch)
    assert sorted(seen) == list(range(56))
    assert set(seen.values()) == {1}


def test_uneven_data_set_is_padded_and_last_batch_filled():
    samplers = _samplers(35)           # 18 per process after padding one index
    seen = Counter()
    for sampler in samplers:
        batches = _epoch(sampler, 0)
        # 18 = 8 + 4 + 2 + 4 → the last batch (an 8) is filled up with 4 repeated indices
        assert [len(b) for b in batches] == [8, 4, 2, 8]
        assert len(sampler) == 4
        seen.update(index for batch in batches for index, _ in batch)
    assert sorted(seen) == list(range(35))
    assert sum(seen.values()) == 2 * 22   # 35 samples + 1 padding + 2 × 4 fill-ups


def test_drop_last_drops_the_incomplete_batch():
    for sampler in _samplers(35, drop_last=True):
        batches = _epoch(sampler, 0)
        assert [len(b) for b in batches] == [8, 4, 2]
        assert len(sampler) == 3


def test_epochs_shuffle_differently_and_ranks_agree():
    rank0, rank1 = _samplers(56)
    epoch0 = [[i for b in _epoch(s, 0) for i, _ in b] for s in (rank0, rank1)]
    epoch1 = [[i for b in _epoch(s, 1) for i, _ in b] for s in (rank0, rank1)]
    assert epoch0[0] != epoch1[0]
    # both ranks used the same permutation: their shares are disjoint and complete
    for shares in (epoch0, epoch1):
        assert not set(shares[0]) & set(shares[1])
        assert sorted(shares[0] + shares[1]) == list(range(56))
    # and the same epoch gives the same order again
    assert [i for b in _epoch(rank0, 0) for i, _ in b] == epoch0[0]


def test_no_shuffle_takes_data_set_order():
    rank0, rank1 = _samplers(28, shuffle=False)
    assert [i for b in _epoch(rank0, 5) for i, _ in b] == list(range(0, 28, 2))
    assert [i for b in _epoch(rank1, 5) for i, _ in b] == list(range(1, 28, 2))


def test_sizes_from_the_shipped_schedule():
    schedule = build_multigrid_schedule(
        get_config("configs/recognition/slowfast/slowfast_multigrid.yaml"))
    sampler = ShortCycleBatchSampler.from_epoch_shape(1000, schedule.shape_at(0),
                                                      num_replicas=2, rank=1)
    # 500 per process: 128 + 64 + 64 + 128 + 64 + a last 64 filled up from 52
    assert [len(b) for b in _epoch(sampler, 0)] == [128, 64, 64, 128, 64, 64]
    assert len(sampler) == 6


def test_bad_arguments():
    with pytest.raises(ValueError, match="rank 2"):
        ShortCycleBatchSampler(10, SIZES, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="batch_sizes"):
        ShortCycleBatchSampler(10, [8, 0], num_replicas=1, rank=0)
