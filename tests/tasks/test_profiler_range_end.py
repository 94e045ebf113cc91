"""``main.py -p`` when training ends before the profiled range does: what was recorded is
written, and a line says the range end was not reached."""
import json

import main as main_script
from tests.tasks.conftest import DEMO_CONFIG, tiny_overrides


def _argv(tiny_dataset, out, options):
    argv = ["-c", DEMO_CONFIG, "--max_iters", "3", "-p", options]
    for item in tiny_overrides(tiny_dataset, out, epochs=1) + ["PRECISEBN.num_iters_preciseBN=1"]:
        argv += ["-o", item]
    return argv


def test_a_range_cut_short_by_the_end_of_training_is_written(tiny_dataset, tmp_path, capsys):
    profile = tmp_path / "model.profile"
    # the case: 3 iterations in all, so iteration 3, which ends the range, never starts
    options = f"batch_range=[1,3];state=CPU;profile_path={profile}"
    assert main_script.main(_argv(tiny_dataset, tmp_path / "run", options)) == 0
    out = capsys.readouterr().out
    assert "Profiler: training ended after 3 iterations, before the batch_range end 3 was " \
           "reached; writing iterations 1-2" in out
    assert f"Profile of iterations 1-2 written to {profile}" in out
    assert json.loads(profile.read_text())["traceEvents"]
    assert (tmp_path / "run" / "SlowFastDemo_epoch_00001.pdparams").is_file()  # no early exit


def test_a_range_never_started_says_so(tiny_dataset, tmp_path, capsys):
    profile = tmp_path / "model.profile"
    options = f"batch_range=[5,8];state=CPU;profile_path={profile}"
    assert main_script.main(_argv(tiny_dataset, tmp_path / "run", options)) == 0
    assert "Profiler: training ended after 3 iterations, before batch_range start 5; nothing " \
           "was profiled" in capsys.readouterr().out
    assert not profile.exists()
