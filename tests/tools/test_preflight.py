"""``tools/preflight.py``: the --master check before a launch fails in seconds with one line."""
import socket
import time

import pytest

from tests.conftest import load_script

_tool = load_script("tools/preflight.py")
PreflightError, main, parse_master, preflight = (_tool.PreflightError, _tool.main,
                                                 _tool.parse_master, _tool.preflight)


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
