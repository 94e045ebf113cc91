"""Precise BN: replace BN running statistics by their average over many training batches.

Running averages with momentum lag behind the weights; before validating, recompute them with
the final weights (Wu & Johnson, "Rethinking Batch in BatchNorm", 2021).
"""
from __future__ import annotations

import itertools
from typing import Iterable, List

import paddle
import paddle.nn as nn

from ..modeling.layers import SubBatchNorm3D
from ..utils.dist import all_reduce_mean_
from ..utils.logger import get_logger

logger = get_logger()
_BN_TYPES = (nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D, nn.BatchNorm, SubBatchNorm3D)


def bn_layers(model: nn.Layer) -> List[nn.Layer]:
    """Every BatchNorm (plain or sub-batch) layer that tracks running statistics."""
    return [m for m in model.sublayers(include_self=True) if isinstance(m, _BN_TYPES)]


def _stat_buffers(layer: nn.Layer):
    if isinstance(layer, SubBatchNorm3D):
        return layer._split_mean, layer._split_variance
    return layer._mean, layer._variance


@paddle.no_grad()
def do_preciseBN(model: nn.Layer, data_loader: Iterable, parallel: bool = False,
                 num_iters: int = 200) -> int:
    """Set every BN's running mean/variance to the mean of its batch statistics over
    ``num_iters`` training-mode batches from ``data_loader``; returns the batches used.

    With momentum 0, a BN layer's running statistics after a forward pass are exactly that
    batch's statistics, so summing them after each batch and dividing gives the average. Across
    processes the averages are averaged too, so every process ends with the same statistics.
    Sub-batch BN layers are then aggregated into their plain statistics.
    """
    layers = bn_layers(model)
    if not layers:
        return 0
    momenta = [layer._momentum for layer in layers]
    sums = [[paddle.zeros_like(buf) for buf in _stat_buffers(layer)] for layer in layers]
    was_training = model.training
    model.train()
    for layer in layers:
        layer._momentum = 0.0
    used = 0
    for batch in itertools.islice(data_loader, num_iters):
        model(batch, mode="train")
        for layer, acc in zip(layers, sums):
            for total, buf in zip(acc, _stat_buffers(layer)):
                total.add_(buf)
        used += 1
    for layer, acc, momentum in zip(layers, sums, momenta):
        layer._momentum = momentum
        if used:
            for total, buf in zip(acc, _stat_buffers(layer)):
                average = total / used
                all_reduce_mean_(average)
                paddle.assign(average, buf)
        if isinstance(layer, SubBatchNorm3D):
            layer.aggregate_stats()
    model.train(was_training)
    logger.info("Precise BN: recomputed %d BN layers over %d batches", len(layers), used)
    return used
