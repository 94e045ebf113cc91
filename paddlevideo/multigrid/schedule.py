"""The multigrid schedule (Wu et al., arXiv 1912.00998): which clip shape each epoch trains on.

The *long cycle* walks through coarse-to-fine shapes ``(T, S)`` inside every LR interval, with a
per-process batch ``bs × factor`` so that a batch costs about as much as one at the base shape. The
*short cycle* alternates, batch by batch, two smaller crops with proportionally larger batches and
the long-cycle shape. Epochs in an LR interval are shared among the long-cycle shapes in proportion
to their average batch factor, a fine-tuning phase at the base shape follows, and everything is
scaled to ``epochs × epoch_factor``. Because most epochs use cheap shapes, the schedule takes more
epochs than the base one but much less compute.

Everything here is pure Python on the config; the training loop asks :class:`MultigridSchedule`
for the shape at an epoch (:meth:`~MultigridSchedule.shape_at`), the rewritten LR parameters
(:attr:`~MultigridSchedule.lr_params`) and whether to evaluate (``is_eval_epoch``). Epochs are
0-based in the API and 1-based in the printed table.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..utils.config import ConfigError
from ..utils.schema import section_defaults

__all__ = ["EpochShape", "LongCycleShape", "LRSettings", "MultigridSchedule",
           "MultigridSettings", "Phase", "build_multigrid_schedule", "long_cycle_shapes",
           "read_multigrid_settings", "short_cycle_batch_factors", "sub_bn_splits"]


@dataclass(frozen=True)
class LRSettings:
    """The piecewise LR of the config (``OPTIMIZER.learning_rate``) before the rewrite."""
    steps: Tuple[int, ...]
    lrs: Tuple[float, ...]
    gamma: float
    max_epoch: int
    warmup_epochs: float
    warmup_start_lr: float
    step_base_lr: float


@dataclass(frozen=True)
class MultigridSettings:
    """``MULTIGRID`` keys with their defaults resolved from the rest of the config."""
    long_cycle: bool
    short_cycle: bool
    eval_freq: int
    batch_size: int          # per process, at the base shape
    num_frames: int          # base T (train decode sampler)
    crop_size: int           # base S (train MultiCrop)
    sampling_rate: int       # base frame stride
    min_size: int            # base JitterScale min short side
    epoch_factor: float
    bn_base_size: int
    long_cycle_factors: Tuple[Tuple[float, float], ...]
    short_cycle_factors: Tuple[float, ...]
    epochs: int
    val_interval: int
    lr: LRSettings

    def interval_lr(self, interval: int) -> float:
        """LR factor of an original LR interval: ``lrs[i]``, or ``gamma ** i`` past its end."""
        if interval < len(self.lr.lrs):
            return self.lr.lrs[interval]
        return self.lr.gamma ** interval

    def with_epoch_factor(self, epoch_factor: float) -> MultigridSettings:
        return replace(self, epoch_factor=epoch_factor)


@dataclass(frozen=True)
class LongCycleShape:
    """A long-cycle clip shape: ``num_frames`` (T), ``crop_size`` (S) and the batch factor
    ``round(T0·S0² / (T·S²))`` relative to the base shape ``(T0, S0)``."""
    num_frames: int
    crop_size: int
    batch_factor: int


@dataclass(frozen=True)
class Phase:
    """Epochs ``[start_epoch, end_epoch)`` (0-based, end exclusive) trained on one long-cycle
    shape. ``lr_interval`` is the index of the original LR interval it belongs to; the
    fine-tuning phase has ``lr_interval == len(steps) - 1``."""
    index: int
    lr_interval: int
    shape: LongCycleShape
    start_epoch: int
    end_epoch: int

    @property
    def num_epochs(self) -> int:
        return self.end_epoch - self.start_epoch


@dataclass(frozen=True)
class EpochShape:
    """Everything the data and the model need at one epoch.

    ``batch_size`` is per process (``bs × batch_factor``); ``sampling_rate`` keeps the clip's
    temporal span; ``bn_num_splits`` is the number of sub-batches for sub-batch BN (1 → plain BN).
    With the short cycle, ``short_cycle_batch_sizes``/``short_cycle_crop_sizes``/
    ``short_cycle_min_sizes`` have three entries (two short shapes, then the long one) indexed by
    the sampler's short-cycle index; without it, one entry.
    """
    phase_index: int
    num_frames: int
    crop_size: int
    batch_factor: int
    batch_size: int
    sampling_rate: int
    bn_num_splits: int
    short_cycle_batch_sizes: Tuple[int, ...]
    short_cycle_crop_sizes: Tuple[int, ...]
    short_cycle_min_sizes: Tuple[int, ...]

    @property
    def bn_norm_type(self) -> str:
        return "sub_batchnorm" if self.bn_num_splits > 1 else "batchnorm"


def _batch_factor(settings: MultigridSettings, num_frames: float, crop_size: float) -> int:
    base_cost = settings.num_frames * settings.crop_size ** 2
    return int(round(base_cost / (num_frames * crop_size ** 2)))


def long_cycle_shapes(settings: MultigridSettings) -> List[LongCycleShape]:
    """The long-cycle shapes from ``long_cycle_factors`` (t, s): T = round(T0·t), S = round(S0·s).

    For the shipped config: (8,158,×8), (16,158,×4), (16,224,×2), (32,224,×1).
    """
    shapes = []
    for t_factor, s_factor in settings.long_cycle_factors:
        num_frames = int(round(settings.num_frames * t_factor))
        crop_size = int(round(settings.crop_size * s_factor))
        shapes.append(LongCycleShape(num_frames, crop_size,
                                     _batch_factor(settings, num_frames, crop_size)))
    return shapes


def _average_batch_factor(settings: MultigridSettings, shape: LongCycleShape) -> float:
    """Mean batch factor over the batches of one long-cycle shape.

    With the short cycle the two short crops ``S0·f`` (unrounded, at the same T) count too, e.g.
    (8, 158): factors 16, 8, 8 → 10.67.
    """
    factors = [shape.batch_factor]
    if settings.short_cycle:
        factors += [_batch_factor(settings, shape.num_frames, settings.crop_size * f)
                    for f in settings.short_cycle_factors]
    return sum(factors) / len(factors)


def short_cycle_batch_factors(crop_size: int, base_crop_size: int,
                              short_cycle_factors: Sequence[float]) -> List[int]:
    """Batch multipliers of the short-cycle batches relative to the long-cycle batch:
    ``round((S / (f·S0))²)`` for each short factor f, then 1 for the long shape itself.

    S = 224 (S0 = 224, f = 0.5, 0.7071) → [4, 2, 1]; S = 158 → [2, 1, 1].
    """
    factors = [int(round((crop_size / (f * base_crop_size)) ** 2)) for f in short_cycle_factors]
    return [max(f, 1) for f in factors] + [1]


def sub_bn_splits(batch_size: int, bn_base_size: int) -> int:
    """Sub-batches that keep BN statistics over ``bn_base_size`` clips: ``batch / bn_base``,
    lowered to a divisor of the batch so every split has the same size (1 → plain BN)."""
    splits = max(batch_size // max(bn_base_size, 1), 1)
    while batch_size % splits:
        splits -= 1
    return splits


def _unscaled_phases(settings: MultigridSettings, shapes: List[LongCycleShape],
                     steps: Sequence[int], max_epoch: int
                     ) -> List[Tuple[int, LongCycleShape, float]]:
    """(lr interval, shape, epochs) before scaling: each LR interval is split among the shapes in
    proportion to their average batch factor; the fine-tuning phase gets the same iteration
    saving as the rest."""
    avg_factors = [_average_batch_factor(settings, s) for s in shapes]
    total_factor = sum(avg_factors)
    phases = []
    total_iters = 0.0
    for interval in range(len(steps) - 1):
        interval_epochs = steps[interval + 1] - steps[interval]
        for shape, avg in zip(shapes, avg_factors):
            epochs = interval_epochs * avg / total_factor
            total_iters += epochs / avg
            phases.append((interval, shape, epochs))
    iter_saving = (steps[-1] - steps[0]) / total_iters
    finetune_epochs = (max_epoch - steps[-1]) / iter_saving * avg_factors[-1]
    base_shape = LongCycleShape(settings.num_frames, settings.crop_size, 1)
    phases.append((len(steps) - 1, base_shape, finetune_epochs))
    return phases


def compute_long_cycle_phases(settings: MultigridSettings, steps: Sequence[int],
                              max_epoch: int, total_epochs: float) -> List[Phase]:
    """The long-cycle phases, scaled so they end at ``round(total_epochs)``."""
    shapes = long_cycle_shapes(settings)
    unscaled = _unscaled_phases(settings, shapes, steps, max_epoch)
    scale = total_epochs / sum(epochs for _, _, epochs in unscaled)
    phases: List[Phase] = []
    cumulative = 0.0
    for index, (interval, shape, epochs) in enumerate(unscaled):
        cumulative += epochs * scale
        start = phases[-1].end_epoch if phases else 0
        phases.append(Phase(index, interval, shape, start, int(round(cumulative))))
    return phases


def _clean(value: float) -> float:
    """Drop float noise such as 0.08000000000000002 (from 0.1**2 × 8)."""
    return float(f"{value:.12g}")


def rewrite_lr_params(settings: MultigridSettings, phases: Sequence[Phase]) -> Dict[str, Any]:
    """Piecewise LR parameters for the long cycle: one step per phase, LR factor
    ``lrs[interval] × batch_factor`` (the LR grows with the batch); the fine-tuning phase is split
    in two halves, keeping the previous LR for the first half."""
    lr = settings.lr
    steps = [0] + [p.end_epoch for p in phases]
    steps[-1] = (steps[-2] + steps[-1]) // 2
    factors = [_clean(settings.interval_lr(p.lr_interval) * p.shape.batch_factor) for p in phases]
    lrs = factors[:-1] + [factors[-2], factors[-1]]
    return {"steps": steps, "lrs": lrs, "max_epoch": phases[-1].end_epoch,
            "warmup_epochs": lr.warmup_epochs, "warmup_start_lr": lr.warmup_start_lr,
            "step_base_lr": lr.step_base_lr}


def _scaled_lr_params(settings: MultigridSettings) -> Dict[str, Any]:
    """Short cycle only: the original steps and max epoch stretched by ``epoch_factor``."""
    lr = settings.lr
    factor = settings.epoch_factor
    return {"steps": [int(s * factor) for s in lr.steps], "lrs": list(lr.lrs),
            "max_epoch": int(lr.max_epoch * factor), "warmup_epochs": lr.warmup_epochs,
            "warmup_start_lr": lr.warmup_start_lr, "step_base_lr": lr.step_base_lr}


class MultigridSchedule:
    """The long/short-cycle schedule of one config (see :func:`build_multigrid_schedule`).

    Attributes: ``settings``; ``phases`` (empty without the long cycle); ``lr_params`` (dict with
    ``steps, lrs, max_epoch, warmup_epochs, warmup_start_lr, step_base_lr`` for
    ``CustomWarmupPiecewiseDecay``); ``total_epochs`` (epochs to train).
    """

    def __init__(self, settings: MultigridSettings) -> None:
        self.settings = settings
        lr = settings.lr
        if settings.long_cycle:
            total = settings.epochs * settings.epoch_factor
            self.phases = compute_long_cycle_phases(settings, lr.steps, lr.max_epoch, total)
            self.lr_params = rewrite_lr_params(settings, self.phases)
            self.total_epochs = self.phases[-1].end_epoch
        else:
            self.phases = []
            if settings.short_cycle:
                self.lr_params = _scaled_lr_params(settings)
                self.total_epochs = int(settings.epochs * settings.epoch_factor)
            else:
                self.lr_params = _scaled_lr_params(settings.with_epoch_factor(1.0))
                self.total_epochs = settings.epochs

    def phase_index(self, epoch: int) -> int:
        """Index of the phase that 0-based ``epoch`` falls in (the last one past the end)."""
        for phase in self.phases:
            if epoch < phase.end_epoch:
                return phase.index
        return len(self.phases) - 1

    def shape_at(self, epoch: int) -> EpochShape:
        """Clip shape, batch, sampling rate and BN splits for 0-based ``epoch``."""
        s = self.settings
        if self.phases:
            index = self.phase_index(epoch)
            shape = self.phases[index].shape
        else:
            index, shape = 0, LongCycleShape(s.num_frames, s.crop_size, 1)
        batch_size = s.batch_size * shape.batch_factor
        if s.short_cycle:
            multipliers = short_cycle_batch_factors(shape.crop_size, s.crop_size,
                                                    s.short_cycle_factors)
            crops = [int(round(f * s.crop_size)) for f in s.short_cycle_factors]
            crops.append(shape.crop_size)
        else:
            multipliers, crops = [1], [shape.crop_size]
        return EpochShape(
            phase_index=index, num_frames=shape.num_frames, crop_size=shape.crop_size,
            batch_factor=shape.batch_factor, batch_size=batch_size,
            sampling_rate=max(int(round(s.sampling_rate * s.num_frames / shape.num_frames)), 1),
            bn_num_splits=sub_bn_splits(batch_size, s.bn_base_size),
            short_cycle_batch_sizes=tuple(batch_size * m for m in multipliers),
            short_cycle_crop_sizes=tuple(crops),
            short_cycle_min_sizes=tuple(int(round(s.min_size * c / s.crop_size))
                                        for c in crops))

    def shape_changes(self, epoch: int) -> bool:
        """True when 0-based ``epoch`` starts a new phase (model and loaders must be rebuilt)."""
        return any(p.start_epoch == epoch for p in self.phases[1:])

    def is_eval_epoch(self, epoch: int, eval_period: Optional[int] = None) -> bool:
        """Evaluate after 0-based ``epoch``? The last epoch always; in each phase every
        ``max(len // EVAL_FREQ + 1, 1)`` epochs counted back from its end. Without the long
        cycle, every ``eval_period`` epochs (default ``settings.val_interval``)."""
        if epoch + 1 == self.total_epochs:
            return True
        if not self.phases:
            period = eval_period or self.settings.val_interval
            return (epoch + 1) % period == 0
        phase = self.phases[self.phase_index(epoch)]
        if epoch >= phase.end_epoch:
            return False
        period = max(phase.num_epochs // self.settings.eval_freq + 1, 1)
        return (phase.end_epoch - 1 - epoch) % period == 0

    def eval_epochs(self) -> List[int]:
        """All evaluation epochs, 1-based (as logged)."""
        return [e + 1 for e in range(self.total_epochs) if self.is_eval_epoch(e)]

    def lr_at(self, epoch: float) -> float:
        """LR after warm-up at ``epoch`` (piecewise constant), for the printed table."""
        params = self.lr_params
        factor = params["lrs"][0]
        for step, lr in zip(params["steps"], params["lrs"]):
            if epoch >= step:
                factor = lr
        return _clean(factor * params["step_base_lr"])

    def table(self) -> str:
        """A printable table of phases: epochs (1-based, inclusive), T, crop, batch, LR."""
        return format_schedule_table(self)


def build_multigrid_schedule(cfg: Any) -> MultigridSchedule:
    """Read ``cfg.MULTIGRID`` (and the batch, sampler, crop, LR and epochs it defaults to)."""
    return MultigridSchedule(read_multigrid_settings(cfg))


def format_schedule_table(schedule: MultigridSchedule) -> str:
    """Phases as rows: 1-based epoch range, T, crop, per-process batch(es), sub-BN splits, LR."""
    s, lr = schedule.settings, schedule.lr_params
    lines = [f"Multigrid schedule: {schedule.total_epochs} epochs (base {s.epochs}), "
             f"long cycle {'on' if s.long_cycle else 'off'}, short cycle "
             f"{'on' if s.short_cycle else 'off'}; LR warm-up {lr['warmup_epochs']} epochs "
             f"from {lr['warmup_start_lr']}",
             f"{'phase':>5}  {'epochs':>9}  {'T':>3}  {'crop':>4}  {'batch':>12}  "
             f"{'sub-BN':>6}  LR"]
    ranges = [(p.index, p.start_epoch, p.end_epoch) for p in schedule.phases]
    for index, start, end in ranges or [(0, 0, schedule.total_epochs)]:
        shape = schedule.shape_at(start)
        batches = "/".join(str(b) for b in shape.short_cycle_batch_sizes)
        lr_text = str(schedule.lr_at(start))
        for step in lr["steps"]:
            if start < step < end:
                lr_text += f" -> {schedule.lr_at(step)} from {step + 1}"
        lines.append(f"{index + 1:>5}  {f'{start + 1}-{end}':>9}  {shape.num_frames:>3}  "
                     f"{shape.crop_size:>4}  {batches:>12}  {shape.bn_num_splits:>6}  {lr_text}")
    return "\n".join(lines)


# ---------------------------------------------------------------- reading the config



def _section(cfg: Any, key: str) -> Dict[str, Any]:
    value = cfg.get(key) if hasattr(cfg, "get") else None
    return value if isinstance(value, dict) else {}


def _required(section: Dict[str, Any], key: str, where: str) -> Any:
    if key not in section or section[key] is None:
        raise ConfigError(f"config key {where}.{key} is required for multigrid training")
    return section[key]


def _train_transform_args(cfg: Any, name: str) -> Dict[str, Any]:
    """kwargs of the ``name`` step in ``PIPELINE.train.transform`` (empty if absent)."""
    steps = _section(_section(cfg, "PIPELINE"), "train").get("transform") or []
    for step in steps:
        if isinstance(step, dict) and name in step:
            return step[name] or {}
    return {}


def _parse_long_cycle_factors(raw: Any) -> Tuple[Tuple[float, float], ...]:
    """``[{value: [t, s]}, ...]`` (PaddleVideo) or ``[[t, s], ...]``."""
    factors = []
    for i, item in enumerate(raw):
        pair = item.get("value") if isinstance(item, dict) else item
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ConfigError(f"MULTIGRID.long_cycle_factors[{i}] must be [t, s] or "
                              f"{{value: [t, s]}}, got {item!r}")
        factors.append((float(pair[0]), float(pair[1])))
    if not factors:
        raise ConfigError("MULTIGRID.long_cycle_factors must list at least one [t, s]")
    return tuple(factors)


def _read_lr_settings(cfg: Any, epochs: int) -> LRSettings:
    lr = _section(_section(cfg, "OPTIMIZER"), "learning_rate")
    step_base_lr = float(lr.get("step_base_lr", lr.get("base_lr", 0.1)))
    return LRSettings(
        steps=tuple(int(s) for s in lr.get("steps") or ()),
        lrs=tuple(float(x) for x in lr.get("lrs") or ()),
        gamma=float(lr.get("gamma", 0.1)), max_epoch=int(lr.get("max_epoch", epochs)),
        warmup_epochs=lr.get("warmup_epochs", 0),
        warmup_start_lr=float(lr.get("warmup_start_lr", step_base_lr)),
        step_base_lr=step_base_lr)


def _base_shape(cfg: Any, mg: Dict[str, Any]) -> Tuple[int, int, int, int, int]:
    """(batch, T, S, sampling rate, jitter min size), from MULTIGRID or the rest of the config."""
    batch = int(mg.get("default_batch_size") or 0) or int(
        _required(_section(cfg, "DATASET"), "batch_size", "DATASET"))
    sampler = _section(_section(cfg, "PIPELINE"), "train").get("decode_sampler") or {}
    frames = int(mg.get("default_temporal_size") or 0) or int(
        _required(sampler, "num_frames", "PIPELINE.train.decode_sampler"))
    crop = int(mg.get("default_crop_size") or 0) or int(
        _required(_train_transform_args(cfg, "MultiCrop"), "target_size",
                  "PIPELINE.train.transform.MultiCrop"))
    rate = int(sampler.get("sampling_rate", 1))
    min_size = int(_train_transform_args(cfg, "JitterScale").get("min_size", 256))
    return batch, frames, crop, rate, min_size


def read_multigrid_settings(cfg: Any) -> MultigridSettings:
    """Resolve ``cfg.MULTIGRID`` against the batch size, decode sampler, crop, LR and epochs."""
    mg = {**section_defaults("MULTIGRID"), **_section(cfg, "MULTIGRID")}
    batch, frames, crop, rate, min_size = _base_shape(cfg, mg)
    epochs = int(cfg.get("epochs", 0) or 0)
    lr = _read_lr_settings(cfg, epochs)
    epochs = epochs or lr.max_epoch
    settings = MultigridSettings(
        long_cycle=bool(mg["LONG_CYCLE"]),
        short_cycle=bool(mg["SHORT_CYCLE"]),
        eval_freq=int(mg["EVAL_FREQ"]), batch_size=batch, num_frames=frames,
        crop_size=crop, sampling_rate=rate, min_size=min_size,
        epoch_factor=float(mg["epoch_factor"]),
        bn_base_size=int(mg["bn_base_size"]),
        long_cycle_factors=_parse_long_cycle_factors(
            mg["long_cycle_factors"] or section_defaults("MULTIGRID")["long_cycle_factors"]),
        short_cycle_factors=tuple(float(f) for f in
                                  mg["short_cycle_factors"]
                                  or section_defaults("MULTIGRID")["short_cycle_factors"]),
        epochs=epochs, val_interval=int(cfg.get("val_interval", 1) or 1), lr=lr)
    if not lr.steps or not lr.lrs:  # a cosine schedule has neither: nothing to rewrite
        raise ConfigError("multigrid training needs a piecewise LR: OPTIMIZER.learning_rate."
                          "steps and .lrs (CustomWarmupPiecewiseDecay, as in "
                          "slowfast_multigrid.yaml)", key="OPTIMIZER.learning_rate")
    if settings.long_cycle and len(lr.steps) < 2:
        raise ConfigError("MULTIGRID.LONG_CYCLE needs a piecewise LR: "
                          "OPTIMIZER.learning_rate.steps must list at least two epochs")
    if settings.short_cycle and len(settings.short_cycle_factors) != 2:
        raise ConfigError("MULTIGRID.short_cycle_factors must have two entries, got "
                          f"{list(settings.short_cycle_factors)}")
    if settings.eval_freq < 1:
        raise ConfigError(f"MULTIGRID.EVAL_FREQ must be >= 1, got {settings.eval_freq}")
    return settings
