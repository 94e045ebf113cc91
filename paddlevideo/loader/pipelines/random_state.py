"""The random stream that pipeline steps and datasets draw from.

One ``numpy.random.Generator`` per process. The data loader re-seeds it before every sample from
that sample's seed (``(seed, epoch, sample id)``, see ``loader/builder.py``), so no two samples
or epochs repeat an augmentation, a run is reproducible for a given seed whatever the number of
workers, and a resumed epoch draws what the uninterrupted one drew. Code that uses the pipeline
without a loader can call :func:`seed_pipeline_rng` itself.
"""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np

_rng = np.random.default_rng()


def pipeline_rng() -> np.random.Generator:
    """The generator every random pipeline choice comes from (current process)."""
    return _rng


def seed_pipeline_rng(seed: Union[int, Sequence[int]]) -> None:
    """Restart the stream; ``seed`` may be an int or a sequence such as
    ``(seed, epoch, rank, worker_id)`` (mixed by ``numpy.random.SeedSequence``)."""
    global _rng
    entropy = [int(s) for s in seed] if isinstance(seed, (list, tuple)) else int(seed)
    _rng = np.random.default_rng(np.random.SeedSequence(entropy))
