"""A check of ``--master HOST:PORT`` to run on each node before ``paddle.distributed.launch``.

Paddle's launcher waits without end (``Waiting peer start...``, ``master not ready`` every 5 s)
when the master address is wrong, when nothing answers there, or when the master's port is
already taken by another program. This check fails within seconds with one line instead:

    python tools/preflight.py --master 10.0.0.1:8090 --rank 0   # on the master node
    python tools/preflight.py --master 10.0.0.1:8090 --rank 1   # on every other node

On the master node (``--rank 0``) the host must be an address of this machine and the port free;
on the others the host must resolve and, within ``--wait`` seconds, accept a connection (the
master node's launcher listens there once it has started). Exit code 0: go ahead; 2: the line
printed says what is wrong.
"""
from __future__ import annotations

import argparse
import errno
import socket
import sys
import time
from typing import List, Optional, Tuple


class PreflightError(RuntimeError):
    """The ``--master`` address cannot work from this node."""


def parse_master(master: str) -> Tuple[str, int]:
    """``"HOST:PORT"`` → ``(host, port)``; anything else is a :class:`PreflightError`."""
    host, sep, port = master.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise PreflightError(f"--master {master!r}: expected HOST:PORT with a port in 1..65535")
    return host, int(port)


def resolve(host: str) -> str:
    try:
        return socket.gethostbyname(host)
    except OSError as err:
        raise PreflightError(f"--master host {host!r} does not resolve on "
                             f"{socket.gethostname()}: {err}") from None


def check_master_port_free(host: str, port: int) -> None:
    """On the master node: bind ``host:port`` as the launcher will, then release it."""
    address = resolve(host)
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # as a server would: a port in TIME_WAIT is free, one with a listener (or bound) is not
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((address, port))
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise PreflightError(f"--master {host}:{port}: port {port} is already in use on "
                                 f"{socket.gethostname()} (another job, or a launcher still "
                                 f"running?): choose a free port") from None
        if err.errno == errno.EADDRNOTAVAIL:
            raise PreflightError(f"--master {host}:{port}: {address} is not an address of this "
                                 f"machine ({socket.gethostname()}); run node 0's launcher on "
                                 f"the machine --master names") from None
        raise PreflightError(f"--master {host}:{port}: cannot bind on "
                             f"{socket.gethostname()}: {err}") from None
    finally:
        probe.close()


def check_master_reachable(host: str, port: int, wait: float, retry: float = 1.0) -> None:
    """On another node: connect to ``host:port`` until it answers or ``wait`` seconds pass."""
    address = resolve(host)
    deadline = time.monotonic() + wait
    while True:
        try:
            with socket.create_connection((address, port), timeout=min(retry * 3, 5.0)):
                return
        except OSError as err:
            if time.monotonic() + retry > deadline:
                raise PreflightError(
                    f"--master {host}:{port}: no answer from {socket.gethostname()} within "
                    f"{wait:g} s ({err.strerror or err}); start node 0's launcher first and "
                    f"check the address and that the port is open between the nodes") from None
        time.sleep(retry)


def preflight(master: str, rank: int, wait: float = 30.0) -> None:
    """Raise :class:`PreflightError` when ``--master`` cannot work for node ``rank``."""
    host, port = parse_master(master)
    if rank == 0:
        check_master_port_free(host, port)
    else:
        check_master_reachable(host, port, wait)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", required=True, help="HOST:PORT, as given to the launcher")
    parser.add_argument("--rank", type=int, required=True, help="this node's rank (0: master)")
    parser.add_argument("--wait", type=float, default=30.0,
                        help="seconds a node other than 0 waits for the master (default 30)")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        preflight(args.master, args.rank, args.wait)
    except PreflightError as err:
        print(f"Preflight error: {err}", file=sys.stderr)
        return 2
    print(f"Preflight ok: node {args.rank}, master {args.master}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
