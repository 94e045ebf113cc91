"""Training checkpoints as units: weights ``.pdparams``, optimizer/LR/scaler state ``.pdopt`` and
a manifest ``.json`` written last that ties the two (sizes, hashes, epoch, iteration, run).

:class:`CheckpointLayout` names every file of a run; :func:`checkpoint_contents` is the one place
that aggregates sub-batch BN statistics and checks finiteness before a save."""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import paddle.nn as nn

from ..modeling.layers import aggregate_sub_bn_stats
from ..utils.checkpoint import (
    CheckpointError,
    NonFiniteCheckpointError,
    load,
    load_weights,
    non_finite_entries,
    save,
)
from ..utils.fileio import write_text_atomic
from ..utils.logger import get_logger

logger = get_logger()

MANIFEST_FORMAT = "paddlevideo-checkpoint/1"
_MANIFEST_RE = re.compile(r"_epoch_(\d{5,})(?:_iter_(\d{6,}))?\.json$")


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def unwrap(model: nn.Layer) -> nn.Layer:
    """The plain model inside a ``paddle.DataParallel`` (or fleet) wrapper."""
    return getattr(model, "_layers", model)


@dataclass(frozen=True)
class CheckpointLayout:
    """Every file name of a run's checkpoints in ``output_dir``; nothing else spells them.

    - a unit: ``{model_name}_epoch_{epoch:05d}`` at an epoch end, ``..._iter_{iteration:06d}``
      for a save ``iteration`` iterations into the epoch after ``epoch`` completed ones; each
      with ``.pdparams`` (weights), ``.pdopt`` (optimizer/LR/scaler state) and ``.json``
      (the manifest, written last);
    - a legacy pair: an epoch-end unit's ``.pdparams`` + ``.pdopt`` without a manifest (an
      earlier version of this project, or PaddleVideo);
    - the best model: ``{model_name}_best.pdparams``.
    """

    output_dir: str
    model_name: str

    def stem(self, epoch: int, iteration: int = 0) -> str:
        """Path without suffix of the unit at ``epoch`` completed epochs + ``iteration``."""
        stem = f"{self.model_name}_epoch_{epoch:05d}"
        return os.path.join(self.output_dir,
                            stem + (f"_iter_{iteration:06d}" if iteration else ""))

    def unit_paths(self, epoch: int, iteration: int = 0) -> Dict[str, str]:
        """``{"model": .pdparams, "state": .pdopt, "manifest": .json}`` of one unit."""
        stem = self.stem(epoch, iteration)
        return {"model": stem + ".pdparams", "state": stem + ".pdopt",
                "manifest": stem + ".json"}

    @property
    def best(self) -> str:
        """The best model's weights."""
        return os.path.join(self.output_dir, f"{self.model_name}_best.pdparams")

    def _names(self) -> List[str]:
        return sorted(os.listdir(self.output_dir)) if os.path.isdir(self.output_dir) else []

    def manifests(self) -> List[str]:
        """Every manifest of the run's units in the folder (complete units or not)."""
        prefix = f"{self.model_name}_epoch_"
        return [os.path.join(self.output_dir, name) for name in self._names()
                if name.startswith(prefix) and _MANIFEST_RE.search(name)]

    def manifests_newest_first(self) -> List[str]:
        """:meth:`manifests` ordered by the point each unit saved, newest first."""
        def position(path: str) -> Tuple[int, int]:
            match = _MANIFEST_RE.search(path)
            return (int(match.group(1)), int(match.group(2) or 0)) if match else (-1, -1)

        return sorted(self.manifests(), key=position, reverse=True)

    def legacy_unit(self, epoch: int) -> Optional[CheckpointUnit]:
        """Epoch ``epoch``'s ``.pdparams`` + ``.pdopt`` pair (manifest or not), if both exist."""
        paths = self.unit_paths(epoch)
        if os.path.isfile(paths["model"]) and os.path.isfile(paths["state"]):
            return CheckpointUnit(paths["model"], paths["state"], epoch)
        return None

    def legacy_epochs(self) -> List[int]:
        """Epochs with a ``.pdparams`` + ``.pdopt`` pair in the folder."""
        pattern = re.compile(rf"^{re.escape(self.model_name)}_epoch_(\d{{5,}})\.pdparams$")
        return sorted(int(m.group(1)) for m in map(pattern.match, self._names())
                      if m and self.legacy_unit(int(m.group(1))))

    def run_files(self) -> List[str]:
        """Every checkpoint file of the run in the folder (units, pairs, best), as paths."""
        prefix, best = f"{self.model_name}_epoch_", os.path.basename(self.best)
        return [os.path.join(self.output_dir, name) for name in self._names()
                if (name.startswith(prefix) or name == best)
                and os.path.isfile(os.path.join(self.output_dir, name))]


@dataclass(frozen=True)
class SavePoint:
    """Where training is at a save: ``epoch`` completed epochs (1-based at an epoch end) plus
    ``iteration`` iterations of the next one; ``global_step`` iterations in all."""

    epoch: int
    iteration: int = 0
    global_step: int = 0


def checkpoint_contents(model: nn.Layer, optimizer: Any, point: SavePoint,
                        extra: Optional[Dict[str, Any]] = None,
                        name: str = "checkpoint") -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``(weights, state)`` of a save: sub-batch BN statistics aggregated into the plain BN
    buffers (so the file holds current ones), the optimizer state by structured names plus
    ``epoch``, ``iteration`` and ``extra``. Every weight, BN buffer and optimizer accumulator
    is checked to be finite here, once: :class:`NonFiniteCheckpointError` (naming ``name``)
    otherwise. Any process may call it; the model is the same on all."""
    plain = unwrap(model)
    aggregate_sub_bn_stats(plain)
    weights = plain.state_dict()
    state = {"optimizer": optimizer_state_by_structured_name(optimizer, plain),
             "epoch": point.epoch, "iteration": point.iteration}
    state.update(extra or {})
    bad = non_finite_entries(weights) + [f"optimizer.{k}" for k in
                                         non_finite_entries(state["optimizer"])]
    if bad:
        raise NonFiniteCheckpointError(name, bad)
    return weights, state


def write_unit(layout: CheckpointLayout, point: SavePoint, weights: Dict[str, Any],
               state: Dict[str, Any], run_identity: Optional[Dict[str, Any]] = None) -> str:
    """Write one unit of :func:`checkpoint_contents`; return its ``.pdparams`` path.

    Order: the unit's old manifest is removed (it must never vouch for the new files), then
    ``.pdparams``, ``.pdopt`` and last the manifest ``.json`` (sizes and SHA-256 of both files,
    epoch, iteration, ``global_step``, ``run_identity``), each atomically. A unit counts only
    when its manifest is there and matches its files, so an interrupted save is never resumed
    from. The loop calls it on the writing process (rank 0) only, with ``run_identity(cfg)``.
    """
    paths = layout.unit_paths(point.epoch, point.iteration)
    manifest_path = paths.pop("manifest")
    if os.path.exists(manifest_path):
        os.remove(manifest_path)
    save(weights, paths["model"])
    save(state, paths["state"])
    manifest = {
        "format": MANIFEST_FORMAT, "model_name": layout.model_name, "epoch": point.epoch,
        "iteration": point.iteration, "global_step": point.global_step, "run": run_identity,
        "files": {role: {"name": os.path.basename(path), "bytes": os.path.getsize(path),
                         "sha256": file_sha256(path)} for role, path in paths.items()},
    }
    write_text_atomic(manifest_path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return paths["model"]


def save_training_checkpoint(layout: CheckpointLayout, point: SavePoint, model: nn.Layer,
                             optimizer: Any, extra: Optional[Dict[str, Any]] = None,
                             run_identity: Optional[Dict[str, Any]] = None) -> str:
    """:func:`checkpoint_contents` then :func:`write_unit`: nothing is written when an entry
    is not finite. Returns the unit's ``.pdparams`` path."""
    name = layout.unit_paths(point.epoch, point.iteration)["model"]
    weights, state = checkpoint_contents(model, optimizer, point, extra, name)
    return write_unit(layout, point, weights, state, run_identity)


@dataclass
class CheckpointUnit:
    """One checkpoint: its files, the point of training it holds and the run that wrote it.

    ``epoch`` completed epochs plus ``iteration`` iterations of the next one; ``global_step``
    optimizer iterations in all. ``identity`` is ``{"config_hash", "seed"}`` (None when the
    writer gave none); ``manifest_path`` is None for a legacy pair (no manifest: an earlier
    version of this project, or PaddleVideo).
    """

    model_path: str
    state_path: str
    epoch: int
    iteration: int = 0
    global_step: int = 0
    identity: Optional[Dict[str, Any]] = None
    manifest_path: Optional[str] = None
    files: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    def verify(self) -> None:
        """Raise :class:`CheckpointError` unless both files still have the manifest's size and
        SHA-256 (no-op for a legacy pair)."""
        for role, path in (("model", self.model_path), ("state", self.state_path)):
            expected = self.files.get(role)
            if expected is None:
                continue
            if not os.path.isfile(path) or os.path.getsize(path) != expected["bytes"] \
                    or file_sha256(path) != expected["sha256"]:
                raise CheckpointError(f"{path} is not the file {self.manifest_path} was written "
                                      f"with (size or SHA-256 differs); it cannot be resumed")


def read_manifest(path: str) -> CheckpointUnit:
    """The unit a manifest describes; :class:`CheckpointError` naming ``path`` when it is not a
    manifest or its files are missing or of another size."""
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, expected {MANIFEST_FORMAT!r}")
        folder = os.path.dirname(path)
        files = manifest["files"]
        unit = CheckpointUnit(
            model_path=os.path.join(folder, files["model"]["name"]),
            state_path=os.path.join(folder, files["state"]["name"]),
            epoch=int(manifest["epoch"]), iteration=int(manifest["iteration"]),
            global_step=int(manifest["global_step"]), identity=manifest.get("run"),
            manifest_path=path, files=files)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: not a checkpoint manifest ({err})") from None
    for role, path_of in (("model", unit.model_path), ("state", unit.state_path)):
        if not os.path.isfile(path_of):
            raise CheckpointError(f"{path}: its file {path_of} is missing")
        if os.path.getsize(path_of) != files[role]["bytes"]:
            raise CheckpointError(f"{path}: {path_of} has {os.path.getsize(path_of)} bytes, "
                                  f"the manifest says {files[role]['bytes']}")
    return unit


def unit_stem(output_dir: str, model_name: str, epoch: int, iteration: int = 0) -> str:
    """:meth:`CheckpointLayout.stem`."""
    return CheckpointLayout(output_dir, model_name).stem(epoch, iteration)


def manifest_paths(output_dir: str, model_name: str) -> List[str]:
    """:meth:`CheckpointLayout.manifests`."""
    return CheckpointLayout(output_dir, model_name).manifests()


def complete_checkpoints(output_dir: str, model_name: str) -> List[CheckpointUnit]:
    """The complete units in ``output_dir``, oldest first (by epoch, then iteration)."""
    units = []
    for path in manifest_paths(output_dir, model_name):
        try:
            units.append(read_manifest(path))
        except CheckpointError as err:
            logger.warning("Skipping an incomplete checkpoint: %s", err)
    return sorted(units, key=lambda unit: (unit.epoch, unit.iteration))


def find_latest_checkpoint(output_dir: str, model_name: str) -> Optional[CheckpointUnit]:
    """The newest complete unit (manifest present, both files present with its sizes), or
    None. Legacy files without a manifest are not units; see ``resume.resolve_resume``."""
    units = complete_checkpoints(output_dir, model_name)
    return units[-1] if units else None


def legacy_checkpoint(output_dir: str, model_name: str, epoch: int) -> Optional[CheckpointUnit]:
    """:meth:`CheckpointLayout.legacy_unit`."""
    return CheckpointLayout(output_dir, model_name).legacy_unit(epoch)


def _rename_accumulators(state: Dict[str, Any], names: Dict[str, str]) -> Dict[str, Any]:
    """Rename ``{param_name}_{accumulator}`` keys with ``names`` (old param name → new)."""
    renamed = {}
    for key, value in state.items():
        param, _, suffix = key.partition(".")
        # accumulator keys look like "conv3d_110.w_0_velocity_0"; match the "w_0" part too
        prefix = next((n for n in names if key.startswith(n + "_")), None) if suffix else None
        renamed[names[prefix] + key[len(prefix):] if prefix else key] = value
    return renamed


def optimizer_state_by_structured_name(optimizer: Any, model: nn.Layer) -> Dict[str, Any]:
    """The optimizer state with accumulators keyed by structured parameter names
    (``backbone.s1...weight_velocity_0``) rather than the process-specific auto names
    (``conv3d_110.w_0_velocity_0``), so it loads into any instance of the model."""
    names = {p.name: name for name, p in model.named_parameters()}
    return _rename_accumulators(optimizer.state_dict(), names)


def load_optimizer_state(optimizer: Any, model: nn.Layer, state: Dict[str, Any]) -> None:
    """Inverse of :func:`optimizer_state_by_structured_name`; files keyed by auto names (as
    PaddleVideo writes them) load as they are."""
    names = {name: p.name for name, p in model.named_parameters()}
    optimizer.set_state_dict(_rename_accumulators(state, names))


def load_checkpoint_unit(unit: CheckpointUnit, model: nn.Layer,
                         optimizer: Any) -> Dict[str, Any]:
    """Restore model and optimizer from ``unit`` after checking its files against its
    manifest; returns the ``.pdopt`` dict (``epoch``, ``iteration``, ``best_top1``, ``scaler``,
    whatever the loop stored in ``extra``). A legacy pair loads too, PaddleVideo's included
    (its ``.pdopt`` holds only the optimizer state: ``epoch`` is then the unit's)."""
    unit.verify()
    weights = load(unit.model_path, keep_name_table=True)
    writer_names = weights.pop("StructuredToParameterName@@", None) or {}
    load_weights(unwrap(model), weights, source=unit.model_path)
    state = load(unit.state_path)
    if "optimizer" not in state and "epoch" not in state:
        # PaddleVideo's .pdopt is the optimizer's state dict itself, its accumulators keyed by
        # the writer's parameter names: the .pdparams name table maps them to structured names
        structured = _rename_accumulators(state, {auto: name for name, auto in
                                                  writer_names.items()})
        state = {"optimizer": structured, "epoch": unit.epoch, "iteration": 0}
    if "optimizer" not in state:
        raise CheckpointError(f"{unit.state_path} has no optimizer state")
    load_optimizer_state(optimizer, unwrap(model), state["optimizer"])
    logger.info("Resumed from %s (epoch %d, iteration %d)", unit.model_path, unit.epoch,
                unit.iteration)
    return state

