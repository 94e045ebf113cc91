"""Multi-view testing: every video in views × crops, scores summed per video."""
from __future__ import annotations

import csv
import io
import os
from typing import Any, Dict, Optional

import paddle

from ..inference.labels import LabelMapError, read_label_map
from ..metrics import build_metric
from ..metrics.multi_crop_metric import metric_num_classes
from ..modeling import build_model
from ..utils.checkpoint import CheckpointError, load_weights
from ..utils.config import ConfigError, check_config
from ..utils.dist import get_rank, get_world_size, init_distributed
from ..utils.fileio import write_text_atomic
from ..utils.logger import get_logger, setup_logger
from .data import build_eval_loader, output_dir_of
from .fast_test import EtaLog, test_forward
from .progress import progress
from .same_lists import check_same_lists

logger = get_logger()


def _metric_config(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """``METRIC`` with the view counts taken from the test dataset when the config omits them."""
    metric_cfg = dict(cfg.get("METRIC") or {"name": "MultiCropMetric"})
    test_cfg = cfg["DATASET"]["test"]
    metric_cfg.setdefault("num_ensemble_views", test_cfg.get("num_ensemble_views", 1))
    metric_cfg.setdefault("num_spatial_crops", test_cfg.get("num_spatial_crops", 1))
    head_classes = cfg["MODEL"]["head"]["num_classes"]
    metric_classes = metric_num_classes(metric_cfg)
    if metric_classes is not None and metric_classes != head_classes:
        raise ConfigError(f"METRIC.num_classes ({metric_classes}) differs from "
                          f"MODEL.head.num_classes ({head_classes}); set both to the same value")
    metric_cfg.pop("num_cls", None)
    metric_cfg["num_classes"] = head_classes
    return metric_cfg


def _write_per_class(path: str, accuracy: Dict[int, float], names: Dict[int, str]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["class_id", "class_name", "top1"])
    for class_id in sorted(accuracy):
        writer.writerow([class_id, names.get(class_id, ""), f"{accuracy[class_id]:.4f}"])
    write_text_atomic(path, buffer.getvalue())


def read_label_names(path: Optional[str]) -> Dict[int, str]:
    """{class id: name} from a label map; empty when there is none. A malformed map is reported
    and left out rather than losing the test results it would only decorate."""
    if not path or not os.path.isfile(path):
        return {}
    try:
        return dict(enumerate(read_label_map(path)))
    except LabelMapError as err:
        logger.warning("class names left out of the per-class file: %s", err)
        return {}


@paddle.no_grad()
def test_model(cfg: Dict[str, Any], weights: Optional[str],
               parallel: bool = True) -> Dict[str, float]:
    """Test ``weights`` on ``DATASET.test``; writes ``test_predictions.csv`` and
    ``test_per_class_accuracy.csv`` into the output folder; returns top-1/top-5."""
    check_config(cfg, "<config>")
    if parallel:
        init_distributed(cfg["dist_timeout"])
        check_same_lists(cfg)  # every node reads the same list files
    rank = get_rank() if parallel else 0
    out_dir = output_dir_of(cfg)
    setup_logger(out_dir, rank, cfg["log_level"], filename="test.log")
    if not weights:
        raise CheckpointError("--test needs the weights to test: -w path/to/model.pdparams")
    metric_cfg = _metric_config(cfg)  # a class-count mismatch is reported before any work
    backbone = cfg["MODEL"].get("backbone") or {}
    if backbone.get("pretrained"):
        # -w holds every weight; like PaddleVideo's test task, the backbone's
        # pretrained file (an ImageNet init for training) is not read
        backbone["pretrained"] = ""
    model = build_model(cfg["MODEL"])
    load_weights(model, weights)
    model.eval()
    # As PaddleVideo's test task: its configs leave DATASET.test.test_mode out (the views ×
    # crops of every video are only produced in test mode).
    cfg["DATASET"]["test"]["test_mode"] = True
    batch_size = cfg["DATASET"]["test_batch_size"] or cfg["DATASET"]["batch_size"]
    dataset, loader = build_eval_loader(cfg, "test", batch_size)
    metric = build_metric(metric_cfg, data_size=len(dataset),
                          batch_size=batch_size)
    logger.info("Testing %s on %d videos × %d views, batch size %d", weights,
                metric.num_videos, metric.num_views, batch_size)
    # fixed weights: on a CPU the batches run through an inference engine (tasks/fast_test.py)
    forward = test_forward(model, cfg, get_world_size() if parallel else 1)
    eta = EtaLog(len(loader))
    try:
        for batch_id, batch in enumerate(progress(loader, desc="test")):
            metric.update(batch_id, batch, forward(batch))
            eta.step(batch_id + 1, int(batch[0].shape[0]))
    finally:
        getattr(forward, "close", lambda: None)()
    results = metric.accumulate()
    if rank == 0:
        videos = getattr(getattr(dataset, "info", None), "videos", None) or []
        names = [video["filename"] for video in videos]
        names = names if len(names) == metric.num_videos else None
        os.makedirs(out_dir, exist_ok=True)
        metric.write_predictions(os.path.join(out_dir, "test_predictions.csv"), names)
        _write_per_class(os.path.join(out_dir, "test_per_class_accuracy.csv"),
                         metric.per_class_accuracy(),
                         read_label_names(cfg["label_file"]))
        logger.info("Predictions written to %s", os.path.join(out_dir, "test_predictions.csv"))
    return results


test_model.__test__ = False  # a task, not a pytest test, when imported into test modules
