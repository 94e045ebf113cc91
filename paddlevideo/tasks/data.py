"""The datasets and loaders the tasks read: train, validation and test sets of one config."""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

from ..loader import build_dataloader, build_dataset
from ..loader.samplers import DistributedEvalBatchSampler


def output_dir_of(cfg: Dict[str, Any]) -> str:
    """``output_dir``, else ``output/<model_name>`` (PaddleVideo's default)."""
    return cfg["output_dir"] or os.path.join("output", cfg["model_name"])


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
                              seed=cfg["seed"])
    return dataset, loader


def build_train_loader(cfg: Dict[str, Any], batch_sampler: Optional[Any] = None):
    """``(dataset, loader)`` over ``DATASET.train``: this process's shuffled shard in full
    batches, or the batches of ``batch_sampler`` (multigrid's short cycle)."""
    dataset = build_dataset(dataset_sections(cfg, "train"))
    sampler = batch_sampler(dataset) if callable(batch_sampler) else batch_sampler
    loader = build_dataloader(dataset, cfg["DATASET"]["batch_size"],
                              cfg["DATASET"]["num_workers"], shuffle=True, drop_last=True,
                              batch_sampler=sampler, seed=cfg["seed"])
    return dataset, loader
