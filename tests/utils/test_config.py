"""Config loading, ``-o`` overrides, their checks, errors and dumping."""
import os
import textwrap

import pytest
import yaml

from paddlevideo.utils.config import AttrDict, ConfigError, dump_config, get_config, to_plain

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLOWFAST_YAML = os.path.join(REPO, "configs", "recognition", "slowfast", "slowfast.yaml")

SMALL_CONFIG = """\
MODEL:
  framework: "Recognizer3D"
  backbone:
    name: "ResNetSlowFast"
    width_per_group: 64
  head:
    name: "SlowFastHead"
    num_classes: 400
    dropout_rate: 0.5
DATASET:
  batch_size: 8
  train:
    format: "SFVideoDataset"
    file_path: "data/k400/train.list"
PIPELINE:
  train:
    decode_sampler:
      name: "DecodeSampler"
      num_frames: 32
    transform:
      - JitterScale:
          min_size: 256
          max_size: 320
      - MultiCrop:
          target_size: 224
      - RandomFlip:
OPTIMIZER:
  name: 'Momentum'
  momentum: 0.9
  weight_decay:
    name: 'L2'
    value: 1e-4
  use_nesterov: True
epochs: 196
log_interval: 20
"""


@pytest.fixture
def cfg_path(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(SMALL_CONFIG)
    return str(path)


def test_get_config_gives_attribute_access(cfg_path):
    cfg = get_config(cfg_path)
    assert isinstance(cfg, AttrDict)
    assert cfg.MODEL.backbone.name == "ResNetSlowFast"
    assert cfg.MODEL.head.num_classes == 400
    assert cfg.PIPELINE.train.transform[1].MultiCrop.target_size == 224
    assert cfg.epochs == 196
    assert cfg["MODEL"]["head"]["dropout_rate"] == 0.5
    with pytest.raises(AttributeError, match="no key 'epoch'"):
        cfg.epoch  # noqa: B018


def test_attribute_assignment_writes_the_key(cfg_path):
    cfg = get_config(cfg_path)
    cfg.output_dir = "out"
    assert cfg["output_dir"] == "out"


def test_weight_decay_written_as_1e_4_loads_as_given(cfg_path):
    # YAML 1.1 reads '1e-4' (no dot) as a string; get_config must load it untouched and the
    # optimizer builder casts it.
    cfg = get_config(cfg_path)
    assert cfg.OPTIMIZER.weight_decay.value == "1e-4"
    assert float(cfg.OPTIMIZER.weight_decay.value) == pytest.approx(1e-4)


def test_exponent_notation_overrides_are_numbers(cfg_path):
    # '1e-3' (no dot) is a string to YAML 1.1; as an override it is meant as a number
    cfg = get_config(cfg_path, overrides=["OPTIMIZER.momentum=5e-1",
                                          "OPTIMIZER.weight_decay.value=1e-3"])
    assert cfg.OPTIMIZER.momentum == 0.5
    assert cfg.OPTIMIZER.weight_decay.value == 1e-3  # a number may replace the string "1e-4"
    cfg = get_config(cfg_path, overrides=["OPTIMIZER.weight_decay.value=0.0005"])
    assert cfg.OPTIMIZER.weight_decay.value == 0.0005
    with pytest.raises(ConfigError, match="weight_decay.value"):
        get_config(cfg_path, overrides=["OPTIMIZER.weight_decay.value=abc"])


def test_dotted_override_with_yaml_values(cfg_path):
    cfg = get_config(cfg_path, overrides=[
        "MODEL.head.num_classes=5",
        "MODEL.head.dropout_rate=0.25",
        "OPTIMIZER.use_nesterov=false",
        "DATASET.train.file_path=other/list.txt",
    ])
    assert cfg.MODEL.head.num_classes == 5 and isinstance(cfg.MODEL.head.num_classes, int)
    assert cfg.MODEL.head.dropout_rate == 0.25
    assert cfg.OPTIMIZER.use_nesterov is False
    assert cfg.DATASET.train.file_path == "other/list.txt"


def test_list_index_override(cfg_path):
    cfg = get_config(cfg_path, overrides=["PIPELINE.train.transform.1.MultiCrop.target_size=112"])
    assert cfg.PIPELINE.train.transform[1].MultiCrop.target_size == 112
    assert cfg.PIPELINE.train.transform[0].JitterScale.min_size == 256


def test_list_value_override_parsed_as_list(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("MODEL:\n  framework: Recognizer3D\n"
                    "MULTIGRID:\n  short_cycle_factors: [1, 2]\n")
    cfg = get_config(str(path), overrides=["MULTIGRID.short_cycle_factors=[3, 4, 5]"])
    assert cfg.MULTIGRID.short_cycle_factors == [3, 4, 5]


def test_list_index_out_of_range_names_the_path(cfg_path):
    with pytest.raises(ConfigError, match=r"index 7 out of range.*PIPELINE\.train\.transform"):
        get_config(cfg_path, overrides=["PIPELINE.train.transform.7.MultiCrop.target_size=1"])


def test_non_integer_list_index_is_an_error(cfg_path):
    with pytest.raises(ConfigError, match="integer index"):
        get_config(cfg_path, overrides=["PIPELINE.train.transform.MultiCrop.target_size=1"])


def test_missing_key_names_it_and_suggests_close_matches(cfg_path):
    with pytest.raises(ConfigError) as info:
        get_config(cfg_path, overrides=["MODEL.head.num_clases=5"])
    message = str(info.value)
    assert "MODEL.head.num_clases" in message
    assert "num_classes" in message
    assert cfg_path in message


def test_missing_backbone_key_is_an_error(cfg_path):
    with pytest.raises(ConfigError, match=r"MODEL\.backbone\.widht_per_group.*width_per_group"):
        get_config(cfg_path, overrides=["MODEL.backbone.widht_per_group=8"])


def test_missing_top_level_key_suggests_close_match(cfg_path):
    with pytest.raises(ConfigError) as info:
        get_config(cfg_path, overrides=["OPTIMISER.momentum=0.5"])
    assert "OPTIMISER" in str(info.value) and "OPTIMIZER" in str(info.value)


@pytest.mark.parametrize("override, key", [
    ("epochs=abc", "epochs"),
    ("epochs=2.5", "epochs"),
    ("MODEL.head.num_classes=[1, 2]", "MODEL.head.num_classes"),
    ("OPTIMIZER.use_nesterov=3", "OPTIMIZER.use_nesterov"),
    ("MODEL.head.dropout_rate=yes", "MODEL.head.dropout_rate"),
    ("MODEL.backbone.name=5", "MODEL.backbone.name"),
])
def test_changing_a_value_type_is_an_error_naming_the_key(cfg_path, override, key):
    with pytest.raises(ConfigError) as info:
        get_config(cfg_path, overrides=[override])
    assert f"'{key}'" in str(info.value)


def test_int_may_replace_a_float(cfg_path):
    cfg = get_config(cfg_path, overrides=["MODEL.head.dropout_rate=1", "OPTIMIZER.momentum=0"])
    assert cfg.MODEL.head.dropout_rate == 1.0
    assert isinstance(cfg.MODEL.head.dropout_rate, float)
    assert cfg.OPTIMIZER.momentum == 0.0


def test_optional_documented_keys_can_be_added(cfg_path):
    cfg = get_config(cfg_path, overrides=[
        "resume_epoch=3",
        "DATASET.train.num_retries=5",
        "output_dir=out/run1",
        "PRECISEBN.num_iters_preciseBN=4",
        "MODEL.backbone.bn_norm_type=sub_batchnorm",
        "MODEL.backbone.bn_num_splits=2",
        "MODEL.head.multigrid_short=True",
    ])
    assert cfg.resume_epoch == 3
    assert cfg.DATASET.train.num_retries == 5
    assert cfg.output_dir == "out/run1"
    assert cfg.PRECISEBN.num_iters_preciseBN == 4
    assert isinstance(cfg.PRECISEBN, AttrDict)
    assert cfg.MODEL.backbone.bn_norm_type == "sub_batchnorm"
    assert cfg.MODEL.backbone.bn_num_splits == 2
    assert cfg.MODEL.head.multigrid_short is True


def test_override_without_equals_is_an_error(cfg_path):
    with pytest.raises(ConfigError, match="key.path=value"):
        get_config(cfg_path, overrides=["epochs"])


def test_overriding_below_a_scalar_is_an_error(cfg_path):
    with pytest.raises(ConfigError, match="epochs"):
        get_config(cfg_path, overrides=["epochs.value=3"])


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent("""\
        MODEL:
          framework: Recognizer3D
          backbone:
            name: [ResNetSlowFast
        epochs: 3
        """))
    with pytest.raises(ConfigError) as info:
        get_config(str(path))
    message = str(info.value)
    assert str(path) in message
    # the error is reported on a line of the file with "path:line:column"
    assert f"{path}:" in message
    line = int(message.split(f"{path}:")[1].split(":")[0])
    assert 4 <= line <= 6


def test_bad_indentation_names_file_and_line(tmp_path):
    path = tmp_path / "indent.yaml"
    path.write_text("MODEL:\n  framework: R\n   head: 1\n")
    with pytest.raises(ConfigError, match=rf"{path}:3:"):
        get_config(str(path))


def test_missing_file_is_an_error_naming_it(tmp_path):
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not found.*nope.yaml"):
        get_config(missing)


def test_top_level_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="list.yaml.*mapping"):
        get_config(str(path))


def test_missing_model_framework_is_an_error(tmp_path):
    path = tmp_path / "nofw.yaml"
    path.write_text("MODEL:\n  backbone:\n    name: X\n")
    with pytest.raises(ConfigError, match=r"nofw.yaml.*MODEL\.framework"):
        get_config(str(path))


def test_transform_entry_must_be_a_single_key_mapping(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("MODEL:\n  framework: R\nPIPELINE:\n  train:\n    transform:\n"
                    "      - A: {}\n        B: {}\n")
    with pytest.raises(ConfigError, match=r"PIPELINE\.train\.transform\.0"):
        get_config(str(path))


def test_dump_config_round_trips(cfg_path, tmp_path):
    cfg = get_config(cfg_path, overrides=["resume_epoch=2",
                                          "PIPELINE.train.transform.1.MultiCrop.target_size=112"])
    out = tmp_path / "sub" / "resolved.yaml"
    text = dump_config(cfg, str(out))
    assert out.read_text() == text
    assert yaml.safe_load(text) == to_plain(cfg)
    again = get_config(str(out))
    assert again == cfg
    assert again.PIPELINE.train.transform[1].MultiCrop.target_size == 112
    assert again.OPTIMIZER.weight_decay.value == "1e-4"
    assert os.listdir(out.parent) == ["resolved.yaml"]  # no temporary file left


def test_config_survives_pickle_and_deepcopy(cfg_path):
    """Data-loader workers receive configs by pickling; tasks copy them before editing."""
    import copy
    import pickle

    cfg = get_config(cfg_path)
    restored = pickle.loads(pickle.dumps(cfg))
    assert restored == cfg and restored.MODEL.head.num_classes == 400
    copied = copy.deepcopy(cfg)
    copied.MODEL.head.num_classes = 3
    assert cfg.MODEL.head.num_classes == 400
    assert isinstance(copied.PIPELINE.train.transform[0], AttrDict)


def test_to_plain_gives_plain_dicts(cfg_path):
    plain = to_plain(get_config(cfg_path))
    assert type(plain) is dict
    assert type(plain["MODEL"]["head"]) is dict
    assert type(plain["PIPELINE"]["train"]["transform"][0]) is dict


def test_overrides_do_not_leak_between_calls(cfg_path):
    get_config(cfg_path, overrides=["epochs=3"])
    assert get_config(cfg_path).epochs == 196


def test_repository_config_overrides_of_real_keys():
    cfg = get_config(SLOWFAST_YAML, overrides=[
        "PIPELINE.train.transform.1.MultiCrop.target_size=112",
        "DATASET.batch_size=2",
        "epochs=1",
    ])
    assert cfg.PIPELINE.train.transform[1].MultiCrop.target_size == 112
    assert cfg.DATASET.batch_size == 2
    assert cfg.OPTIMIZER.weight_decay.value == "1e-4"


@pytest.mark.parametrize("override", [
    "PRECISEBN.num_iters_precisebn=10", "OPTIMIZER.momentm=0.5", "INFERENCE.target_sise=224",
    "MULTIGRID.epoch_factr=2", "OPTIMIZER.learning_rate.cosine_base_lrr=0.1",
    "DATASET.train.num_retires=3", "PIPELINE.train.decode_sampler.sampling_rte=2",
])
def test_typos_inside_sections_with_optional_keys_are_caught(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=f"no key '{key}'"):
        get_config(SLOWFAST_YAML, [override])
