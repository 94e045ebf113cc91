"""``tools/export_model.py``: the 4x16 config as PaddleVideo's doc runs it, plus its error paths."""
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import load_script
from tests.inference.helpers import (
    CONFIG_4X16,
    REPO_ROOT,
    SMALL_OVERRIDES,
    randomise_weights,
    small_weights,
)

TOOL = REPO_ROOT / "tools" / "export_model.py"


def load_tool():
    return load_script("tools/export_model.py")


@pytest.mark.slow
def test_export_4x16_config_as_documented(tmp_path):
    """The documented command on the full-width 4x16 model; clips of 128 instead of 256 keep the
    two forward passes of the check short (the graph does not depend on the input size)."""
    import paddle

    from paddlevideo.modeling import build_model
    from paddlevideo.utils import get_config

    paddle.seed(1)
    model = build_model(get_config(str(CONFIG_4X16)).MODEL)
    randomise_weights(model, seed=1)
    weights = tmp_path / "SlowFast.pdparams"
    paddle.save(model.state_dict(), str(weights))
    del model
    out_dir = tmp_path / "inference" / "SlowFast"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        [sys.executable, str(TOOL), "-c", str(CONFIG_4X16), "-p", str(weights),
         "-o", str(out_dir), "--override", "INFERENCE.target_size=128"],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(os.listdir(out_dir)) == ["SlowFast.pdiparams", "SlowFast.pdiparams.info",
                                           "SlowFast.pdmodel"]
    assert "slow_input [-1, 3, 4, 128, 128] and fast_input [-1, 3, 32, 128, 128]" in proc.stdout
    diff = re.search(r"Largest difference between the exported and the dynamic model: (\S+)",
                     proc.stdout)
    assert diff and float(diff.group(1)) <= 1e-5, proc.stdout


def test_json_export_with_overrides_and_save_name(tmp_path, capsys):
    out_dir = tmp_path / "out"
    args = ["-c", str(CONFIG_4X16), "-p", str(small_weights()), "-o", str(out_dir),
            "--format", "json", "--save_name", "Small"]
    for item in SMALL_OVERRIDES:
        args += ["--override", item]
    assert load_tool().main(args) == 0
    assert sorted(os.listdir(out_dir)) == ["Small.json", "Small.pdiparams"]
    out = capsys.readouterr().out
    assert "slow_input [-1, 3, 1, 64, 64] and fast_input [-1, 3, 8, 64, 64]" in out
    diff = re.search(r"dynamic model: (\S+)", out)
    assert float(diff.group(1)) <= 1e-5


def test_weights_that_do_not_fit_are_a_clear_error(tmp_path, capsys):
    # Small-width weights against the full-width 4x16 config.
    args = ["-c", str(CONFIG_4X16), "-p", str(small_weights()), "-o", str(tmp_path / "x"),
            "--format", "json"]
    assert load_tool().main(args) == 2  # bad input: the weights
    err = capsys.readouterr().err
    assert "does not fit the model" in err and "shape mismatch" in err
    assert str(small_weights()) in err
    assert not (tmp_path / "x").exists()


def test_disagreeing_export_fails(tmp_path, capsys, monkeypatch):
    import paddlevideo.inference.export as export

    def fake_export(model, cfg, out_dir, save_name, fmt):
        return {"model": os.path.join(out_dir, f"{save_name}.json")}

    monkeypatch.setattr(export, "export_inference_model", fake_export)
    monkeypatch.setattr(export, "compare_with_dynamic", lambda *a, **k: 0.25)
    args = ["-c", str(CONFIG_4X16), "-p", str(small_weights()), "-o", str(tmp_path),
            "--format", "json"] + [x for o in SMALL_OVERRIDES for x in ("--override", o)]
    assert load_tool().main(args) == 1
    captured = capsys.readouterr()
    assert "Largest difference between the exported and the dynamic model: 2.500e-01" \
        in captured.out
    assert "disagrees with the dynamic model (largest difference 2.500e-01 > 0.0001)" \
        in captured.err


def test_openvino_export_through_onnx(tmp_path, capsys):
    out_dir = tmp_path / "ov"
    args = ["-c", str(CONFIG_4X16), "-p", str(small_weights()), "-o", str(out_dir),
            "--format", "openvino"] + [x for o in SMALL_OVERRIDES for x in ("--override", o)]
    assert load_tool().main(args) == 0
    # the check ran the IR once: its compiled model is already in the cache beside it
    assert sorted(os.listdir(out_dir)) == ["SlowFast.bin", "SlowFast.ov_cache", "SlowFast.xml"]
    xml = (out_dir / "SlowFast.xml").read_text()
    assert 'name="slow_input"' in xml and 'name="fast_input"' in xml
    assert 'element_type="f16"' not in xml  # weights stay fp32
    diff = re.search(r"dynamic model: (\S+)", capsys.readouterr().out)
    assert float(diff.group(1)) <= 1e-5


def test_openvino_export_without_openvino_is_one_line(tmp_path):
    code = ("import sys, runpy; sys.modules['openvino'] = None; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    proc = subprocess.run(
        [sys.executable, "-c", code, str(TOOL), "-c", str(CONFIG_4X16), "-p",
         str(small_weights()), "-o", str(tmp_path / "ov"), "--format", "openvino"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "Error: --format openvino needs the openvino package: pip install openvino"]
    assert not (tmp_path / "ov").exists()
