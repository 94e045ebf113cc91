"""``--test`` on a CPU through the fastest inference engine, and progress lines with an ETA.

The weights of a test never change, so the recognizer can be exported once (into a temporary
folder) and every batch run by the inference engine instead of the dynamic graph's plain
kernels: OpenVINO where it is installed, else Paddle Inference with oneDNN, in fp32 so the
probabilities equal the dynamic graph's within float rounding, on every core this process may
use. ``cpu_fast_path: dygraph`` (or a GPU, or several processes) keeps the dynamic graph.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np
import paddle

from ..utils.cpu_features import one_cpu_process, usable_cores
from ..utils.logger import get_logger

logger = get_logger()
ETA_LOG_LINES = 20  # about this many progress lines per test run


def wants_engine_path(cfg: Dict[str, Any], world_size: int) -> bool:
    """One process on a CPU whose config does not ask for the dynamic graph."""
    return one_cpu_process(world_size) and cfg.get("cpu_fast_path") not in ("dygraph", False)


class EngineTestForward:
    """``__call__(batch) -> probabilities [N, K]`` of the recognizer through an inference
    engine; exported on the first batch, whose clip geometry (slow ``[N,3,T/alpha,S,S]``, fast
    ``[N,3,T,S,S]``) it fixes."""

    def __init__(self, model: paddle.nn.Layer, threads: int) -> None:
        self.model, self.threads = model, threads
        self.engine: Any = None
        self.tmp_dir: Optional[str] = None

    def _build(self, slow: np.ndarray, fast: np.ndarray) -> None:
        from ..inference import EngineOptions, create_engine, export_inference_model
        from ..inference.openvino_engine import openvino_available

        fmt = "openvino" if openvino_available() else "pdmodel"
        geometry = {"INFERENCE": {"num_frames": fast.shape[2], "target_size": fast.shape[3],
                                  "alpha": fast.shape[2] // slow.shape[2]}}
        self.tmp_dir = tempfile.mkdtemp(prefix="fast_test_")
        paths = export_inference_model(self.model, geometry, self.tmp_dir, "model", fmt)
        options = EngineOptions(precision="fp32", cpu_threads=self.threads,
                                batch_size=slow.shape[0])
        self.engine = create_engine(paths["model"], paths.get("params"), options)
        logger.info("Test forward: %s on %d CPU threads (exported with fixed weights)",
                    self.engine.choice.describe(), self.threads)

    def __call__(self, batch: Sequence[Any]) -> np.ndarray:
        slow, fast = (np.asarray(t.numpy() if hasattr(t, "numpy") else t, np.float32)
                      for t in batch[:2])
        if self.engine is None:
            self._build(slow, fast)
        return self.engine.run(slow, fast)

    def close(self) -> None:
        if self.tmp_dir:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)


def square_clips(batch: Sequence[Any]) -> bool:
    """Whether the batch's crops are square (the export's input spec is ``S x S``)."""
    return all(t.shape[-1] == t.shape[-2] for t in batch[:2])


def test_forward(model: paddle.nn.Layer, cfg: Dict[str, Any],
                 world_size: int) -> Callable[[Sequence[Any]], Any]:
    """The fastest forward of ``model`` for ``--test`` here (see the module docstring)."""
    dygraph = lambda batch: model(batch, mode="test")  # noqa: E731 - a one-line forward
    if not wants_engine_path(cfg, world_size):
        return dygraph
    engine = EngineTestForward(model, usable_cores())

    def forward(batch: Sequence[Any]):
        if engine.engine is None and not square_clips(batch):
            logger.info("Test forward: dynamic graph (clips are not square)")
            return dygraph(batch)
        return engine(batch)

    forward.close = engine.close  # type: ignore[attr-defined]
    return forward


test_forward.__test__ = False  # not a pytest test when imported into test modules


class EtaLog:
    """A log line every ``every`` batches (about :data:`ETA_LOG_LINES` per run): batches done,
    elapsed time, clips per second and the estimated time left. The estimate uses the batches
    after the first, which also pays for one-off set-up (workers, the engine's export)."""

    def __init__(self, total: int, desc: str = "test") -> None:
        self.total, self.desc = total, desc
        self.every = max(1, total // ETA_LOG_LINES)
        self.start = time.perf_counter()
        self.first_done: Optional[float] = None
        self.clips = 0

    def step(self, done: int, clips: int) -> None:
        now = time.perf_counter()
        self.clips += clips
        if self.first_done is None:
            self.first_done = now
        if done % self.every and done != self.total:
            return
        elapsed = now - self.start
        per_batch = (now - self.first_done) / (done - 1) if done > 1 else elapsed
        logger.info("[%s] batch %d/%d, %.1f s elapsed, %.2f clips/s, ETA %s", self.desc, done,
                    self.total, elapsed, self.clips / max(elapsed, 1e-9),
                    format_seconds(per_batch * (self.total - done)))


def format_seconds(seconds: float) -> str:
    """``1:02:03`` / ``2:03`` style."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
