"""The one model of a service process: how it is loaded, and how requests reach it.

:func:`load_predictor` is the only place the service builds a
:class:`~paddlevideo.inference.predictor.Predictor` from its command-line flags.
:class:`ServedModel` shares that predictor between all requests: decoding and preprocessing run
in a small pool of worker processes (a fresh :class:`ClipPreprocessor` per video, since its
decoder keeps per-video state), every model run goes through one
:class:`.batching.DynamicBatcher`, and timelines use the same batcher through
:class:`TimelineModel`.

The decoders are processes, not threads, because Paddle Inference holds the GIL while it runs
(a Python thread makes about a quarter of its progress meanwhile): with decoding in threads,
nothing is decoded while the model runs, so few clips are waiting when it ends and batches stay
small. Worker processes decode during model runs, and a decoder that crashes on a hostile file
takes down a worker, not the service (the pool is rebuilt and that request gets a 422). They
are started with ``spawn``, never forked from a process that holds an inference engine.
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..inference.preprocess import ClipPreprocessor
from ..loader.pipelines.decode import VideoDecodeError
from ..utils.logger import get_logger
from .batching import DynamicBatcher
from .metrics import ServiceMetrics

logger = get_logger()
_WORKER_CFG: Dict[str, Any] = {}  # in a decoding worker: the service's config


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


def _init_worker(cfg: Dict[str, Any], service_pid: int) -> None:
    _die_with_parent(service_pid)
    _WORKER_CFG.clear()
    _WORKER_CFG.update(cfg)


def _die_with_parent(service_pid: int) -> None:
    """End this worker when the service process ends, however it ends (a SIGKILL included):
    a pool worker waits on a queue it also holds the writing end of, so it would never see the
    service go."""
    try:  # Linux: the kernel sends SIGKILL when the parent exits
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != service_pid:  # the service ended while this worker was starting
        os._exit(0)


def _worker_ready() -> bool:
    return bool(_WORKER_CFG)


def _clips(path: str, views: int) -> Tuple[np.ndarray, np.ndarray]:
    """In a decoding worker: ``(slow, fast)`` clips of ``views`` views of the video."""
    return ClipPreprocessor(_WORKER_CFG, views)(path)


class ServedModel:
    """The shared predictor, its batcher and the decoding pool (see the module docstring)."""

    def __init__(self, predictor: Any, cfg: Mapping[str, Any], metrics: ServiceMetrics,
                 workers: int = 2, max_batch: int = 8, batch_wait: float = 0.01,
                 max_views: int = 10) -> None:
        self.predictor, self.cfg, self.metrics = predictor, cfg, metrics
        self.max_views = max_views
        self.workers = workers
        self.pool = self._new_pool()  # replaced from the event loop's thread only
        self.decoding = 0  # requests between upload and the batcher (event-loop thread only)
        self.batcher = DynamicBatcher(predictor.run_model, max_rows=max_batch,
                                      batch_wait=batch_wait,
                                      on_run=lambda s, _rows: metrics.add_model_run(s),
                                      more_coming=lambda: self.decoding > 0)

    @property
    def class_names(self) -> List[str]:
        return self.predictor.class_names

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker,
                                   initargs=(dict(self.cfg), os.getpid()))

    def _replace_broken_pool(self, broken: ProcessPoolExecutor) -> None:
        if self.pool is broken:  # the first of the requests it failed replaces it
            logger.warning("A decoding worker died; starting new workers")
            self.pool = self._new_pool()
        broken.shutdown(wait=False, cancel_futures=True)

    async def video_probs(self, path: str, views: int) -> np.ndarray:
        """Class probabilities ``[K]`` of one video, averaged over ``views`` clips; raises
        ``VideoDecodeError`` for a file the decoder cannot read (or that crashes it)."""
        loop = asyncio.get_running_loop()
        pool = self.pool
        self.decoding += 1
        try:
            slow, fast = await loop.run_in_executor(pool, _clips, path, views)
            submitted = self.batcher.submit(slow, fast)  # queued before the count drops
        except BrokenProcessPool:
            self._replace_broken_pool(pool)
            raise VideoDecodeError(path, "the decoder crashed on this file") from None
        finally:
            self.decoding -= 1
        self.metrics.add_decoded()
        probs = await asyncio.wrap_future(submitted)
        return probs.mean(axis=0)

    def warm_up(self) -> None:
        """Start the decoding workers, prepare the engine for every batch size the batcher
        may form, and run the model once on zero clips: the first requests pay no set-up."""
        start = time.perf_counter()
        started = [self.pool.submit(_worker_ready) for _ in range(self.workers)]
        prepare = getattr(getattr(self.predictor, "engine", None), "prepare_batches", None)
        if prepare is not None:
            prepare(range(1, self.batcher.max_rows + 1))
        shapes = ClipPreprocessor(self.cfg, 1).shapes
        self.batcher.submit(np.zeros(shapes.slow_shape(1), np.float32),
                            np.zeros(shapes.fast_shape(1), np.float32)).result()
        if not all(future.result() for future in started):
            raise RuntimeError("the decoding workers did not start")
        logger.info("Warm-up: %d decoding workers, batch sizes 1-%d, in %.1f s", self.workers,
                    self.batcher.max_rows, time.perf_counter() - start)

    def close(self, timeout: Optional[float] = None) -> bool:
        """End the decoding workers and the batcher; whether the model finished its work
        within ``timeout``."""
        self.pool.shutdown(wait=True)
        return self.batcher.stop(timeout)
