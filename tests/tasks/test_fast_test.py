"""``--test`` through an inference engine on a CPU: the dynamic graph's predictions, with an ETA."""
import csv
import os
import re

import pytest

import main as main_script
from paddlevideo.tasks.fast_test import EtaLog, format_seconds, wants_engine_path
from tests.tasks.conftest import DEMO_CONFIG, tiny_overrides


def run_main(args, overrides):
    argv = list(args)
    for item in overrides:
        argv += ["-o", item]
    return main_script.main(argv)


@pytest.fixture(scope="module")
def trained_weights(tiny_dataset, tmp_path_factory):
    """A tiny model trained for two epochs (so its scores depend on the clips)."""
    out = tmp_path_factory.mktemp("trained")
    assert run_main(["-c", DEMO_CONFIG], tiny_overrides(tiny_dataset, out)) == 0
    return out / "SlowFastDemo_epoch_00002.pdparams"


def predictions(folder):
    with open(folder / "test_predictions.csv") as f:
        return list(csv.DictReader(f))


def test_engine_path_gives_the_dynamic_graphs_predictions(tiny_dataset, tmp_path,
                                                          trained_weights):
    runs = {}
    for path in ("dygraph", "auto"):
        out = tmp_path / path
        overrides = tiny_overrides(tiny_dataset, out) + [f"cpu_fast_path={path}",
                                                         "DATASET.test_batch_size=4"]
        assert run_main(["--test", "-c", DEMO_CONFIG, "-w", str(trained_weights)],
                        overrides) == 0
        runs[path] = (predictions(out), (out / "test.log").read_text())
    (plain, plain_log), (fast, fast_log) = runs["dygraph"], runs["auto"]
    assert len(plain) == len(fast) == 5
    for a, b in zip(plain, fast):
        assert (a["video"], a["label"], a["top1_id"]) == (b["video"], b["label"], b["top1_id"])
        assert float(a["top1_score"]) == pytest.approx(float(b["top1_score"]), abs=1e-4)
        assert float(a["top2_score"]) == pytest.approx(float(b["top2_score"]), abs=1e-4)
    # the trained model separates the clips: not one constant answer
    assert len({row["top1_score"] for row in plain}) > 1
    assert re.search(r"Test forward: (OpenVINO|Paddle Inference), fp32 .*on \d+ CPU threads",
                     fast_log)
    assert "Test forward" not in plain_log
    # 5 videos x 2 views in batches of 4: 3 batches, one line each, the last with ETA 0:00
    eta_lines = re.findall(r"\[test\] batch (\d+)/3, [\d.]+ s elapsed, [\d.]+ clips/s, "
                           r"ETA (\d+:\d\d)", fast_log)
    assert [int(done) for done, _ in eta_lines] == [1, 2, 3]
    assert eta_lines[-1][1] == "0:00"
    assert "avg_acc1" in fast_log


def test_engine_path_only_for_one_cpu_process_not_asking_for_dygraph():
    assert wants_engine_path({"cpu_fast_path": "auto"}, 1)
    assert wants_engine_path({"cpu_fast_path": "onednn"}, 1)
    assert not wants_engine_path({"cpu_fast_path": "dygraph"}, 1)
    assert not wants_engine_path({"cpu_fast_path": False}, 1)
    assert not wants_engine_path({"cpu_fast_path": "auto"}, 2)


def test_eta_lines_come_every_twentieth_of_the_run(caplog):
    import logging

    log = EtaLog(total=100)
    with caplog.at_level(logging.INFO):
        for done in range(1, 101):
            log.step(done, 2)
    lines = [r.getMessage() for r in caplog.records if "[test] batch" in r.getMessage()]
    assert [int(re.search(r"batch (\d+)/100", ln).group(1)) for ln in lines] == \
        list(range(5, 101, 5))
    assert (format_seconds(59.6), format_seconds(125), format_seconds(3723)) == \
        ("1:00", "2:05", "1:02:03")


@pytest.mark.parametrize("openvino", [True, False])
def test_engine_forward_equals_the_dynamic_graph(monkeypatch, openvino):
    import numpy as np

    import paddlevideo.inference.openvino_engine as ov_engine
    from paddlevideo.inference.export import dynamic_probs, input_shapes_from_config, random_inputs
    from paddlevideo.tasks.fast_test import EngineTestForward
    from tests.inference.helpers import small_config, small_model

    monkeypatch.setattr(ov_engine, "openvino_available", lambda: openvino)
    slow, fast = random_inputs(input_shapes_from_config(small_config()), 3, seed=2)
    forward = EngineTestForward(small_model(), threads=2)
    try:
        probs = forward([slow, fast, np.zeros((3, 1)), np.arange(3)])
        assert forward.engine.choice.engine == ("openvino" if openvino else "paddle")
        assert forward.engine.choice.precision == "fp32"
        np.testing.assert_allclose(probs, dynamic_probs(small_model(), slow, fast), atol=1e-5)
        # a last, smaller batch runs through the same export
        np.testing.assert_allclose(forward([slow[:1], fast[:1]]), probs[:1], atol=1e-5)
    finally:
        forward.close()
    assert not os.path.exists(forward.tmp_dir)
