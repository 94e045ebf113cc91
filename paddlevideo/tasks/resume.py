"""Which checkpoint a run continues from, and which output folders it refuses to write into.

``resume`` takes exactly: ``auto`` (the default), ``no`` / ``false`` (start over on purpose), or
the path of a unit's manifest ``.json`` or ``.pdparams``; PaddleVideo's ``resume_epoch=N`` stays.
A folder holding checkpoints of another run (another config hash or seed) is refused unless
``resume=no``; checkpoints without a manifest are resumed only by ``resume_epoch=N``.

How the training loop uses this module and :mod:`.checkpointing`:

1. after the config is resolved, on every process: ``identity = run_identity(cfg)``,
   ``decision = resolve_resume(cfg.get("resume"), cfg.get("resume_epoch"), output_dir,
   model_name, identity)`` (a ConfigError ends the run with exit code 2 before any work);
2. on rank 0: ``set_aside_checkpoints(...)`` when ``decision.action == "start_over"``, then
   ``utils.fileio.remove_stale_temporaries(output_dir)``;
3. once model and optimizer exist: ``load_checkpoint_unit(decision.unit, model, optimizer)``
   when there is a unit; training continues at ``unit.epoch`` / ``unit.iteration`` /
   ``unit.global_step``;
4. every save: ``save_training_checkpoint(layout, SavePoint(...), ..., run_identity=identity)``;
   the best model (``layout.best``) through ``utils.checkpoint.save_finite_weights``.
   A ``NonFiniteCheckpointError`` stops training naming the last unit that was written.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..utils.config import ConfigError
from ..utils.logger import get_logger
from .checkpointing import (
    CheckpointError,
    CheckpointLayout,
    CheckpointUnit,
    manifest_paths,
    read_manifest,
)

logger = get_logger()

RESUME_VALUES = "auto, no, false, or the path of a checkpoint's .json manifest or .pdparams"

# Keys that do not change what a run computes: where it writes, how it logs, when it resumes,
# how fast it loads data, and the sections only testing/export read. The seed is kept apart.
RUN_INDEPENDENT_KEYS: Sequence[str] = (
    "resume", "resume_epoch", "output_dir", "log_level", "log_interval", "device", "use_gpu",
    "dist_timeout", "cpu_fast_path", "to_static",  # how the backbone runs, not what it computes
    "save_interval", "val_interval", "seed", "DATASET.num_workers", "DATASET.use_shared_memory",
    "DATASET.test", "DATASET.test_batch_size", "PIPELINE.test", "INFERENCE", "label_file",
)


class OutputDirInUseError(ConfigError):
    """The output folder holds checkpoints this run must neither overwrite nor pair with."""


@dataclass
class ResumeDecision:
    """``action``: ``fresh`` (no checkpoint to continue), ``resume`` (continue from ``unit``)
    or ``start_over`` (``resume=no``: the loop sets the old checkpoints aside first)."""

    action: str
    unit: Optional[CheckpointUnit] = None
    set_aside: List[str] = field(default_factory=list)  # warnings for the run's log


def _without(tree: Any, dotted: Sequence[str]) -> Any:
    if not isinstance(tree, dict):
        return tree
    heads = {key.split(".", 1)[0] for key in dotted if "." not in key}
    pruned = {}
    for key, value in tree.items():
        if key in heads:
            continue
        nested = [k.split(".", 1)[1] for k in dotted if k.startswith(f"{key}.")]
        pruned[key] = _without(value, nested)
    return pruned


def run_identity(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """``{"config_hash": 16 hex digits, "seed": cfg["seed"]}``: the SHA-256 of the resolved
    config (canonical JSON) without :data:`RUN_INDEPENDENT_KEYS`, and the seed. Two runs with the
    same identity compute the same thing, so one may continue the other's checkpoints."""
    pruned = _without(dict(cfg), RUN_INDEPENDENT_KEYS)
    text = json.dumps(pruned, sort_keys=True, separators=(",", ":"), default=repr)
    return {"config_hash": hashlib.sha256(text.encode("utf-8")).hexdigest()[:16],
            "seed": cfg.get("seed")}


def _describe(identity: Optional[Dict[str, Any]]) -> str:
    if not identity:
        return "no run identity"
    return f"config {identity.get('config_hash')}, seed {identity.get('seed')}"


def _mode(value: Any) -> str:
    """``auto``, ``no`` or ``path`` for an accepted ``resume`` value; ConfigError otherwise."""
    if value is None or value == "auto":
        return "auto"
    if value is False or value in ("no", "false"):
        return "no"
    if isinstance(value, str) and value.endswith((".json", ".pdparams")):
        if not os.path.isfile(value):
            raise ConfigError(f"resume={value}: file not found (accepted: {RESUME_VALUES})")
        return "path"
    raise ConfigError(f"resume={value!r} is not accepted; use one of: {RESUME_VALUES}")


def _epoch_of(resume_epoch: Any) -> int:
    if resume_epoch in (None, 0):
        return 0
    if isinstance(resume_epoch, bool) or not isinstance(resume_epoch, int) or resume_epoch < 0:
        raise ConfigError(f"resume_epoch={resume_epoch!r}: expected a number of completed "
                          f"epochs (an integer >= 1), or 0 for none")
    return resume_epoch


def check_output_dir(output_dir: str, model_name: str, identity: Dict[str, Any]) -> None:
    """Refuse (one line, :class:`OutputDirInUseError`) a folder whose checkpoints belong to
    another run: a manifest of another identity, or checkpoint pairs without any manifest."""
    advice = "choose another output_dir, or -o resume=no to start over"
    for path in manifest_paths(output_dir, model_name):
        try:
            theirs = read_manifest(path).identity
        except CheckpointError:
            continue  # an incomplete unit: nothing in it can be resumed or lost
        if theirs != identity:
            raise OutputDirInUseError(
                f"{output_dir} holds checkpoints of another run ({os.path.basename(path)}: "
                f"{_describe(theirs)}; this run: {_describe(identity)}): {advice}")
    epochs = CheckpointLayout(output_dir, model_name).legacy_epochs()
    if not manifest_paths(output_dir, model_name) and epochs:
        raise OutputDirInUseError(
            f"{output_dir} holds checkpoints without a manifest (epochs {epochs[0]}.."
            f"{epochs[-1]}, an earlier version or PaddleVideo): -o resume_epoch=N to continue "
            f"one, or {advice}")


def _explicit_epoch(epoch: int, output_dir: str, model_name: str,
                    identity: Dict[str, Any]) -> CheckpointUnit:
    layout = CheckpointLayout(output_dir, model_name)
    paths = layout.unit_paths(epoch)
    try:  # the user chose this epoch: a unit that fails is an error, never a fallback
        unit = read_manifest(paths["manifest"]) if os.path.isfile(paths["manifest"]) else \
            layout.legacy_unit(epoch)
        if unit is not None:
            unit.verify()
    except CheckpointError as err:
        raise ConfigError(f"resume_epoch={epoch}: {err}; choose another epoch, or -o "
                          f"resume=auto for the newest unit that verifies",
                          key="resume_epoch") from None
    if unit is None:
        missing = next(paths[role] for role in ("model", "state")
                       if not os.path.isfile(paths[role]))
        raise ConfigError(f"resume_epoch={epoch}: {missing} does not exist", key="resume_epoch")
    if unit.manifest_path and unit.identity != identity:
        logger.warning("resume_epoch=%d: the checkpoint was written by another run (%s; this "
                       "run: %s); continuing as asked", epoch, _describe(unit.identity),
                       _describe(identity))
    return unit


def _unit_at(path: str, identity: Dict[str, Any]) -> CheckpointUnit:
    manifest = path if path.endswith(".json") else path[:-len(".pdparams")] + ".json"
    if not os.path.isfile(manifest):
        raise ConfigError(f"resume={path}: no manifest {manifest} beside it (a checkpoint "
                          f"without one is resumed with -o resume_epoch=N in its output_dir)")
    try:
        unit = read_manifest(manifest)
        unit.verify()
    except CheckpointError as err:
        raise ConfigError(f"resume={path}: {err}") from None
    if unit.identity != identity:
        raise ConfigError(f"resume={path}: written by another run ({_describe(unit.identity)}; "
                          f"this run: {_describe(identity)}); start a new run from its weights "
                          f"with -w instead")
    return unit


def _unique_folder(output_dir: str, prefix: str) -> str:
    """A new folder ``output_dir/<prefix>_<UTC time>[-N]``."""
    folder = os.path.join(output_dir, time.strftime(f"{prefix}_%Y%m%d-%H%M%S", time.gmtime()))
    suffix, target = 1, folder
    while os.path.exists(target):
        suffix, target = suffix + 1, f"{folder}-{suffix + 1}"
    os.makedirs(target)
    return target


def _set_aside_unit(manifest: str, reason: str) -> str:
    """Move a unit that fails its manifest (manifest, ``.pdparams``, ``.pdopt``) into
    ``output_dir/corrupt_<UTC time>/``: never deleted, never resumed from or overwritten."""
    output_dir, stem = os.path.dirname(manifest), manifest[:-len(".json")]
    target = _unique_folder(output_dir, "corrupt")
    for path in (stem + ".pdparams", stem + ".pdopt", manifest):
        if os.path.isfile(path):
            shutil.move(path, os.path.join(target, os.path.basename(path)))
    return f"resume=auto: set aside {os.path.basename(manifest)} (moved to {target}): {reason}"


def newest_verified_unit(output_dir: str, model_name: str, set_aside: bool = True
                         ) -> Tuple[Optional[CheckpointUnit], List[str]]:
    """The newest unit whose files match its manifest (sizes and SHA-256), checking newest
    first (None when the folder has no manifest), and a warning for each newer unit that
    failed. With ``set_aside`` (only on the process that writes; the others skip them) those
    are moved into ``corrupt_<time>/``. When none verifies, a :class:`ConfigError` says so and
    how to start over, and nothing is moved."""
    failed = []
    for path in CheckpointLayout(output_dir, model_name).manifests_newest_first():
        try:
            unit = read_manifest(path)
            unit.verify()
        except CheckpointError as err:
            failed.append((path, str(err)))
            continue
        if not set_aside:
            return unit, []
        return unit, [_set_aside_unit(bad, reason) for bad, reason in failed]
    if failed:
        raise ConfigError(f"resume=auto: none of the {len(failed)} checkpoints in {output_dir} "
                          f"verifies (the newest: {failed[0][1]}); -o resume=no starts over "
                          f"(it moves them to {output_dir}/replaced_<time>/), or put back a "
                          f"good copy", key="resume")
    return None, []


def resolve_resume(value: Any, resume_epoch: Any, output_dir: str, model_name: str,
                   identity: Dict[str, Any], set_aside: bool = True) -> ResumeDecision:
    """Decide, before any work, where training starts; every bad value is a ConfigError.

    ``resume_epoch=N`` (N >= 1) continues from epoch N's unit, or its legacy pair without a
    manifest; ``resume=auto`` (also when unset) from the newest complete unit of this run, or
    starts fresh in a folder without checkpoints; ``resume=<path>`` from that unit (same run
    only); ``resume=no``/``false`` starts over (the loop then calls
    :func:`set_aside_checkpoints` on rank 0). Except with ``no`` or ``resume_epoch``, a folder
    holding another run's checkpoints is refused (:func:`check_output_dir`).

    Call it on every process right after the config is resolved, with ``run_identity(cfg)``
    and ``set_aside`` true only on the process that writes (rank 0, holding the run lock):
    ``resume=auto`` moves units that fail their manifest aside there
    (:func:`newest_verified_unit`).
    """
    mode, epoch = _mode(value), _epoch_of(resume_epoch)
    if epoch and mode != "auto":
        raise ConfigError(f"resume_epoch={epoch} and resume={value}: give only one of them")
    if epoch:
        return ResumeDecision("resume", _explicit_epoch(epoch, output_dir, model_name, identity))
    if mode == "no":
        return ResumeDecision("start_over")
    check_output_dir(output_dir, model_name, identity)
    if mode == "path":
        return ResumeDecision("resume", _unit_at(value, identity))
    unit, notes = newest_verified_unit(output_dir, model_name, set_aside)
    if unit is None:
        return ResumeDecision("fresh")
    logger.info("resume=auto: continuing from %s (epoch %d, iteration %d)",
                unit.model_path, unit.epoch, unit.iteration)
    return ResumeDecision("resume", unit, notes)


def set_aside_checkpoints(output_dir: str, model_name: str) -> Optional[str]:
    """Move every ``{model_name}_epoch_*`` file and ``{model_name}_best.pdparams`` of
    ``output_dir`` into ``output_dir/replaced_<UTC time>/``; return that folder (None when there
    was nothing). ``resume=no`` never deletes a checkpoint; remove the folder by hand."""
    names = [os.path.basename(path) for path in
             CheckpointLayout(output_dir, model_name).run_files()]
    if not names:
        return None
    target = _unique_folder(output_dir, "replaced")
    for name in names:
        shutil.move(os.path.join(output_dir, name), os.path.join(target, name))
    logger.info("resume=no: moved %d earlier checkpoint files to %s", len(names), target)
    return target
