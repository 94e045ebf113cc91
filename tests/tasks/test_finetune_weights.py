"""main.py -w with a checkpoint of another class count and only label_file: backbone loaded,
head new, one line saying so."""
import numpy as np
import paddle

import main as main_script
from paddlevideo.modeling import build_model
from paddlevideo.utils import get_config
from paddlevideo.utils.checkpoint import load
from tests.tasks.conftest import DEMO_CONFIG, tiny_overrides

BN_BUFFERS = ("_mean", "_variance")


def test_eight_class_checkpoint_into_four_class_run(tiny_dataset, tmp_path, capsys):
    overrides = [o for o in tiny_overrides(tiny_dataset, tmp_path / "run", epochs=1)
                 if "num_classes" not in o and not o.startswith("label_file")]
    # learning rate 0: the saved weights are the ones the run started from
    overrides += ["OPTIMIZER.learning_rate.warmup_start_lr=0",
                  "OPTIMIZER.learning_rate.cosine_base_lr=0"]
    cfg = get_config(DEMO_CONFIG, overrides + ["MODEL.head.num_classes=8"])
    paddle.seed(11)
    source = build_model(cfg.MODEL)
    weights = str(tmp_path / "eight.pdparams")
    paddle.save(source.state_dict(), weights)
    labels = tmp_path / "four.txt"
    labels.write_text("0 left\n1 right\n2 up\n3 down\n")
    argv = ["-c", DEMO_CONFIG, "-w", weights, "--max_iters", "1", "-o", f"label_file={labels}"]
    for item in overrides:
        argv += ["-o", item]
    assert main_script.main(argv) == 0
    out = capsys.readouterr().out
    assert f"classes: 4 (from label_file {labels})" in out
    log = (tmp_path / "run" / "train.log").read_text()
    assert "head: checkpoint has 8 classes, this run 4: head initialised fresh" in log
    saved = load(str(tmp_path / "run" / "SlowFastDemo_epoch_00001.pdparams"))
    expected = {k: v.numpy() for k, v in source.state_dict().items()}
    backbone = [k for k in saved if k.startswith("backbone.") and not k.endswith(BN_BUFFERS)]
    assert len(backbone) > 50
    for key in backbone:
        np.testing.assert_array_equal(saved[key], expected[key], err_msg=key)
    head = saved["head.projection.weight"]
    assert head.shape == (expected["head.projection.weight"].shape[0], 4)
    assert 0.005 < head.std() < 0.02 and not saved["head.projection.bias"].any()  # N(0, 0.01)
