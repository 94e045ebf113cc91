"""``tools/summary.py``: parameter counts and GMACs per clip at the config's test size."""
import re

from tests.conftest import REPO_ROOT, load_script

CONFIGS = REPO_ROOT / "configs" / "recognition" / "slowfast"


def load_tool():
    return load_script("tools/summary.py")


def test_full_4x16_parameters_without_running_it(capsys):
    assert load_tool().main(["-c", str(CONFIGS / "slowfast.yaml")]) == 0
    out = capsys.readouterr().out
    assert "Model: SlowFast (Recognizer3D: ResNetSlowFast + SlowFastHead)" in out
    # the trainable count of PaddleVideo's 4x16 (tests/modeling/test_full_model.py)
    assert re.search(r"trainable\s+34,480,216", out)
    assert "GMACs" not in out


def test_flops_at_the_test_size_follow_the_overrides(capsys):
    tool = load_tool()
    base = ["-c", str(CONFIGS / "slowfast.yaml"), "--FLOPs", "-o",
            "MODEL.backbone.width_per_group=8", "-o", "MODEL.head.width_per_group=8"]
    gmacs = {}
    for size in (64, 128):
        assert tool.main(base + ["-o", f"PIPELINE.test.transform.1.MultiCrop.target_size={size}",
                                 "-o", "PIPELINE.test.decode_sampler.num_frames=8"]) == 0
        out = capsys.readouterr().out
        match = re.search(rf"GMACs per clip \(8 frames of {size}x{size}, slow pathway 1 frames\):"
                          r" ([\d.]+)", out)
        assert match, out
        gmacs[size] = float(match.group(1))
    # convolutions dominate: 4x the pixels, about 4x the multiply-accumulates
    assert 3.5 < gmacs[128] / gmacs[64] < 4.1


def test_bad_override_is_one_line(capsys):
    code = load_tool().main(["-c", str(CONFIGS / "slowfast.yaml"), "-o", "MODEL.hed.x=1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("Config error:") and "MODEL.hed" in err
