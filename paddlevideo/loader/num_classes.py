"""One number of classes per run: the label file, the head and the metric agree, and the lists'
labels fit, checked once where the config is resolved, before any work starts.

The rule (:func:`resolve_num_classes`):

- with ``label_file``, the number of classes is its line count; ``MODEL.head.num_classes`` and
  ``METRIC.num_classes`` follow it whatever the config file says (PaddleVideo's yaml says 400), and
  a different number given on the command line is an error naming both;
- without it, a number given on the command line for only the head (or only the metric) is taken
  by the other; two different numbers both given, or a file whose head and metric differ, are an
  error naming both.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence, Tuple

from ..inference.labels import LabelMapError, read_label_map
from ..utils.errors import ConfigError
from .dataset.list_file import ListFileError, read_video_list

HEAD_KEY = "MODEL.head.num_classes"
METRIC_KEYS = ("METRIC.num_classes", "METRIC.num_cls")  # num_cls: PaddleVideo's older name
LIST_MODES = ("train", "valid", "test")


def _given_on_command_line(overrides: Sequence[str]) -> Dict[str, Any]:
    """``{key: value text}`` of the class-count keys among ``-o key=value`` overrides (the last
    one of a key wins, as in the config)."""
    given = {}
    for item in overrides or []:
        key, _, value = item.partition("=")
        if key.strip() in (HEAD_KEY, *METRIC_KEYS):
            given[key.strip()] = value.strip()
    return given


def _metric_classes(cfg: Dict[str, Any]) -> Optional[int]:
    metric = cfg.get("METRIC") or {}
    values = [metric.get(k.split(".")[1]) for k in METRIC_KEYS]
    values = [v for v in values if v is not None]
    return int(values[0]) if values else None


def _set_everywhere(cfg: Dict[str, Any], count: int) -> None:
    cfg["MODEL"]["head"]["num_classes"] = count
    metric = cfg.get("METRIC")
    if isinstance(metric, dict):
        metric.pop("num_cls", None)
        metric["num_classes"] = count


def label_file_classes(path: str) -> int:
    """The number of classes of a label file (``id name`` lines, ids 0..K-1)."""
    try:
        return len(read_label_map(path))
    except LabelMapError as err:
        raise ConfigError(f"label_file: {err}", key="label_file") from None


def check_list_labels(cfg: Dict[str, Any], count: int, source: str) -> None:
    """Every label in the config's list files lies in ``[0, count)``; the first that does not is
    an error naming the list, its line and ``source`` (what set the count). Lists that do not
    exist are left to the dataset, which names them when it is built."""
    for mode in LIST_MODES:
        section = (cfg.get("DATASET") or {}).get(mode) or {}
        path = section.get("file_path")
        if not path or not os.path.isfile(path):
            continue
        try:
            videos = read_video_list(path, section.get("data_prefix"))
        except ListFileError as err:
            raise ConfigError(f"DATASET.{mode}.file_path: {err}") from None
        worst = max(videos, key=lambda v: v["labels"])
        if worst["labels"] >= count:
            raise ConfigError(
                f"{path}:{worst['line']}: label {worst['labels']} does not fit {source} "
                f"({count} classes, ids 0..{count - 1}); the label file and the lists must come "
                f"from the same data set", key=f"DATASET.{mode}.file_path")


def resolve_num_classes(cfg: Dict[str, Any], overrides: Sequence[str] = (),
                        source: str = "<config>") -> Tuple[int, str]:
    """Apply the rule of this module to ``cfg`` in place; ``overrides`` are the command line's
    ``-o`` items. Returns the number of classes and the line to log about it."""
    head = cfg["MODEL"].get("head")
    if not isinstance(head, dict) or head.get("num_classes") is None:
        return -1, "classes: the model has no head with num_classes"
    given = _given_on_command_line(overrides)
    in_file = int(head["num_classes"])
    label_file = cfg.get("label_file")
    if label_file:
        count = label_file_classes(label_file)
        for key in given:
            value = _metric_classes(cfg) if key in METRIC_KEYS else in_file
            if value != count:
                raise ConfigError(f"-o {key}={value} differs from label_file {label_file} "
                                  f"({count} classes); leave -o {key} out or pass the label "
                                  f"file of {value} classes", key=key)
        check_list_labels(cfg, count, f"label_file {label_file}")
        _set_everywhere(cfg, count)
        return count, f"classes: {count} (from label_file {label_file})"
    metric = _metric_classes(cfg)
    head_given = HEAD_KEY in given
    metric_given = any(k in given for k in METRIC_KEYS)
    if metric is not None and metric != in_file and head_given == metric_given:
        where = "" if head_given else f" in {source}"  # both on the command line, or neither
        raise ConfigError(f"METRIC.num_classes ({metric}) differs from MODEL.head.num_classes "
                          f"({in_file}){where}; set both to the same value", key=HEAD_KEY)
    count = metric if metric_given and not head_given else in_file
    _set_everywhere(cfg, count)
    origin = "the command line" if given else source
    return count, f"classes: {count} (MODEL.head.num_classes from {origin})"

