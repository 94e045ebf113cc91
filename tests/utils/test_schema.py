"""The config schema: keys from one table and the registered constructors' signatures."""
import inspect
import subprocess
import sys

import pytest

from paddlevideo.modeling import BACKBONES
from paddlevideo.modeling.backbones.resnet_slowfast import ResNetSlowFast
from paddlevideo.utils.config import ConfigError, get_config
from tests.conftest import REPO_ROOT

SLOWFAST_YAML = str(REPO_ROOT / "configs/recognition/slowfast/slowfast.yaml")
DEMO_YAML = str(REPO_ROOT / "configs/recognition/slowfast/slowfast_demo.yaml")


@pytest.fixture
def knob_backbone():
    """ResNetSlowFast with one more constructor argument, registered under a new name."""
    signature = inspect.signature(ResNetSlowFast)
    knob = inspect.Parameter("new_knob", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=1)
    cls = type("BackboneWithKnob", (ResNetSlowFast,), {
        "__signature__": signature.replace(parameters=[*signature.parameters.values(), knob])})
    BACKBONES._obj_map["BackboneWithKnob"] = cls
    yield cls
    del BACKBONES._obj_map["BackboneWithKnob"]


def test_a_constructor_argument_is_a_config_key_without_any_list(knob_backbone, tmp_path):
    cfg = get_config(SLOWFAST_YAML, ["MODEL.backbone.name=BackboneWithKnob",
                                     "MODEL.backbone.new_knob=3"])
    assert cfg.MODEL.backbone.new_knob == 3
    path = tmp_path / "c.yaml"
    path.write_text("MODEL:\n  framework: Recognizer3D\n  backbone:\n"
                    "    name: BackboneWithKnob\n    new_knob: 2\n")
    assert get_config(str(path)).MODEL.backbone.new_knob == 2
    # ResNetSlowFast has no such argument: the same key is refused there
    with pytest.raises(ConfigError, match="new_knob"):
        get_config(SLOWFAST_YAML, ["MODEL.backbone.new_knob=3"])


def test_unknown_lr_schedule_names_the_registered_ones():
    with pytest.raises(ConfigError) as info:
        get_config(SLOWFAST_YAML, ["OPTIMIZER.learning_rate.name=Cosine"])
    message = str(info.value)
    assert "'OPTIMIZER.learning_rate.name'" in message and "Cosine" in message
    assert "CustomWarmupCosineDecay" in message and "CustomWarmupPiecewiseDecay" in message


@pytest.mark.parametrize("key, text, expected", [
    ("save_intervall", "save_intervall: 1", "save_interval"),
    ("DATASET.num_worker", "DATASET:\n  batch_size: 2\n  num_worker: 4", "num_workers"),
    ("MODEL.backbone.name", "MODEL:\n  framework: Recognizer3D\n  backbone:\n    name: ResNet",
     "ResNetSlowFast"),
    ("MODEL.framework", "MODEL:\n  framework: Recogniser3D", "Recognizer3D"),
    ("OPTIMIZER.name", "OPTIMIZER:\n  name: Adagrad", "Momentum"),
])
def test_typos_in_the_file_name_file_key_and_nearest(tmp_path, key, text, expected):
    path = tmp_path / "typo.yaml"
    body = text if text.startswith("MODEL") else "MODEL:\n  framework: Recognizer3D\n" + text
    path.write_text(body + "\n")
    with pytest.raises(ConfigError) as info:
        get_config(str(path))
    message = str(info.value)
    assert str(path) in message and f"'{key}'" in message and expected in message
    assert "\n" not in message


@pytest.mark.parametrize("override, expected", [
    ("save_interval=0", "at least 1"), ("val_interval=0", "at least 1"),
    ("bad_video_max_fraction=abc", "a number"), ("bad_video_max_fraction=2", "at most 1"),
    ("skip_head=maybe", "true or false"), ("log_level=LOUD", "one of DEBUG"),
    ("DATASET.num_workers=-1", "at least 0"), ("PRECISEBN.num_iters_preciseBN=0", "at least 1"),
])
def test_bad_values_are_refused_at_load(override, expected):
    with pytest.raises(ConfigError) as info:
        get_config(SLOWFAST_YAML, [override])
    assert override.split("=")[0] in str(info.value) and expected in str(info.value)


def test_defaults_are_filled_from_the_one_table():
    cfg = get_config(SLOWFAST_YAML)
    assert cfg.seed == 1234 and cfg.skip_head is False and cfg.bad_video_max_fraction == 0.05
    assert cfg.DATASET.use_shared_memory is True and cfg.DATASET.test_batch_size is None
    assert cfg.save_interval == 10  # the file's own value wins


def test_switching_the_schedule_by_override_keeps_the_other_schedules_keys():
    # the demo file holds cosine keys; -o ...name=Piecewise must still load (keys of another
    # registered schedule are accepted, the builder drops them with a warning)
    cfg = get_config(DEMO_YAML, ["OPTIMIZER.learning_rate.name=CustomWarmupPiecewiseDecay",
                                 "OPTIMIZER.learning_rate.steps=[0, 3]",
                                 "OPTIMIZER.learning_rate.lrs=[1, 0.1]",
                                 "OPTIMIZER.learning_rate.step_base_lr=0.01",
                                 "OPTIMIZER.learning_rate.gamma=0.1"])
    from paddlevideo.solver import build_lr

    scheduler = build_lr(cfg.OPTIMIZER.learning_rate, 10)
    assert type(scheduler).__name__ == "CustomWarmupPiecewiseDecay"
    with pytest.raises(ConfigError, match="cosine_base_lrr"):
        get_config(DEMO_YAML, ["OPTIMIZER.learning_rate.cosine_base_lrr=0.1"])


@pytest.mark.parametrize("script, args", [
    ("main.py", ["-c", SLOWFAST_YAML, "-o", "OPTIMIZER.learning_rate.name=Cosine"]),
    ("main.py", ["--test", "-c", SLOWFAST_YAML, "-w", "x.pdparams", "-o", "save_interval=0"]),
    ("tools/export_model.py", ["-c", SLOWFAST_YAML, "-p", "x.pdparams",
                               "--override", "MODEL.framework=Nope"]),
])
def test_cli_config_errors_are_one_line_and_exit_2(script, args):
    result = subprocess.run([sys.executable, str(REPO_ROOT / script), *args], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Config error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert SLOWFAST_YAML in errors[0]
