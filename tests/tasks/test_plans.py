"""Training plans and the resolve step: which config each epoch trains with, when to validate,
and the frozen config a run hashes (built from a copy: the caller's config never changes)."""
import copy

import pytest

from paddlevideo.multigrid import build_multigrid_schedule
from paddlevideo.tasks.data import build_train_loader
from paddlevideo.tasks.options import TrainOptions
from paddlevideo.tasks.plans import MultigridPlan, PlainPlan, multigrid_run_config
from paddlevideo.tasks.resume import run_identity
from paddlevideo.tasks.run import resolve_run
from paddlevideo.utils import get_config
from paddlevideo.utils.config import FrozenConfigError, to_plain
from tests.conftest import REPO_ROOT
from tests.tasks.conftest import DEMO_CONFIG, tiny_overrides

MULTIGRID_CONFIG = str(REPO_ROOT / "configs/recognition/slowfast/slowfast_multigrid.yaml")


def test_plain_plan_validates_and_measures_bn_at_its_intervals_and_at_the_end():
    cfg = {"epochs": 7, "val_interval": 3, "PRECISEBN": {"preciseBN_interval": 2}}
    plan = PlainPlan(cfg)
    assert plan.total_epochs == 7 and plan.stage_config(4) is cfg
    assert not any(plan.starts_stage(e) for e in range(7))
    assert plan.batch_sampler(cfg, 0) is None and plan.describe_stage(0) is None
    assert [e for e in range(7) if plan.is_eval_epoch(e)] == [2, 5, 6]
    assert [e for e in range(7) if plan.is_precise_bn_epoch(e)] == [1, 3, 5, 6]
    loader = object()
    assert plan.precise_bn_loader(cfg, [], loader) is loader
    assert not PlainPlan({"epochs": 2, "val_interval": 1}).is_precise_bn_epoch(1)


def test_multigrid_run_config_is_a_copy_with_the_schedules_epochs_and_lr():
    cfg = get_config(MULTIGRID_CONFIG)
    before = copy.deepcopy(to_plain(cfg))
    schedule = build_multigrid_schedule(cfg)
    run_cfg = multigrid_run_config(cfg, schedule)
    assert to_plain(cfg) == before  # the caller's config is not changed
    assert run_cfg["epochs"] == schedule.total_epochs != cfg["epochs"]
    lr = run_cfg["OPTIMIZER"]["learning_rate"]
    assert lr["name"] == "CustomWarmupPiecewiseDecay"
    assert lr["steps"] == list(schedule.lr_params["steps"])


def test_multigrid_plan_stages_follow_the_schedule():
    cfg = get_config(MULTIGRID_CONFIG)
    schedule = build_multigrid_schedule(cfg)
    plan = MultigridPlan(multigrid_run_config(cfg, schedule), schedule)
    starts = [e for e in range(plan.total_epochs) if plan.starts_stage(e)]
    assert starts == [p.start_epoch for p in schedule.phases[1:]] and starts
    for epoch in (0, starts[0], plan.total_epochs - 1):
        shape = schedule.shape_at(epoch)
        stage = plan.stage_config(epoch)
        assert (stage["MODEL"]["head"]["num_frames"], stage["MODEL"]["head"]["crop_size"],
                stage["DATASET"]["batch_size"]) == (shape.num_frames, shape.crop_size,
                                                    shape.batch_size)
        assert stage["MODEL"]["backbone"]["bn_num_splits"] == shape.bn_num_splits
    assert plan.cfg["MODEL"]["head"]["num_frames"] == cfg["MODEL"]["head"]["num_frames"]
    assert [e for e in range(plan.total_epochs) if plan.is_eval_epoch(e)] == [
        e - 1 for e in schedule.eval_epochs()]
    assert plan.describe_stage(starts[0]).startswith(f"Multigrid phase 2 from epoch "
                                                     f"{starts[0] + 1}: T ")
    assert callable(plan.batch_sampler(plan.stage_config(0), 0))  # the short cycle's sampler


def test_resolve_run_freezes_a_copy_with_the_seed_and_leaves_the_callers_config(tiny_dataset,
                                                                                tmp_path):
    cfg = get_config(DEMO_CONFIG, tiny_overrides(tiny_dataset, tmp_path))
    before = copy.deepcopy(to_plain(cfg))
    frozen, plan, message = resolve_run(cfg, TrainOptions(seed=5, parallel=False), 1)
    assert to_plain(cfg) == before
    assert frozen["seed"] == 5 and isinstance(plan, PlainPlan) and plan.cfg is frozen
    assert message.startswith("LR")
    with pytest.raises(FrozenConfigError, match="frozen"):
        frozen["seed"] = 6
    with pytest.raises(FrozenConfigError):
        frozen["PIPELINE"]["train"]["transform"].append({})
    # the identity hashes the same content a plain copy has
    assert run_identity(frozen) == run_identity(copy.deepcopy(frozen))
    other, _, _ = resolve_run(cfg, TrainOptions(seed=6, parallel=False), 1)
    assert run_identity(other)["config_hash"] == run_identity(frozen)["config_hash"]
    assert run_identity(other)["seed"] == 6


def test_resolve_run_multigrid_uses_the_schedules_epochs():
    cfg = get_config(MULTIGRID_CONFIG)
    frozen, plan, _ = resolve_run(cfg, TrainOptions(multigrid=True, parallel=False), 1)
    assert isinstance(plan, MultigridPlan) and plan.cfg is frozen
    assert frozen["epochs"] == plan.total_epochs == plan.schedule.total_epochs
    assert cfg["epochs"] != frozen["epochs"]


@pytest.mark.parametrize("shared", [True, False])
def test_loaders_honour_use_shared_memory(tiny_dataset, tmp_path, shared):
    cfg = get_config(DEMO_CONFIG, tiny_overrides(tiny_dataset, tmp_path) + [
        "DATASET.num_workers=1", f"DATASET.use_shared_memory={shared}"])
    _, loader = build_train_loader(cfg)
    assert loader._loader.use_shared_memory is shared
