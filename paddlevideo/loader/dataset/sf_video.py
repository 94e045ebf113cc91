"""``SFVideoDataset``: Kinetics-style video lists for SlowFast (PaddleVideo's dataset name)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import paddle

from ..pipelines.decode import VideoDecodeError
from ..pipelines.random_state import pipeline_rng
from ..registry import DATASETS
from .bad_videos import BadVideoError, BadVideoLog
from .list_file import read_video_list


class SampleInfo(Sequence):
    """``info[i]``: the sample dict of sample ``i`` (video → temporal clip → spatial crop order),
    computed on demand so a 30-view test set does not hold 30 dicts per video."""

    def __init__(self, videos: List[Dict[str, Any]], num_views: int, num_crops: int) -> None:
        self.videos, self.num_views, self.num_crops = videos, num_views, num_crops

    def __len__(self) -> int:
        return len(self.videos) * self.num_views * self.num_crops

    def __getitem__(self, index: int) -> Dict[str, Any]:  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"sample index {index} out of range [0, {len(self)})")
        per_video = self.num_views * self.num_crops
        video = self.videos[index // per_video]
        return {
            "filename": video["filename"], "labels": video["labels"],
            "temporal_sample_index": (index % per_video) // self.num_crops,
            "spatial_sample_index": index % self.num_crops,
            "temporal_num_clips": self.num_views, "spatial_num_clips": self.num_crops,
        }


@DATASETS.register()
class SFVideoDataset(paddle.io.Dataset):
    """Videos listed as ``<path> <label>`` lines, each run through a SlowFast pipeline.

    Items: train/valid ``(slow float32 [3,T/alpha,H,W], fast float32 [3,T,H,W], label int64
    [1])``; test mode adds ``sample index int64 [1]``. In test mode every video gives
    ``num_ensemble_views * num_spatial_crops`` samples; sample ``i`` belongs to video
    ``i // (num_ensemble_views * num_spatial_crops)``.

    A video that fails to decode in train/valid is recorded (see :meth:`bad_videos`) and replaced
    by a random other sample, up to ``num_retries`` attempts; in test mode it is an error naming
    the file. ``__getitem__`` also takes ``(index, short_cycle_idx)`` for multigrid short cycles.
    The arguments are PaddleVideo's (its ``BaseDataset`` adds ``data_prefix`` and ``test_mode``;
    ``suffix``, a frame-file extension of its frame-folder datasets, is accepted and has no
    use for video files); any other key in ``DATASET.<mode>`` is a config error.
    """

    def __init__(self, file_path: str, pipeline: Callable[[Dict[str, Any]], Dict[str, Any]],
                 data_prefix: Optional[str] = None, test_mode: bool = False,
                 num_ensemble_views: int = 1, num_spatial_crops: int = 1, num_retries: int = 5,
                 num_classes: Optional[int] = None,
                 num_samples_precise_bn: Optional[int] = None,
                 suffix: Optional[str] = None) -> None:
        super().__init__()
        self.file_path, self.pipeline, self.data_prefix = file_path, pipeline, data_prefix
        self.test_mode, self.num_retries = test_mode, max(int(num_retries), 1)
        self.num_ensemble_views = int(num_ensemble_views) if test_mode else 1
        self.num_spatial_crops = int(num_spatial_crops) if test_mode else 1
        self.num_samples_precise_bn = num_samples_precise_bn
        self.videos = read_video_list(file_path, data_prefix, num_classes)
        self.info = SampleInfo(self.videos, self.num_ensemble_views, self.num_spatial_crops)
        self._bad_log = BadVideoLog()

    @property
    def num_videos(self) -> int:
        return len(self.videos)

    def __len__(self) -> int:
        if not self.test_mode and self.num_samples_precise_bn is not None:
            return min(len(self.info), int(self.num_samples_precise_bn))
        return len(self.info)

    def bad_videos(self) -> Dict[str, str]:
        """``path → reason`` for every video that failed so far, in any worker process."""
        return self._bad_log.items()

    def _run_pipeline(self, index: int, short_cycle_idx: Optional[int]) -> Dict[str, Any]:
        results = dict(self.info[index])
        if short_cycle_idx is not None:
            results["short_cycle_idx"] = short_cycle_idx
        return self.pipeline(results)

    def __getitem__(self, idx: Union[int, Tuple[int, int]]) -> Tuple[np.ndarray, ...]:
        index, short_cycle_idx = (idx if isinstance(idx, (tuple, list)) else (idx, None))
        index = int(index)
        if self.test_mode:
            return self._test_item(index, short_cycle_idx)
        failures = []
        for _ in range(self.num_retries):
            try:
                results = self._run_pipeline(index, short_cycle_idx)
            except VideoDecodeError as err:
                self._bad_log.record(err.path, err.reason)
                failures.append(f"  {err.path}: {err.reason}")
                index = int(pipeline_rng().integers(0, len(self.info)))
                continue
            slow, fast = results["imgs"]
            return slow, fast, np.array([results["labels"]], dtype=np.int64)
        raise BadVideoError(f"{self.num_retries} attempts in a row hit bad videos (num_retries="
                            f"{self.num_retries}):\n" + "\n".join(failures))

    def _test_item(self, index: int, short_cycle_idx: Optional[int]) -> Tuple[np.ndarray, ...]:
        try:
            results = self._run_pipeline(index, short_cycle_idx)
        except VideoDecodeError as err:
            self._bad_log.record(err.path, err.reason)
            raise BadVideoError(f"cannot test on video {err.path}: {err.reason}") from None
        slow, fast = results["imgs"]
        return (slow, fast, np.array([results["labels"]], dtype=np.int64),
                np.array([index], dtype=np.int64))
