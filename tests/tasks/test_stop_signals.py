"""Clean stops: a signal becomes a request, workers are ended, none outlives its trainer."""
import os
import signal
import subprocess
import sys
import textwrap
import time

from paddlevideo.tasks.stop_signals import StopRequest, child_processes
from tests.conftest import REPO_ROOT


def test_first_signal_is_a_request_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        assert not stop.requested and stop.exit_code == 0
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.exit_code == 143 and stop.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before
    stop = StopRequest().install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.exit_code == 130
    finally:
        stop.restore()


def _python(code, *args, **kwargs):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True, **kwargs)


def test_a_second_signal_stops_at_once():
    proc = _python("""
        import os, signal
        from paddlevideo.tasks.stop_signals import StopRequest
        stop = StopRequest().install()
        os.kill(os.getpid(), signal.SIGTERM)
        print("requested", stop.requested, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        print("still running", flush=True)
    """)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM
    assert out == "requested True\n"


TRAINER = """
    import sys, time
    import numpy as np
    import paddle
    from paddlevideo.loader.builder import die_with_parent
    from paddlevideo.tasks.stop_signals import StopRequest, child_processes, end_child_processes

    class Slow(paddle.io.Dataset):
        def __len__(self):
            return 10_000

        def __getitem__(self, i):
            time.sleep(0.05)
            return np.full([4], i, np.float32)

    def worker_init(worker_id):
        die_with_parent()

    loader = paddle.io.DataLoader(Slow(), batch_size=2, num_workers=2,
                                  worker_init_fn=worker_init)
    with StopRequest() as stop:
        for step, batch in enumerate(loader):
            if step == 2:
                print(" ".join(map(str, child_processes())), flush=True)
            if stop.requested:
                ended = end_child_processes(timeout=3)
                print("stopped at", step, "ended", len(ended), flush=True)
                sys.exit(stop.exit_code)
"""


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="latin-1") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_gone(pids, seconds=10):
    """The PIDs still alive after ``seconds``; they are then killed, so a failing test leaves
    no process behind."""
    deadline = time.monotonic() + seconds
    while any(map(_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in pids if _alive(pid)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    return survivors


def _start_trainer(catch_signals=True):
    code = TRAINER if catch_signals else TRAINER.replace(
        "with StopRequest() as stop:", "if True:").replace("if stop.requested:", "if False:")
    proc = _python(code)
    workers = [int(pid) for pid in proc.stdout.readline().split()]
    assert len(workers) >= 2, workers
    return proc, workers


def test_sigterm_ends_the_workers_and_the_run_with_exit_code_143():
    proc, workers = _start_trainer()
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "stopped at" in out
    assert time.monotonic() - started < 10
    assert _wait_gone(workers, seconds=2) == []


def test_workers_do_not_outlive_a_trainer_that_dies_of_a_signal():
    # without die_with_parent, Paddle's workers of a trainer ended by SIGTERM live on (parent 1)
    proc, workers = _start_trainer(catch_signals=False)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGTERM
    assert _wait_gone(workers) == []


def test_child_processes_lists_only_this_process_children():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in child_processes()
        assert os.getpid() not in child_processes()
    finally:
        child.kill()
        child.wait()
    assert child.pid not in child_processes()
