"""One run per output folder: a second run is refused, a crashed run's lock is taken over."""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from paddlevideo.tasks.run_lock import LOCK_NAME, RunLockedError, acquire_run_lock
from paddlevideo.utils.checkpoint import load
from tests.conftest import REPO_ROOT
from tests.tasks.conftest import DEMO_CONFIG, tiny_overrides

# Runs main.py; with GATE set, the first training iteration writes GATE + ".reached" and waits
# until GATE exists, so a second run can be started while this one holds the folder.
SCRIPT = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, os.environ["REPO"])
    import main
    from paddlevideo.modeling.framework.recognizers.recognizer3d import Recognizer3D

    gate, forward = os.environ.get("GATE"), Recognizer3D.forward

    def gated_forward(self, batch, mode="infer"):
        if gate and mode == "train" and not os.path.exists(gate):
            open(gate + ".reached", "w").close()
            deadline = time.monotonic() + 120
            while not os.path.exists(gate) and time.monotonic() < deadline:
                time.sleep(0.05)
        return forward(self, batch, mode)

    Recognizer3D.forward = gated_forward
    sys.exit(main.main(sys.argv[1:]))
""")


def _command(tmp_path, data, out):
    script = tmp_path / "run_main.py"
    script.write_text(SCRIPT)
    args = [sys.executable, str(script), "-c", DEMO_CONFIG, "--seed", "5"]
    for item in tiny_overrides(data, out, epochs=1) + ["OPTIMIZER.learning_rate.max_epoch=1"]:
        args += ["-o", item]
    return args


def _wait_for(path, seconds=120):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.1)


def _listing(folder):
    return {p: os.path.getsize(os.path.join(folder, p)) for p in sorted(os.listdir(folder))}


@pytest.mark.slow
def test_a_second_run_into_a_busy_folder_is_refused_and_the_first_is_unharmed(tiny_dataset,
                                                                             tmp_path):
    env = dict(os.environ, REPO=str(REPO_ROOT))
    alone = subprocess.run(_command(tmp_path, tiny_dataset, tmp_path / "alone"), cwd=REPO_ROOT,
                           env=env, capture_output=True, text=True, timeout=300)
    assert alone.returncode == 0, alone.stderr[-3000:]

    out, gate = tmp_path / "shared", tmp_path / "gate"
    first = subprocess.Popen(_command(tmp_path, tiny_dataset, out), cwd=REPO_ROOT,
                             env=dict(env, GATE=str(gate)), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(str(gate) + ".reached")  # the first run is training, holding the folder
        holder = json.loads((out / LOCK_NAME).read_text())
        assert (holder["pid"], holder["host"]) == (first.pid, socket.gethostname())
        assert "run_main.py -c " in holder["command"]
        before = _listing(out)
        log_before = (out / "train.log").read_text()
        # the first run waits at its gate until this returns: the second was refused while the
        # first held the folder, not after it ended
        second = subprocess.run(_command(tmp_path, tiny_dataset, out), cwd=REPO_ROOT, env=env,
                                capture_output=True, text=True, timeout=300)
        assert second.returncode == 2, second.stderr[-3000:]
        assert "Traceback" not in second.stderr
        lines = second.stderr.strip().splitlines()
        assert "is in use by another run" in lines[-1]
        assert f"PID {first.pid} on {socket.gethostname()}" in lines[-1]
        assert _listing(out) == before  # nothing written, the lock file untouched
        assert (out / "train.log").read_text() == log_before
        gate.touch()
        stdout, stderr = first.communicate(timeout=300)
    finally:
        gate.touch()
        first.kill()
    assert first.returncode == 0, stderr[-3000:]
    assert not (out / LOCK_NAME).exists()  # released at the end
    expected = load(str(tmp_path / "alone" / "SlowFastDemo_epoch_00001.pdparams"))
    got = load(str(out / "SlowFastDemo_epoch_00001.pdparams"))
    assert expected.keys() == got.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


HOLD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from paddlevideo.tasks.run_lock import acquire_run_lock
    acquire_run_lock(sys.argv[1], ["train", "--the-holder"])
    print("locked", flush=True)
    time.sleep(120)
""")


def test_a_live_holder_refuses_and_a_killed_ones_lock_is_taken_over(tmp_path, caplog):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), str(REPO_ROOT)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError) as info:
            acquire_run_lock(str(tmp_path), ["second"])
        message = str(info.value)
        assert f"PID {holder.pid} on {socket.gethostname()}" in message
        assert "train --the-holder" in message and "\n" not in message
        holder.send_signal(signal.SIGKILL)  # a crash: the file stays, the OS lock goes
        holder.wait(timeout=30)
    finally:
        holder.kill()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == holder.pid
    with caplog.at_level("WARNING", logger="paddlevideo"):
        lock = acquire_run_lock(str(tmp_path), ["third"])
    assert f"PID {holder.pid}" in caplog.text and "has ended without releasing it" in caplog.text
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["command"] == "third"
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_file_of_a_dead_process_without_os_lock_is_taken_over(tmp_path, caplog):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / LOCK_NAME).write_text(json.dumps(
        {"host": socket.gethostname(), "pid": gone.pid, "started": "yesterday",
         "command": "main.py -c old.yaml"}))
    with caplog.at_level("WARNING", logger="paddlevideo"):
        lock = acquire_run_lock(str(tmp_path), ["new"])
    assert f"PID {gone.pid}" in caplog.text and "main.py -c old.yaml" in caplog.text
    # the same process taking it again (an earlier call failed before releasing) is no refusal
    again = acquire_run_lock(str(tmp_path), ["new again"])
    assert lock.fd == -1 and again.fd >= 0
    again.release()


def test_a_folder_that_cannot_be_made_is_named(tmp_path):
    from paddlevideo.utils.fileio import FileWriteError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(FileWriteError, match=f"cannot create the run lock {blocker}/out/"):
        acquire_run_lock(str(blocker / "out"))
