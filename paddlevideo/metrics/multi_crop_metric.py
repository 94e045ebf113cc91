"""Video-level accuracy from several temporal × spatial views per video."""
from __future__ import annotations

import csv
import io
import math
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..utils.config import ConfigError
from ..utils.dist import all_reduce_max, all_reduce_sum
from ..utils.fileio import write_text_atomic
from ..utils.logger import get_logger
from .registry import METRIC

logger = get_logger()


def metric_num_classes(metric_cfg: Dict) -> Optional[int]:
    """``METRIC.num_classes`` or its older spelling ``num_cls`` (one setting; both given with
    different values is an error); None when neither is set."""
    values = {key: metric_cfg.get(key) for key in ("num_classes", "num_cls")
              if metric_cfg.get(key) is not None}
    if len(set(values.values())) > 1:
        raise ConfigError(f"METRIC.num_classes ({values['num_classes']}) and METRIC.num_cls "
                          f"({values['num_cls']}) are one setting with two values; keep one")
    return next(iter(values.values()), None)


@METRIC.register()
class MultiCropMetric:
    """Sums the softmax scores of every view of a video and scores the video.

    Test sample ``i`` is view ``i % V`` of video ``i // V`` with ``V = num_ensemble_views ×
    num_spatial_crops``. A sample index seen twice (padding in a distributed sampler) counts once.
    Across processes the per-video sums are added at :meth:`accumulate`, so each process must see
    a disjoint set of samples. ``num_cls`` is PaddleVideo's older name of ``num_classes``.
    """

    def __init__(self, data_size: int, batch_size: int = 1, num_ensemble_views: int = 1,
                 num_spatial_crops: int = 1, num_classes: Optional[int] = None,
                 num_cls: Optional[int] = None, log_interval: int = 1) -> None:
        num_classes = metric_num_classes({"num_classes": num_classes, "num_cls": num_cls})
        if num_classes is None:
            raise ConfigError("METRIC: MultiCropMetric needs num_classes (or num_cls)")
        self.num_views = num_ensemble_views * num_spatial_crops
        self.num_classes = int(num_classes)
        self.num_videos = math.ceil(data_size / self.num_views)
        self.data_size = data_size
        self.batch_size = batch_size
        self.log_interval = log_interval
        self.scores = np.zeros([self.num_videos, self.num_classes], dtype=np.float64)
        self.labels = np.full([self.num_videos], -1, dtype=np.int64)
        self.view_counts = np.zeros([self.num_videos], dtype=np.int64)
        self._seen = np.zeros([data_size], dtype=bool)
        self.results: Dict[str, float] = {}

    def add(self, sample_indices: Sequence[int], probs: np.ndarray,
            labels: Sequence[int]) -> None:
        """Add the ``probs [B, K]`` of test samples ``sample_indices [B]`` with ``labels [B]``."""
        sample_indices = np.asarray(sample_indices, dtype=np.int64).reshape(-1)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        probs = np.asarray(probs, dtype=np.float64).reshape(len(sample_indices), -1)
        for sample, prob, label in zip(sample_indices, probs, labels):
            if self._seen[sample]:
                continue
            self._seen[sample] = True
            video = sample // self.num_views
            self.scores[video] += prob
            self.labels[video] = label
            self.view_counts[video] += 1

    def update(self, batch_id: int, data: Sequence, outputs) -> None:
        """PaddleVideo's interface: ``data = (slow, fast, label, sample_index)``."""
        as_np = [d.numpy() if hasattr(d, "numpy") else np.asarray(d) for d in data]
        probs = outputs.numpy() if hasattr(outputs, "numpy") else outputs
        self.add(as_np[3], probs, as_np[2])
        if self.log_interval and batch_id % self.log_interval == 0:
            logger.debug("[TEST] processed batch %d", batch_id)

    def gather(self) -> None:
        """Add up the sums of all processes (each holds a disjoint share of the samples)."""
        self.scores = all_reduce_sum(self.scores)
        self.view_counts = all_reduce_sum(self.view_counts)
        # a video split across processes has its label set on each of them, unset (-1) elsewhere
        self.labels = all_reduce_max(self.labels)

    def accumulate(self, gather: bool = True) -> Dict[str, float]:
        """Top-1/top-5 over videos; logs a warning for videos with missing views."""
        if gather:
            self.gather()
        complete = self.view_counts > 0
        if not complete.all():
            logger.warning("%d of %d videos received no view", int((~complete).sum()),
                           self.num_videos)
        partial = int(((self.view_counts > 0) & (self.view_counts < self.num_views)).sum())
        if partial:
            logger.warning("%d videos have fewer than %d views", partial, self.num_views)
        scores, labels = self.scores[complete], self.labels[complete]
        k = min(5, self.num_classes)
        topk = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        top1 = float(np.mean(topk[:, 0] == labels)) if len(labels) else 0.0
        top5 = float(np.mean((topk == labels[:, None]).any(axis=1))) if len(labels) else 0.0
        self.results = {"top1": top1, "top5": top5, "num_videos": int(complete.sum())}
        logger.info("[TEST] finished, avg_acc1= %.4f, avg_acc5= %.4f over %d videos",
                    top1, top5, int(complete.sum()))
        return self.results

    def per_class_accuracy(self) -> Dict[int, float]:
        """Top-1 accuracy per label among the videos that have that label."""
        complete = self.view_counts > 0
        predicted = np.argmax(self.scores, axis=1)
        accuracy = {}
        for label in np.unique(self.labels[complete]):
            mask = complete & (self.labels == label)
            accuracy[int(label)] = float(np.mean(predicted[mask] == label))
        return accuracy

    def write_predictions(self, path: str, video_names: Optional[List[str]] = None,
                          top_k: int = 5) -> None:
        """CSV: video, label, top-k class ids and their mean scores (over views)."""
        k = min(top_k, self.num_classes)
        mean_scores = self.scores / np.maximum(self.view_counts, 1)[:, None]
        order = np.argsort(-mean_scores, axis=1, kind="stable")[:, :k]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["video", "label"] + [f"top{i + 1}_id" for i in range(k)]
                        + [f"top{i + 1}_score" for i in range(k)])
        for video in range(self.num_videos):
            if self.view_counts[video] == 0:
                continue
            name = video_names[video] if video_names else str(video)
            ids = order[video].tolist()
            scores = [f"{mean_scores[video, i]:.6f}" for i in ids]
            writer.writerow([name, int(self.labels[video])] + ids + scores)
        write_text_atomic(path, buffer.getvalue())
