"""Collectives that fail with a message, the hang watchdog, and the --master pre-flight check."""
import socket
import time

import pytest

from paddlevideo.utils import dist
from paddlevideo.utils.preflight import PreflightError, main, parse_master, preflight


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


def _listening_port():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    return server, server.getsockname()[1]


def test_preflight_master_port_in_use():
    server, port = _listening_port()
    with server, pytest.raises(PreflightError, match=f"port {port} is already in use"):
        preflight(f"127.0.0.1:{port}", rank=0)


def test_preflight_master_address_not_on_this_machine():
    with pytest.raises(PreflightError, match="192.0.2.1 is not an address of this machine"):
        preflight("192.0.2.1:6170", rank=0)  # TEST-NET-1: never local, nothing is sent


def test_preflight_worker_fails_in_seconds_without_a_master(capsys):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # a port nothing listens on
    start = time.monotonic()
    assert main(["--master", f"127.0.0.1:{port}", "--rank", "1", "--wait", "1"]) == 2
    assert time.monotonic() - start < 5
    assert f"Preflight error: --master 127.0.0.1:{port}: no answer from" in capsys.readouterr().err


def test_preflight_worker_and_master_ok():
    server, port = _listening_port()
    with server:
        preflight(f"127.0.0.1:{port}", rank=1, wait=1)
    preflight(f"127.0.0.1:{port}", rank=0)  # free again once closed


@pytest.mark.parametrize("master", ["127.0.0.1", "host:0", ":80", "h:99999"])
def test_parse_master_rejects(master):
    with pytest.raises(PreflightError, match="expected HOST:PORT"):
        parse_master(master)


def test_preflight_unresolvable_host():
    with pytest.raises(PreflightError, match="does not resolve"):
        preflight("no-such-host.invalid:6170", rank=1, wait=0)
