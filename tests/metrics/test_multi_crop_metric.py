import csv

import numpy as np
import pytest

from paddlevideo.loader.samplers import DistributedEvalBatchSampler
from paddlevideo.metrics import MultiCropMetric, build_metric


def _probs(k, cls, strength=0.9):
    p = np.full(k, (1 - strength) / (k - 1))
    p[cls] = strength
    return p


def test_views_are_summed_per_video():
    # 2 videos × 3 views, 4 classes. Video 0 (label 1): two weak views say 2, one strong says 1.
    metric = MultiCropMetric(data_size=6, num_ensemble_views=3, num_spatial_crops=1,
                             num_classes=4)
    probs = np.stack([_probs(4, 2, 0.4), _probs(4, 2, 0.4), _probs(4, 1, 0.99),
                      _probs(4, 3), _probs(4, 3), _probs(4, 0)])
    metric.add(range(6), probs, [1, 1, 1, 0, 0, 0])
    result = metric.accumulate()
    # video 0: class 1 sums to 0.99+0.2+0.2 = 1.39 > class 2's 0.8+0.0033 → correct
    # video 1: class 3 wins (1.8 + ...), label 0 is second → top1 wrong, top5 right
    assert result == {"top1": 0.5, "top5": 1.0, "num_videos": 2}
    assert metric.per_class_accuracy() == {0: 0.0, 1: 1.0}


def test_a_sample_seen_twice_counts_once():
    metric = MultiCropMetric(data_size=2, num_ensemble_views=2, num_spatial_crops=1,
                             num_classes=3)
    metric.add([0], [_probs(3, 2, 0.6)], [0])
    metric.add([0], [_probs(3, 2, 0.6)], [0])  # padding repeat
    metric.add([1], [_probs(3, 0, 0.95)], [0])
    assert metric.view_counts.tolist() == [2]
    assert metric.accumulate()["top1"] == 1.0


def test_update_accepts_paddlevideo_batches_and_config_keys():
    metric = build_metric({"name": "MultiCropMetric", "num_ensemble_views": 1,
                           "num_spatial_crops": 1, "num_cls": 3}, data_size=2, batch_size=2)
    batch = [None, None, np.array([[2], [1]]), np.array([[0], [1]])]
    metric.update(0, batch, np.stack([_probs(3, 2), _probs(3, 0)]))
    assert metric.accumulate()["top1"] == 0.5


@pytest.mark.parametrize("size, batch, world", [(31, 4, 2), (30, 7, 3), (5, 8, 4), (6, 1, 1)])
def test_eval_sampler_covers_every_sample_once(size, batch, world):
    seen = []
    for rank in range(world):
        sampler = DistributedEvalBatchSampler(size, batch, rank=rank, world_size=world)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert all(1 <= len(b) <= batch for b in batches)
        seen += [i for b in batches for i in b]
    assert sorted(seen) == list(range(size))


def test_grouping_with_uneven_shards_matches_single_process():
    """Views of a video split across two simulated processes give the single-process result."""
    rng = np.random.default_rng(0)
    views, videos, k = 6, 7, 5  # 42 samples over 4 processes of batch 4: uneven shards
    probs = rng.dirichlet(np.ones(k), size=videos * views)
    labels = np.repeat(rng.integers(0, k, videos), views)
    single = MultiCropMetric(videos * views, num_ensemble_views=3, num_spatial_crops=2,
                             num_classes=k)
    single.add(range(videos * views), probs, labels)
    expected = single.accumulate()
    parts = []
    for rank in range(4):
        part = MultiCropMetric(videos * views, num_ensemble_views=3, num_spatial_crops=2,
                               num_classes=k)
        for b in DistributedEvalBatchSampler(videos * views, 4, rank=rank, world_size=4):
            part.add(b, probs[b], labels[b])
        parts.append(part)
    merged = parts[0]
    merged.scores = sum(p.scores for p in parts)
    merged.view_counts = sum(p.view_counts for p in parts)
    merged.labels = np.max([p.labels for p in parts], axis=0)
    assert merged.view_counts.tolist() == [views] * videos
    assert merged.accumulate(gather=False) == expected
    np.testing.assert_allclose(merged.scores, single.scores)


def test_predictions_csv(tmp_path):
    metric = MultiCropMetric(data_size=4, num_ensemble_views=2, num_spatial_crops=1,
                             num_classes=6)
    metric.add(range(4), np.stack([_probs(6, 4), _probs(6, 4), _probs(6, 1), _probs(6, 1)]),
               [4, 4, 2, 2])
    metric.accumulate()
    path = tmp_path / "pred.csv"
    metric.write_predictions(str(path), ["a.mp4", "b.mp4"])
    rows = list(csv.reader(open(path)))
    assert rows[0][:4] == ["video", "label", "top1_id", "top2_id"]
    assert rows[1][:3] == ["a.mp4", "4", "4"]
    assert rows[2][:3] == ["b.mp4", "2", "1"]
    assert float(rows[1][7]) == pytest.approx(0.9)


def test_num_classes_and_num_cls_are_one_setting():
    from paddlevideo.utils.config import ConfigError

    for keys in ({"num_cls": 3}, {"num_classes": 3}, {"num_classes": 3, "num_cls": 3}):
        assert MultiCropMetric(data_size=2, **keys).scores.shape == (2, 3)
    with pytest.raises(ConfigError, match=r"METRIC.num_classes \(3\) and METRIC.num_cls \(4\)"):
        MultiCropMetric(data_size=2, num_classes=3, num_cls=4)
