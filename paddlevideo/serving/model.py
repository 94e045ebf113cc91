"""The one model of a service process: how it is loaded, and how requests reach it.

:func:`load_predictor` is the only place the service builds a
:class:`~paddlevideo.inference.predictor.Predictor` from its command-line flags.
:class:`ServedModel` shares that predictor between all requests: decoding and preprocessing run
in a small thread pool (a fresh :class:`ClipPreprocessor` per video, since its decoder keeps
per-video state), every model run goes through one :class:`.batching.DynamicBatcher`, and
timelines use the same batcher through :class:`TimelineModel`.
"""
from __future__ import annotations

import argparse
import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..inference.preprocess import ClipPreprocessor
from .batching import DynamicBatcher
from .metrics import ServiceMetrics


def load_predictor(args: argparse.Namespace) -> Tuple[Any, Mapping[str, Any]]:
    """``(Predictor, config)`` for ``tools/serve.py``'s flags; the model files are checked
    before Paddle reads them. Raises ConfigError, EngineError, LabelMapError, ValueError."""
    from ..inference import Predictor
    from ..inference.engine_flags import engine_options
    from ..inference.engines import check_model_files, choose_engine
    from ..utils import get_config

    options = engine_options(args, batch_size=args.max_batch)
    choose_engine(args.model_file, options)
    check_model_files(args.model_file, args.params_file)
    cfg = get_config(args.config, overrides=args.override)
    predictor = Predictor(args.model_file, args.params_file, cfg, engine=options, top_k=5,
                          label_file=args.label_file, num_views=1)
    return predictor, cfg


def top_k_records(probs: np.ndarray, class_names: List[str], k: int) -> List[Dict[str, Any]]:
    """``probs [K]`` → the ``k`` best ``{class_id, class_name, score}``, best first."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"class_id": int(i), "class_name": class_names[int(i)], "score": float(probs[i])}
            for i in order]


class TimelineModel:
    """What :class:`~paddlevideo.inference.timeline_runner.TimelineRun` needs of a predictor,
    with model runs going through the service's batcher (so the model stays on one thread)."""

    def __init__(self, served: ServedModel) -> None:
        predictor = served.predictor
        self.preprocess = ClipPreprocessor(served.cfg, 1)
        self.batch_size = predictor.batch_size
        self.class_names = predictor.class_names
        self.top_classes = predictor.top_classes
        self._batcher = served.batcher

    def run_model(self, slow: np.ndarray, fast: np.ndarray) -> np.ndarray:
        """Probabilities ``[N, K]`` for windows ``slow [N,3,T/alpha,S,S]``, ``fast
        [N,3,T,S,S]``."""
        return self._batcher.submit(slow, fast).result()


class ServedModel:
    """The shared predictor, its batcher and the decoding pool (see the module docstring)."""

    def __init__(self, predictor: Any, cfg: Mapping[str, Any], metrics: ServiceMetrics,
                 workers: int = 2, max_batch: int = 8, batch_wait: float = 0.01,
                 max_views: int = 10) -> None:
        self.predictor, self.cfg, self.metrics = predictor, cfg, metrics
        self.max_views = max_views
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
        self.batcher = DynamicBatcher(predictor.run_model, max_rows=max_batch,
                                      batch_wait=batch_wait,
                                      on_run=lambda s, _rows: metrics.add_model_run(s))

    @property
    def class_names(self) -> List[str]:
        return self.predictor.class_names

    def _clips(self, path: str, views: int) -> Tuple[np.ndarray, np.ndarray]:
        clips = ClipPreprocessor(self.cfg, views)(path)
        self.metrics.add_decoded()
        return clips

    async def video_probs(self, path: str, views: int) -> np.ndarray:
        """Class probabilities ``[K]`` of one video, averaged over ``views`` clips; raises
        ``VideoDecodeError`` for a file the decoder cannot read."""
        loop = asyncio.get_running_loop()
        slow, fast = await loop.run_in_executor(self.pool, self._clips, path, views)
        probs = await asyncio.wrap_future(self.batcher.submit(slow, fast))
        return probs.mean(axis=0)

    def warm_up(self) -> None:
        """One model run on zero clips, so the first request does not pay set-up costs."""
        shapes = ClipPreprocessor(self.cfg, 1).shapes
        self.batcher.submit(np.zeros(shapes.slow_shape(1), np.float32),
                            np.zeros(shapes.fast_shape(1), np.float32)).result()

    def close(self, timeout: Optional[float] = None) -> None:
        self.pool.shutdown(wait=True)
        self.batcher.stop(timeout)
