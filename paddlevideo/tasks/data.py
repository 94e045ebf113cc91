"""The datasets and loaders the tasks read: train, validation and test sets of one config."""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

from ..loader import build_dataloader, build_dataset
from ..loader.samplers import DistributedEvalBatchSampler, GlobalBatchSampler


def output_dir_of(cfg: Dict[str, Any]) -> str:
    """``output_dir``, else ``output/<model_name>`` (PaddleVideo's default)."""
    return cfg["output_dir"] or os.path.join("output", cfg["model_name"])


def loader_options(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The ``DATASET`` keys every loader of a run is built with: ``use_shared_memory`` (batches
    pass from the workers through shared memory; PaddleVideo's key, default True)."""
    return {"use_shared_memory": bool(cfg["DATASET"].get("use_shared_memory", True))}


def dataset_sections(cfg: Dict[str, Any], mode: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``(DATASET.<mode>, PIPELINE.<mode>)``, the dataset told the model's number of classes so
    a label outside ``[0, num_classes)`` is an error with its file and line before training."""
    dataset_cfg = dict(cfg["DATASET"][mode])
    num_classes = (cfg["MODEL"].get("head") or {}).get("num_classes")
    if num_classes is not None:
        dataset_cfg.setdefault("num_classes", num_classes)
    return dataset_cfg, cfg["PIPELINE"][mode]


def build_eval_loader(cfg: Dict[str, Any], mode: str, batch_size: int):
    """``(dataset, loader)`` over ``DATASET.<mode>`` where each sample is seen exactly once
    across ranks."""
    dataset = build_dataset(dataset_sections(cfg, mode))
    sampler = DistributedEvalBatchSampler(len(dataset), batch_size)
    loader = build_dataloader(dataset, batch_size, cfg["DATASET"]["num_workers"],
                              shuffle=False, drop_last=False, batch_sampler=sampler,
                              seed=cfg["seed"], **loader_options(cfg))
    return dataset, loader


def build_train_loader(cfg: Dict[str, Any], batch_sampler: Optional[Any] = None,
                       accumulation: int = 1):
    """``(dataset, loader)`` over ``DATASET.train``: this process's micro-batches of each global
    batch (:class:`GlobalBatchSampler`, the same samples per update on any topology), or the
    batches of ``batch_sampler(dataset)`` (multigrid's short cycle)."""
    dataset = build_dataset(dataset_sections(cfg, "train"))
    if batch_sampler is None:
        sampler = GlobalBatchSampler(dataset, cfg["DATASET"]["batch_size"], accumulation)
    else:
        sampler = batch_sampler(dataset)
    loader = build_dataloader(dataset, cfg["DATASET"]["batch_size"],
                              cfg["DATASET"]["num_workers"], shuffle=True, drop_last=True,
                              batch_sampler=sampler, seed=cfg["seed"], **loader_options(cfg))
    return dataset, loader
