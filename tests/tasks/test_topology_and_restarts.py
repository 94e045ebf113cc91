"""The global batch defines the run: processes × accumulation give the same parameters; and a
2-process run killed (SIGKILL) or stopped (SIGTERM) on one rank ends, when the same launch is run
again, with the weights of an uninterrupted run."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from paddlevideo.utils.checkpoint import load
from tests.conftest import REPO_ROOT
from tests.tasks.conftest import DEMO_CONFIG, tiny_overrides

# main.py; the rank named by STOP_RANK sends itself STOP_SIGNAL during its STOP_AT-th
# training-mode forward (precise BN's forwards count too)
SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, os.environ["REPO"])
    import main
    from paddlevideo.modeling.framework.recognizers.recognizer3d import Recognizer3D

    stop_at = int(os.environ.get("STOP_AT", "0"))
    mine = os.environ.get("PADDLE_TRAINER_ID", "0") == os.environ.get("STOP_RANK", "1")
    calls, forward = [0], Recognizer3D.forward

    def counting_forward(self, batch, mode="infer"):
        if mode == "train" and stop_at and mine:
            calls[0] += 1
            if calls[0] == stop_at:
                os.kill(os.getpid(), getattr(signal, os.environ["STOP_SIGNAL"]))
        return forward(self, batch, mode)

    Recognizer3D.forward = counting_forward
    sys.exit(main.main(sys.argv[1:]))
""")
# no dropout (its masks follow the iteration, not the sample) and the plain CPU kernels on
# every topology (the oneDNN path is taken on one process only)
SAME_RUN = ["MODEL.head.dropout_rate=0.0", "cpu_fast_path=dygraph"]


def _args(data, out, extra=()):
    args = ["-c", DEMO_CONFIG, "--seed", "21"]
    for item in tiny_overrides(data, out, epochs=2) + SAME_RUN + list(extra):
        args += ["-o", item]
    return args


def _env(**stop):
    env = dict(os.environ, REPO=str(REPO_ROOT), PYTHONPATH=str(REPO_ROOT),
               **{k: str(v) for k, v in stop.items()})
    env.pop("CUDA_VISIBLE_DEVICES", None)  # an empty value makes the launcher expect GPUs
    return env


def _launch(tmp_path, name, args, procs=2, **stop):
    script = tmp_path / "run_main.py"
    script.write_text(SCRIPT)
    if procs == 1:
        cmd = [sys.executable, str(script), *args]
    else:
        cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node",
               str(procs), "--log_dir", str(tmp_path / f"logs_{name}"), str(script), *args]
    result = subprocess.run(cmd, cwd=REPO_ROOT, env=_env(**stop), capture_output=True,
                            text=True, timeout=600)
    logs = "".join(p.read_text() for p in (tmp_path / f"logs_{name}").glob("*")) \
        if procs > 1 else ""
    return result, logs


def _weights(out, epoch=2):
    return load(str(out / f"SlowFastDemo_epoch_{epoch:05d}.pdparams"))


GLOBAL_BATCH = ["GRADIENT_ACCUMULATION.global_batch_size=4"]  # batch 2 per step


def _params(state):
    keys = [k for k in state if not k.endswith(("_mean", "_variance"))]  # BN statistics aside
    assert len(keys) > 50
    return keys


@pytest.fixture(scope="module")
def two_processes(tiny_dataset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("two")
    result, logs = _launch(tmp, "two", _args(tiny_dataset, tmp / "out", GLOBAL_BATCH))
    assert result.returncode == 0, result.stderr[-2000:] + logs[-3000:]
    return tmp / "out"


@pytest.mark.slow
def test_two_processes_and_one_process_with_accumulation_train_the_same_parameters(
        two_processes, tiny_dataset, tmp_path):
    one, _ = _launch(tmp_path, "one", _args(tiny_dataset, tmp_path / "one", GLOBAL_BATCH),
                     procs=1)
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = _weights(two_processes), _weights(tmp_path / "one")
    for key in _params(a):
        np.testing.assert_allclose(b[key], a[key], rtol=0, atol=2e-6, err_msg=key)
    log = (tmp_path / "one" / "train.log").read_text()
    assert "train step:4 " in log  # 2 updates an epoch, each of 2 accumulated iterations
    # the logged loss curve is the global batch's: the same epoch averages on both topologies
    curves = [[line.split("loss_avg: ")[1].split()[0] for line in
               (folder / "train.log").read_text().splitlines() if "END epoch:" in line]
              for folder in (two_processes, tmp_path / "one")]
    assert len(curves[0]) == 2 and curves[0] == curves[1]


@pytest.mark.slow
def test_a_mid_epoch_stop_resumes_on_another_topology_at_the_same_update(
        two_processes, tiny_dataset, tmp_path):
    args = _args(tiny_dataset, tmp_path / "out", GLOBAL_BATCH)
    # one process, accumulation 2: stopped during iteration 2, the end of update 1
    stopped, _ = _launch(tmp_path, "stopped", args, procs=1, STOP_AT=2, STOP_RANK=0,
                         STOP_SIGNAL="SIGTERM")
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert (tmp_path / "out" / "SlowFastDemo_epoch_00000_iter_000002.json").is_file()
    # continued by 2 processes (no accumulation): from update 1, that is their iteration 1
    rerun, logs = _launch(tmp_path, "rerun", args)
    assert rerun.returncode == 0, rerun.stderr[-2000:] + logs[-3000:]
    expected, got = _weights(two_processes), _weights(tmp_path / "out")
    for key in _params(expected):
        np.testing.assert_allclose(got[key], expected[key], rtol=0, atol=2e-6, err_msg=key)


@pytest.fixture(scope="module")
def uninterrupted(tiny_dataset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("whole")
    batch1 = ["DATASET.batch_size=1"]  # 4 updates an epoch with 2 processes
    result, logs = _launch(tmp, "whole", _args(tiny_dataset, tmp / "out", batch1))
    assert result.returncode == 0, result.stderr[-2000:] + logs[-3000:]
    return _weights(tmp / "out")


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
def test_a_rank_killed_or_stopped_in_epoch_2_loses_nothing_on_rerun(uninterrupted, tiny_dataset,
                                                                    tmp_path, signal_name):
    out = tmp_path / "out"
    args = _args(tiny_dataset, out, ["DATASET.batch_size=1"])
    # rank 1's 8th training forward: 4 iterations + 2 precise-BN batches, then iteration 2 of
    # epoch 2
    stopped, logs = _launch(tmp_path, "stopped", args, STOP_AT=8, STOP_RANK=1,
                            STOP_SIGNAL=signal_name)
    assert stopped.returncode != 0
    assert not (out / "SlowFastDemo_epoch_00002.pdparams").exists()
    if signal_name == "SIGTERM":  # both ranks stopped at the same update, rank 0 saved it
        assert (out / "SlowFastDemo_epoch_00001_iter_000002.json").is_file(), logs[-3000:]
    rerun, logs = _launch(tmp_path, "rerun", args)
    assert rerun.returncode == 0, rerun.stderr[-2000:] + logs[-3000:]
    resumed_from = "iteration 2" if signal_name == "SIGTERM" else "iteration 0"
    assert f"(epoch 1, {resumed_from})" in (out / "train.log").read_text()
    got = _weights(out)
    for key in uninterrupted:
        np.testing.assert_allclose(got[key], uninterrupted[key], rtol=0, atol=1e-6,
                                   err_msg=key)
