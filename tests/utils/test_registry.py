"""Registry: registration, lookup errors and building from a config mapping."""
import pytest

from paddlevideo.utils.registry import Registry, build_from_config


class _Conv:
    def __init__(self, channels: int, kernel: int = 3) -> None:
        self.channels = channels
        self.kernel = kernel


def test_register_and_get_returns_the_same_object():
    reg = Registry("block")
    reg.register(_Conv)
    assert reg.get("_Conv") is _Conv
    assert "_Conv" in reg
    assert len(reg) == 1
    assert list(reg) == ["_Conv"]


def test_register_under_an_explicit_name():
    reg = Registry("block")
    reg.register(_Conv, name="Conv3x3")
    assert reg.get("Conv3x3") is _Conv
    assert "_Conv" not in reg


def test_decorator_form_registers_and_returns_the_class_unchanged():
    reg = Registry("head")

    @reg.register()
    class LinearHead:
        pass

    @reg.register(name="other")
    def make_head():
        return "built"

    assert reg.get("LinearHead") is LinearHead
    assert reg.get("other") is make_head
    assert make_head() == "built"  # the decorator returns the function itself


def test_duplicate_name_is_an_error_naming_it_and_keeps_the_first():
    reg = Registry("loss")
    reg.register(_Conv, name="Same")

    class Other:
        pass

    with pytest.raises(KeyError, match="Same.*already registered.*loss"):
        reg.register(Other, name="Same")
    with pytest.raises(KeyError, match="Same"):
        reg.register()(type("Same", (), {}))
    assert reg.get("Same") is _Conv


def test_unknown_name_keyerror_lists_registered_names():
    reg = Registry("backbone")
    reg.register(_Conv, name="ResNetSlowFast")
    reg.register(_Conv, name="ResNet3D")
    with pytest.raises(KeyError) as info:
        reg.get("ResNetSlowfast")
    message = str(info.value)
    assert "ResNetSlowfast" in message
    assert "backbone" in message
    assert "ResNet3D" in message and "ResNetSlowFast" in message


def test_unknown_name_in_empty_registry_says_none():
    with pytest.raises(KeyError, match=r"\(none\)"):
        Registry("empty").get("anything")


def test_build_from_config_passes_kwargs_and_does_not_modify_cfg():
    reg = Registry("block")
    reg.register(_Conv)
    cfg = {"name": "_Conv", "channels": 8}
    obj = build_from_config(cfg, reg, kernel=5)
    assert isinstance(obj, _Conv)
    assert (obj.channels, obj.kernel) == (8, 5)
    assert cfg == {"name": "_Conv", "channels": 8}


def test_build_from_config_other_key():
    reg = Registry("dataset")
    reg.register(_Conv, name="SFVideoDataset")
    obj = build_from_config({"format": "SFVideoDataset", "channels": 2}, reg, key="format")
    assert obj.channels == 2


def test_build_from_config_unknown_kwarg_names_the_class_and_kwarg():
    reg = Registry("block")
    reg.register(_Conv)
    with pytest.raises(TypeError) as info:
        build_from_config({"name": "_Conv", "channels": 8, "chanels": 4}, reg)
    message = str(info.value)
    assert "_Conv" in message
    assert "chanels" in message


def test_build_from_config_without_name_key_is_an_error():
    reg = Registry("block")
    reg.register(_Conv)
    with pytest.raises(KeyError, match="'name'"):
        build_from_config({"channels": 8}, reg)


def test_build_from_config_unknown_name_lists_registered():
    reg = Registry("block")
    reg.register(_Conv)
    with pytest.raises(KeyError, match="_Conv"):
        build_from_config({"name": "Missing"}, reg)


def test_project_registries_hold_the_slowfast_parts():
    from paddlevideo.modeling import BACKBONES, HEADS, LOSSES, RECOGNIZERS

    assert "ResNetSlowFast" in BACKBONES
    assert "SlowFastHead" in HEADS
    assert "Recognizer3D" in RECOGNIZERS
    assert "CrossEntropyLoss" in LOSSES
