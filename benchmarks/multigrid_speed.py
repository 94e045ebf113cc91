"""Multigrid speed-up of the shipped 8x8 schedule: compute per epoch (FLOPs) and measured step time.

    python benchmarks/multigrid_speed.py [--width 8] [--batch-size 2] [--cycles 1]

1. Compute: for every phase of ``slowfast_multigrid.yaml``'s schedule, the MACs of one epoch
   (its short-cycle mix of clip shapes, counted on the full-width 8x8 model) relative to an epoch at
   the base shape (32 frames, 224 crop).
2. Time: a small-width 8x8 model (``--width``) with random clips from memory. For each long-cycle
   shape, whole short cycles of batches (as :class:`ShortCycleBatchSampler` yields them) go through
   forward + backward + optimizer step with the sub-batch BN splits the schedule asks for; the
   base shape runs as many clips as the longest of those, in base-size batches with plain BN, half
   before and half after the multigrid shapes (the machine's load drifts). Time per clip × clips
   per epoch gives each phase's epoch time; weighting by the phases' epochs gives the mean
   multigrid epoch, compared with a base epoch of the same number of clips.

To keep the run to a few minutes on a CPU, the per-process base batch is ``--batch-size`` (2; the
shipped config has 8) with ``bn_base_size`` set to match, which scales every batch by the same
factor and leaves the schedule (epochs, shapes, batch factors, sub-BN splits) unchanged.

The total-time ratio compares the whole schedule (358 multigrid epochs) with 196 base epochs.
"""
from __future__ import annotations

import argparse
import time
from typing import Dict, List, Tuple

import paddle

from paddlevideo.loader.samplers import ShortCycleBatchSampler
from paddlevideo.modeling.builder import build_model
from paddlevideo.modeling.flops import count_gmacs, slowfast_inputs
from paddlevideo.multigrid import EpochShape, MultigridSchedule, build_multigrid_schedule
from paddlevideo.solver.lr import build_lr
from paddlevideo.solver.optimizer import build_optimizer
from paddlevideo.utils.config import get_config

CONFIG = "configs/recognition/slowfast/slowfast_multigrid.yaml"
BASE_EPOCHS = 196          # the normal (non-multigrid) schedule the speed-up is quoted against
PADDLEVIDEO_RATIO = 78.76 / 27.25


def cycle_batches(shape: EpochShape, cycles: int) -> List[Tuple[int, int, int]]:
    """(batch size, T, crop) of ``cycles`` whole short cycles at ``shape``, in sampler order."""
    num_clips = sum(shape.short_cycle_batch_sizes) * cycles
    sampler = ShortCycleBatchSampler(num_clips, shape.short_cycle_batch_sizes, shuffle=False,
                                     num_replicas=1, rank=0)
    return [(len(batch), shape.num_frames, shape.short_cycle_crop_sizes[batch[0][1]])
            for batch in sampler]


def relative_compute(schedule: MultigridSchedule, model: paddle.nn.Layer,
                     alpha: int) -> Dict[int, float]:
    """Phase index → MACs of one epoch relative to a base-shape epoch (same clip count)."""
    cache: Dict[Tuple[int, int], float] = {}

    def gmacs(num_frames: int, crop: int) -> float:
        if (num_frames, crop) not in cache:
            cache[(num_frames, crop)] = count_gmacs(
                model, slowfast_inputs(num_frames, crop, alpha), mode="infer")
        return cache[(num_frames, crop)]

    s = schedule.settings
    base = gmacs(s.num_frames, s.crop_size)
    result = {}
    for phase in schedule.phases:
        batches = cycle_batches(schedule.shape_at(phase.start_epoch), 1)
        clips = sum(b for b, _, _ in batches)
        result[phase.index] = sum(b * gmacs(t, c) for b, t, c in batches) / clips / base
    return result


class StepTimer:
    """Times training steps of a small-width 8x8 on random in-memory clips."""

    def __init__(self, cfg, width: int) -> None:
        self.cfg = cfg
        self.width = width
        self.alpha = cfg.MODEL.backbone.alpha
        self.num_classes = cfg.MODEL.head.num_classes

    def _model_and_optimizer(self, bn_num_splits: int):
        model_cfg = self.cfg.MODEL
        model_cfg.backbone.update(width_per_group=self.width, bn_num_splits=bn_num_splits,
                                  bn_norm_type="sub_batchnorm" if bn_num_splits > 1
                                  else "batchnorm")
        model_cfg.head.width_per_group = self.width
        paddle.seed(0)
        model = build_model(model_cfg)
        model.train()
        lr = build_lr(self.cfg.OPTIMIZER.learning_rate, num_iters=100)
        return model, build_optimizer(self.cfg.OPTIMIZER, lr, model)

    def seconds_per_clip(self, batches: List[Tuple[int, int, int]],
                         bn_num_splits: int) -> Tuple[float, float]:
        """Mean forward + backward + optimizer-step time per clip over ``batches``, as
        (CPU time of this process, wall time)."""
        model, optimizer = self._model_and_optimizer(bn_num_splits)
        data = {}
        for size, frames, crop in set(batches):   # clips are made before the clock starts
            labels = paddle.randint(0, self.num_classes, [size, 1])
            data[(size, frames, crop)] = slowfast_inputs(frames, crop, self.alpha, size) + [labels]
        _, frames, crop = batches[-1]
        warm_up = slowfast_inputs(frames, crop, self.alpha, bn_num_splits)
        self._step(model, optimizer, warm_up + [paddle.zeros([bn_num_splits, 1], "int64")])
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        for key in batches:
            self._step(model, optimizer, data[key])
        clips = sum(size for size, _, _ in batches)
        return ((time.process_time() - start_cpu) / clips,
                (time.perf_counter() - start_wall) / clips)

    @staticmethod
    def _step(model, optimizer, batch) -> None:
        loss = model(batch, mode="train")["loss"]
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        float(loss)


def _show(label: str, seconds: Tuple[float, float]) -> None:
    print(f"  {label}: {seconds[0]:.3f} s/clip CPU, {seconds[1]:.3f} s/clip wall")


def measure_times(schedule: MultigridSchedule, timer: StepTimer, cycles: int
                  ) -> Tuple[Tuple[float, float], Dict[Tuple[int, int], Tuple[float, float]]]:
    """(CPU, wall) seconds per clip at the base shape and at each long-cycle shape (T, crop)."""
    s = schedule.settings
    base_clips = max(sum(schedule.shape_at(p.start_epoch).short_cycle_batch_sizes) * cycles
                     for p in schedule.phases)
    half = [(s.batch_size, s.num_frames, s.crop_size)] * max(base_clips // s.batch_size // 2, 1)
    base_label = f"base {s.num_frames}x{s.crop_size}, batch {s.batch_size}"
    base_first = timer.seconds_per_clip(half, bn_num_splits=1)
    _show(base_label, base_first)
    per_shape = {}
    for phase in schedule.phases:
        shape = schedule.shape_at(phase.start_epoch)
        key = (shape.num_frames, shape.crop_size)
        if key not in per_shape:
            per_shape[key] = timer.seconds_per_clip(cycle_batches(shape, cycles),
                                                    shape.bn_num_splits)
            _show(f"{key[0]}x{key[1]}, batches {list(shape.short_cycle_batch_sizes)}, "
                  f"sub-BN {shape.bn_num_splits}", per_shape[key])
    base_last = timer.seconds_per_clip(half, bn_num_splits=1)
    _show(base_label, base_last)
    return ((base_first[0] + base_last[0]) / 2, (base_first[1] + base_last[1]) / 2), per_shape


def report(schedule: MultigridSchedule, compute: Dict[int, float],
           base_time: Tuple[float, float],
           shape_times: Dict[Tuple[int, int], Tuple[float, float]]) -> None:
    print(f"\n{'phase':>5} {'epochs':>9} {'T':>3} {'crop':>4} {'batches':>10} "
          f"{'compute/epoch':>13} {'CPU/epoch':>9} {'wall/epoch':>10}")
    weighted = [0.0, 0.0, 0.0]          # compute, CPU time, wall time; × epochs
    for phase in schedule.phases:
        shape = schedule.shape_at(phase.start_epoch)
        times = shape_times[(shape.num_frames, shape.crop_size)]
        relative = [compute[phase.index], times[0] / base_time[0], times[1] / base_time[1]]
        weighted = [w + r * phase.num_epochs for w, r in zip(weighted, relative)]
        batches = "/".join(str(b) for b in shape.short_cycle_batch_sizes)
        print(f"{phase.index + 1:>5} {f'{phase.start_epoch + 1}-{phase.end_epoch}':>9} "
              f"{shape.num_frames:>3} {shape.crop_size:>4} {batches:>10} "
              f"{relative[0]:>13.3f} {relative[1]:>9.3f} {relative[2]:>10.3f}")
    total = schedule.total_epochs
    labels = ("compute (FLOPs)", "measured CPU time", "measured wall time")
    print(f"\nPer epoch (mean over {total} multigrid epochs) vs a base epoch; target >= "
          f"{PADDLEVIDEO_RATIO:.2f}x (PaddleVideo: 78.76 vs 27.25 min on 8 GPUs):")
    for label, value in zip(labels, weighted):
        print(f"  {label:<19} {total / value:.2f}x faster")
    print(f"Whole schedule ({total} multigrid epochs vs {BASE_EPOCHS} base epochs):")
    for label, value in zip(labels, weighted):
        print(f"  {label:<19} {BASE_EPOCHS / value:.2f}x less")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=8, help="width_per_group of the timed model")
    parser.add_argument("--batch-size", type=int, default=2,
                        help="per-process base batch for the timing (the config has 8)")
    parser.add_argument("--cycles", type=int, default=1, help="short cycles timed per shape")
    args = parser.parse_args()
    paddle.set_device("cpu")
    cfg = get_config(CONFIG)
    schedule = build_multigrid_schedule(cfg)
    print(schedule.table())
    print("\nCounting MACs per clip shape (full-width 8x8)...")
    full_model = build_model(cfg.MODEL)
    compute = relative_compute(schedule, full_model, cfg.MODEL.backbone.alpha)
    del full_model
    print(f"Timing training steps (width_per_group {args.width}, random clips in memory)...")
    cfg.MULTIGRID.default_batch_size = cfg.MULTIGRID.bn_base_size = args.batch_size
    timed_schedule = build_multigrid_schedule(cfg)
    base_time, shape_times = measure_times(timed_schedule, StepTimer(cfg, args.width),
                                           args.cycles)
    report(timed_schedule, compute, base_time, shape_times)


if __name__ == "__main__":
    main()
