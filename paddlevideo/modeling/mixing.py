"""Mixup and CutMix on clips: two clips of a batch blended (mixup) or one pasted into the other
as a box (cutmix), the same weight and box on every frame of both pathways, and the loss
weighted between the two labels.

A draw is made once per batch from Paddle's generator (which training seeds per iteration), so a
resumed run mixes the batches it would have mixed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import paddle

Box = Tuple[int, int, int, int]  # top, left, height, width


@dataclass(frozen=True)
class MixDraw:
    """One batch's mixing: clip ``i`` is mixed with clip ``partner[i]``; its label weight is
    ``lam`` (the other label gets ``1 - lam``); ``box`` is set for cutmix."""

    lam: float
    partner: np.ndarray
    box: Optional[Box] = None


def cutmix_box(height: int, width: int, lam: float, centre: Tuple[float, float]) -> Box:
    """The box of area ``≈ (1 - lam) · H · W`` centred at ``centre`` (fractions of H and W),
    clipped to the frame."""
    ratio = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(centre[0] * height), int(centre[1] * width)
    top, bottom = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
    left, right = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
    return int(top), int(left), int(bottom - top), int(right - left)


def draw_mix(batch: int, height: int, width: int, mixup_alpha: float, cutmix_alpha: float,
             switch_prob: float, rng: np.random.Generator) -> MixDraw:
    """A mixup draw (``lam ~ Beta(a, a)``), or a cutmix draw when only cutmix is on or, with
    both on, with probability ``switch_prob``; cutmix's ``lam`` is the box's true share."""
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < switch_prob)
    partner = rng.permutation(batch)
    if not use_cutmix:
        return MixDraw(float(rng.beta(mixup_alpha, mixup_alpha)), partner)
    lam = float(rng.beta(cutmix_alpha, cutmix_alpha))
    box = cutmix_box(height, width, lam, (rng.random(), rng.random()))
    lam = 1.0 - box[2] * box[3] / float(height * width)
    return MixDraw(lam, partner, box)


def mix_clips(inputs: List[paddle.Tensor], draw: MixDraw) -> List[paddle.Tensor]:
    """``[slow [N,C,Ts,H,W], fast [N,C,Tf,H,W]]`` mixed as ``draw`` says (new tensors)."""
    index = paddle.to_tensor(draw.partner, dtype="int64")
    mixed = []
    for x in inputs:
        other = paddle.index_select(x, index, axis=0)
        if draw.box is None:
            mixed.append(draw.lam * x + (1.0 - draw.lam) * other)
            continue
        top, left, h, w = draw.box
        mask = np.zeros(x.shape[-2:], dtype="float32")
        mask[top:top + h, left:left + w] = 1.0
        mask = paddle.to_tensor(mask, dtype=x.dtype)
        mixed.append(x * (1.0 - mask) + other * mask)
    return mixed


def batch_rng() -> np.random.Generator:
    """A NumPy generator seeded from Paddle's (seeded per training iteration)."""
    seed = int(paddle.randint(0, 2**31 - 1, [1]).numpy()[0])
    return np.random.default_rng(seed)
