"""Build a model from the ``MODEL`` section of a config."""
from __future__ import annotations

from typing import Any, Dict

import paddle.nn as nn

from ..utils.config import ConfigError, to_plain
from ..utils.registry import build_from_config
from .registry import BACKBONES, HEADS, LOSSES, RECOGNIZERS


def build_backbone(cfg: Dict[str, Any]) -> nn.Layer:
    return build_from_config(to_plain(cfg), BACKBONES)


def build_head(cfg: Dict[str, Any]) -> nn.Layer:
    return build_from_config(to_plain(cfg), HEADS)


def build_loss(cfg: Dict[str, Any]) -> nn.Layer:
    return build_from_config(to_plain(cfg), LOSSES)


def build_recognizer(cfg: Dict[str, Any]) -> nn.Layer:
    """``cfg`` = ``{framework, backbone: {name, ...}, head: {name, ...}, loss?: {name, ...}}``."""
    cfg = to_plain(cfg)
    framework = cfg.get("framework")
    if framework is None:
        raise ConfigError("MODEL.framework is required (e.g. 'Recognizer3D')",
                          key="MODEL.framework")
    recognizer_cls = RECOGNIZERS.get(framework)
    for part in ("backbone", "head"):
        if part not in cfg:
            raise ConfigError(f"MODEL.{part} is required for {framework}", key=f"MODEL.{part}")
    backbone = build_backbone(cfg["backbone"])
    head = build_head(cfg["head"])
    loss = build_loss(cfg["loss"]) if cfg.get("loss") else None
    # the recognizer's own options (e.g. mixup_alpha): every other key of MODEL
    options = {k: v for k, v in cfg.items() if k not in ("framework", "backbone", "head", "loss")}
    model = recognizer_cls(backbone=backbone, head=head, loss=loss, **options)
    pretrained = cfg["backbone"].get("pretrained")
    if pretrained:
        from ..utils.checkpoint import load_pretrained

        load_pretrained(model.backbone, pretrained, prefix="backbone.")
    return model


def build_model(cfg: Dict[str, Any]) -> nn.Layer:
    """The PaddleVideo entry point: ``build_model(cfg.MODEL)``."""
    return build_recognizer(cfg)
