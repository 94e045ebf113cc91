"""``Predictor``: an exported SlowFast model plus test-time preprocessing and class names."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy as np

from ..utils.config import get_config
from .engines import EngineChoice, EngineOptions, create_engine
from .labels import check_label_count, read_label_map, resolve_label_file
from .preprocess import ClipPreprocessor

if TYPE_CHECKING:
    from .timeline_runner import TimelineResult

Prediction = Tuple[int, str, float]


@dataclass
class Timings:
    """Seconds spent so far in preprocessing (decode included), in the model and in
    postprocessing (top-k and class names), in total and per model run (``per_batch``:
    ``(preprocess, model)`` pairs)."""

    preprocess: float = 0.0
    model: float = 0.0
    postprocess: float = 0.0
    videos: int = 0
    per_batch: List[Tuple[float, float]] = field(default_factory=list)

    def ms_per_video(self) -> Dict[str, float]:
        """``{preprocess, inference, postprocess, total}`` in milliseconds per video."""
        count = max(self.videos, 1)
        stages = {"preprocess": self.preprocess, "inference": self.model,
                  "postprocess": self.postprocess}
        stages["total"] = sum(stages.values())
        return {name: 1000.0 * seconds / count for name, seconds in stages.items()}


class Predictor:
    """Predict the action in a video with an exported model.

    ``Predictor(model_file, params_file, config, engine=EngineOptions(...), top_k=1,
    label_file=None, num_views=1)``:

    - ``config``: a YAML path or a loaded config (clip geometry, test pipeline, label file);
    - ``engine``: how the model runs (:class:`EngineOptions`: engine, precision, device,
      threads, ``batch_size`` = videos per model run); the default is ``engine="auto"``;
    - ``predict(path)`` → ``[(class_id, name, score), ...]``, the ``top_k`` classes by
      probability averaged over ``num_views`` clips. Class names come from ``label_file``, else
      the config's ``label_file`` key, else ``data/k400/Kinetics-400_label_list.txt``.

    ``engine_choice`` says which engine and precision run (see ``choose_engine``).
    """

    def __init__(self, model_file: str, params_file: Optional[str],
                 config: Union[str, Mapping[str, Any]], engine: Optional[EngineOptions] = None,
                 *, top_k: int = 1, label_file: Optional[str] = None,
                 num_views: int = 1) -> None:
        cfg = get_config(config) if isinstance(config, str) else config
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        if engine is not None and not isinstance(engine, EngineOptions):
            raise TypeError(f"engine must be an EngineOptions (how the model runs), got "
                            f"{type(engine).__name__}")
        options = engine or EngineOptions()
        options.check()
        self.top_k, self.batch_size = int(top_k), options.batch_size
        # An explicit file wins, then the config's own ``label_file``, then Kinetics-400.
        self.label_file = resolve_label_file(label_file or cfg.get("label_file"))
        self.class_names = read_label_map(self.label_file)
        num_classes = (cfg.get("MODEL") or {}).get("head", {}).get("num_classes")
        if num_classes is not None:
            check_label_count(self.class_names, int(num_classes), self.label_file,
                              "the config (MODEL.head.num_classes)")
        self.preprocess = ClipPreprocessor(cfg, num_views)
        # The engine sees every view of every video of one batch at once.
        self.options = replace(options, batch_size=self.batch_size * self.preprocess.num_views)
        self.model_file = model_file
        self.engine = create_engine(model_file, params_file, self.options)
        self.engine_choice: EngineChoice = self.engine.choice
        self.timings = Timings()

    def run_model(self, slow: np.ndarray, fast: np.ndarray) -> np.ndarray:
        """Probabilities ``[N, K]`` of the model for ready inputs ``slow [N,3,T/alpha,S,S]``,
        ``fast [N,3,T,S,S]`` (model time is added to ``timings``)."""
        start = time.perf_counter()
        probs = self.engine.run(slow, fast)
        self.timings.model += time.perf_counter() - start
        if probs.ndim != 2 or probs.shape[1] != len(self.class_names):
            check_label_count(self.class_names, probs.shape[-1], self.label_file,
                              f"the model {self.model_file}")
        return probs

    def timeline(self, source: str, stride: Optional[float] = None,
                 output_video: Optional[str] = None, max_seconds: Optional[float] = None,
                 live: Optional[bool] = None, reconnects: int = 3,
                 on_window: Optional[Callable[..., None]] = None) -> TimelineResult:
        """Slide the clip window over ``source`` (a file, URL, camera index or ``-``) every
        ``stride`` seconds (default half a window), ``batch_size`` windows per model run; see
        :mod:`.timeline_runner`. ``output_video``: also write the annotated video there."""
        from .timeline_runner import TimelineRun

        return TimelineRun(self, source, stride=stride, max_seconds=max_seconds, live=live,
                           output_video=output_video, reconnects=reconnects,
                           on_window=on_window).run()

    def video_probs(self, paths: Sequence[str]) -> np.ndarray:
        """Class probabilities ``[len(paths), K]``, each averaged over the video's views."""
        start = time.perf_counter()
        clips = [self.preprocess(path) for path in paths]
        slow = np.concatenate([c[0] for c in clips])
        fast = np.concatenate([c[1] for c in clips])
        mid = time.perf_counter()
        probs = self.engine.run(slow, fast)
        end = time.perf_counter()
        self.timings.preprocess += mid - start
        self.timings.model += end - mid
        self.timings.videos += len(paths)
        self.timings.per_batch.append((mid - start, end - mid))
        if probs.ndim != 2 or probs.shape[1] != len(self.class_names):
            check_label_count(self.class_names, probs.shape[-1], self.label_file,
                              f"the model {self.model_file}")
        return probs.reshape(len(paths), self.preprocess.num_views, -1).mean(axis=1)

    def top_classes(self, probs: np.ndarray) -> List[Prediction]:
        """``probs [K]`` → the ``top_k`` ``(class_id, name, score)``, best first."""
        order = np.argsort(-probs, kind="stable")[: self.top_k]
        return [(int(i), self.class_names[int(i)], float(probs[i])) for i in order]

    def predict(self, path: str) -> List[Prediction]:
        """Top-``k`` ``(class_id, name, score)`` for one video."""
        return self.predict_batch([path])[0]

    def predict_batch(self, paths: Sequence[str]) -> List[List[Prediction]]:
        """:meth:`predict` for several videos run through the model together."""
        probs = self.video_probs(paths)
        start = time.perf_counter()
        predictions = [self.top_classes(p) for p in probs]
        self.timings.postprocess += time.perf_counter() - start
        return predictions


VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".flv", ".mpeg", ".mpg", ".m4v")


def list_videos(folder: str) -> List[str]:
    """Video files directly in ``folder`` (by extension), sorted by name."""
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(VIDEO_EXTENSIONS))
    return [os.path.join(folder, n) for n in names]


def prediction_record(path: str, predictions: List[Prediction]) -> Dict[str, Any]:
    """One video's result as JSON-ready data."""
    return {"file": path, "top_k": [{"class_id": c, "class_name": n, "score": s}
                                    for c, n, s in predictions]}
