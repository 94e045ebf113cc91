"""Training checkpoints as units: weights ``.pdparams``, optimizer/LR/scaler state ``.pdopt`` and
a manifest ``.json`` written last that ties the two (sizes, hashes, epoch, iteration, run)."""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import paddle.nn as nn

from ..modeling.layers import aggregate_sub_bn_stats
from ..utils.checkpoint import (
    CheckpointError,
    NonFiniteCheckpointError,
    checkpoint_paths,
    load,
    load_weights,
    non_finite_entries,
    save,
)
from ..utils.fileio import write_text_atomic
from ..utils.logger import get_logger

logger = get_logger()

MANIFEST_FORMAT = "paddlevideo-checkpoint/1"


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


def unit_stem(output_dir: str, model_name: str, epoch: int, iteration: int = 0) -> str:
    """Path without suffix of one checkpoint unit: ``{model_name}_epoch_{epoch:05d}`` at an
    epoch end, ``..._iter_{iteration:06d}`` for a save ``iteration`` iterations into the epoch
    after ``epoch`` completed ones."""
    stem = f"{model_name}_epoch_{epoch:05d}"
    return os.path.join(output_dir, stem + (f"_iter_{iteration:06d}" if iteration else ""))


def save_training_checkpoint(output_dir: str, model_name: str, epoch: int, model: nn.Layer,
                             optimizer: Any, extra: Optional[Dict[str, Any]] = None,
                             iteration: int = 0, global_step: Optional[int] = None,
                             run_identity: Optional[Dict[str, Any]] = None) -> str:
    """Write one checkpoint unit; return its ``.pdparams`` path.

    ``epoch`` counts completed epochs (1-based at an epoch end); ``iteration`` is the number of
    iterations done in the epoch after them (0 for an epoch-end save, which keeps the name
    ``{model_name}_epoch_{epoch:05d}``). Order: the unit's old manifest is removed, every
    weight, BN buffer and optimizer accumulator is checked to be finite (else
    :class:`NonFiniteCheckpointError`, nothing written), then ``.pdparams``, ``.pdopt`` and
    last the manifest ``.json`` (sizes and SHA-256 of both files, epoch, iteration,
    ``global_step``, ``run_identity``) are written, each atomically. A unit counts only when its
    manifest is there and matches its files, so an interrupted save is never resumed from.

    The loop calls it on the writing process (rank 0) only, with ``run_identity(cfg)``.
    """
    stem = unit_stem(output_dir, model_name, epoch, iteration)
    paths = {"model": stem + ".pdparams", "state": stem + ".pdopt"}
    plain = unwrap(model)
    aggregate_sub_bn_stats(plain)  # so the plain BN statistics in the file are current
    weights = plain.state_dict()
    state = {"optimizer": optimizer_state_by_structured_name(optimizer, plain), "epoch": epoch,
             "iteration": iteration}
    state.update(extra or {})
    bad = non_finite_entries(weights) + [f"optimizer.{k}" for k in
                                         non_finite_entries(state["optimizer"])]
    if bad:
        raise NonFiniteCheckpointError(paths["model"], bad)
    if os.path.exists(stem + ".json"):
        os.remove(stem + ".json")  # the old manifest must never vouch for the new files
    save(weights, paths["model"])
    save(state, paths["state"])
    manifest = {
        "format": MANIFEST_FORMAT, "model_name": model_name, "epoch": epoch,
        "iteration": iteration,
        "global_step": global_step if global_step is not None else 0,
        "run": run_identity,
        "files": {role: {"name": os.path.basename(path), "bytes": os.path.getsize(path),
                         "sha256": file_sha256(path)} for role, path in paths.items()},
    }
    write_text_atomic(stem + ".json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return paths["model"]


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


_MANIFEST_RE = re.compile(r"_epoch_(\d{5,})(?:_iter_(\d{6,}))?\.json$")


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


def manifest_paths(output_dir: str, model_name: str) -> List[str]:
    """Every manifest of ``model_name`` in ``output_dir`` (complete units or not)."""
    if not os.path.isdir(output_dir):
        return []
    prefix = f"{model_name}_epoch_"
    return sorted(os.path.join(output_dir, name) for name in os.listdir(output_dir)
                  if name.startswith(prefix) and _MANIFEST_RE.search(name))


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
    """Epoch ``epoch``'s ``.pdparams`` + ``.pdopt`` pair without a manifest, if both exist."""
    paths = checkpoint_paths(output_dir, model_name, epoch)
    if all(os.path.isfile(path) for path in paths.values()):
        return CheckpointUnit(paths["model"], paths["state"], epoch)
    return None


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

