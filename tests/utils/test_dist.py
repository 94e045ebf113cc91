"""Collectives that fail with a message, and the hang watchdog."""
import socket
import time

import pytest

from paddlevideo.utils import dist


def test_watchdog_reports_a_wait_past_its_deadline(monkeypatch):
    monkeypatch.setenv("PADDLE_CURRENT_ENDPOINT", "127.0.0.1:6170")
    messages = []
    watchdog = dist.CollectiveWatchdog(timeout=0.2, poll=0.05, on_expire=messages.append)
    with watchdog.guard("all_reduce of gradients"):
        time.sleep(0.6)
    assert len(messages) == 1
    assert messages[0].startswith(f"rank 0/1 on node 0/1 ({socket.gethostname()}, "
                                  f"127.0.0.1:6170): collective 'all_reduce of gradients' did "
                                  f"not complete after ")
    assert "(dist_timeout 0.2 s)" in messages[0]


def test_watchdog_quiet_when_the_wait_ends_in_time():
    messages = []
    watchdog = dist.CollectiveWatchdog(timeout=5, poll=0.05, on_expire=messages.append)
    with watchdog.guard("barrier"):
        time.sleep(0.1)
    time.sleep(0.2)
    assert messages == []


def test_peer_error_becomes_collective_error_naming_the_collective():
    with pytest.raises(dist.CollectiveError, match=r"rank 0/1 .*collective 'all_reduce\(sum\)' "
                       r"did not complete .*\(Read error \[127.0.0.1\]:5: Connection reset by "
                       r"peer\): a peer process is dead or stuck"):
        with dist.collective("all_reduce(sum)"):
            raise RuntimeError("[/paddle/third_party/gloo/gloo/transport/tcp/pair.cc:576] "
                               "Read error [127.0.0.1]:5: Connection reset by peer")
    with pytest.raises(RuntimeError, match="^shape mismatch$"):  # other errors pass as they are
        with dist.collective("all_reduce(sum)"):
            raise RuntimeError("shape mismatch")


def test_set_collective_timeout_sets_nccl_milliseconds(monkeypatch):
    monkeypatch.delenv("PADDLE_PG_TIMEOUT", raising=False)
    old = dist._WATCHDOG.timeout
    try:
        dist.set_collective_timeout(90)
        import os
        assert os.environ["PADDLE_PG_TIMEOUT"] == "90000" and dist._WATCHDOG.timeout == 90
    finally:
        dist._WATCHDOG.timeout = old


def test_all_gather_rows_on_one_process_is_the_row():
    import numpy as np
    assert dist.all_gather_rows(np.array([3, 4])).tolist() == [[3, 4]]
