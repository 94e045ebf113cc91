"""Two launchers on loopback form one 2-node job (``--nnodes 2 --master 127.0.0.1:PORT``).

Training as 2 nodes × 1 process ends with the weights of 1 node × 2 processes; a 2-node
``--test`` scores every view of every video once (the same scores as one process); a node whose
list file differs, a dead peer and a stuck peer are each one line naming the rank and node.
"""
from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List, Sequence

import numpy as np

from paddlevideo.tasks import test_model
from paddlevideo.utils import get_config
from paddlevideo.utils.checkpoint import load
from tests.conftest import REPO_ROOT
from tests.tasks.conftest import DEMO_CONFIG, tiny_overrides

LAUNCH = [sys.executable, "-m", "paddle.distributed.launch"]
TIMEOUT = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("CUDA_VISIBLE_DEVICES", None)  # an empty value makes the launcher expect GPUs
    return env


def start_nodes(log_root: Path, args: Sequence[str], nodes: int = 2, procs: int = 1,
                cwds: Sequence[Path] = ()) -> List[subprocess.Popen]:
    """``nodes`` launchers of one job on this machine (one launcher when ``nodes == 1``)."""
    port = free_port()
    launchers = []
    for node in range(nodes):
        topology = ["--nproc_per_node", str(procs), "--log_dir", str(log_root / f"node{node}")]
        if nodes > 1:
            topology += ["--nnodes", str(nodes), "--master", f"127.0.0.1:{port}",
                         "--rank", str(node), "--host", "127.0.0.1"]
        cwd = cwds[node] if cwds else REPO_ROOT
        launchers.append(subprocess.Popen(LAUNCH + topology + list(args), cwd=cwd, env=_env(),
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True))
    return launchers


def finish(launchers: List[subprocess.Popen], log_root: Path) -> List[int]:
    """Wait for every launcher; return their exit codes. Each launcher's own output goes to
    ``log_root/launcherN.txt``."""
    codes = []
    log_root.mkdir(parents=True, exist_ok=True)
    for node, proc in enumerate(launchers):
        try:
            output, _ = proc.communicate(timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
        (log_root / f"launcher{node}.txt").write_text(output or "")
        codes.append(proc.returncode)
    return codes


def assert_one_job_of(log_root: Path, nodes: int, procs: int) -> None:
    """Every launcher ran the same job of ``nodes`` nodes (not separate 1-node jobs)."""
    for node in range(nodes):
        output = (log_root / f"launcher{node}.txt").read_text()
        assert f"Job: default, mode collective, replicas {nodes}[{nodes}:{nodes}]" in output, \
            output[-2000:]
        assert f"replicas {procs}, status ready" in output, output[-2000:]


def worker_logs(log_root: Path) -> str:
    return "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}"
                     for p in sorted(log_root.glob("node*/workerlog.*")))


def main_args(config_overrides: Sequence[str], *flags: str) -> List[str]:
    args = [str(REPO_ROOT / "main.py"), "-c", DEMO_CONFIG, *flags]
    for item in config_overrides:
        args += ["-o", item]
    return args


def test_two_nodes_train_and_test_like_one_node(tiny_dataset, tmp_path):
    runs = {}
    for name, nodes, procs in (("one_node", 1, 2), ("two_nodes", 2, 1)):
        out = tmp_path / name
        overrides = tiny_overrides(tiny_dataset, out, epochs=1)
        runs[name] = (out, tmp_path / f"logs_{name}",
                      start_nodes(tmp_path / f"logs_{name}", main_args(overrides),
                                  nodes=nodes, procs=procs))
    for _, logs, launchers in runs.values():
        assert finish(launchers, logs) == [0] * len(launchers), worker_logs(logs)
    assert_one_job_of(runs["two_nodes"][1], nodes=2, procs=1)
    one = load(str(runs["one_node"][0] / "SlowFastDemo_epoch_00001.pdparams"))
    two = load(str(runs["two_nodes"][0] / "SlowFastDemo_epoch_00001.pdparams"))
    assert sorted(one) == sorted(two)
    for key in one:
        np.testing.assert_allclose(np.asarray(two[key]), np.asarray(one[key]), atol=1e-6,
                                   rtol=0, err_msg=key)
    log = (runs["two_nodes"][0] / "train.log").read_text()
    assert "train step:2 " in log and "train step:3 " not in log  # 8 videos / (2 × 2)

    weights = str(runs["two_nodes"][0] / "SlowFastDemo_epoch_00001.pdparams")
    out = tmp_path / "test_two_nodes"
    logs = tmp_path / "logs_test"
    launchers = start_nodes(logs, main_args(tiny_overrides(tiny_dataset, out), "--test", "-w",
                                            weights))
    assert finish(launchers, logs) == [0, 0], worker_logs(logs)
    assert_one_job_of(logs, nodes=2, procs=1)
    single = tmp_path / "test_single"
    test_model(get_config(DEMO_CONFIG, tiny_overrides(tiny_dataset, single)), weights,
               parallel=False)
    rows = list(csv.DictReader(open(out / "test_predictions.csv")))
    reference = list(csv.DictReader(open(single / "test_predictions.csv")))
    assert [r["video"] for r in rows] == [r["video"] for r in reference]
    assert len({r["video"] for r in rows}) == 5  # each of the 5 videos once
    for row, ref in zip(rows, reference):  # mean over the 2 views: a lost or doubled view shows
        assert abs(float(row["top1_score"]) - float(ref["top1_score"])) < 1e-5, (row, ref)


LIST_CHECK = textwrap.dedent("""
    import paddle
    paddle.set_device("cpu")
    from paddlevideo.tasks.same_lists import check_same_lists
    from paddlevideo.utils.dist import init_distributed
    init_distributed()
    cfg = {"DATASET": {"train": {"file_path": "train.list"}, "valid": {"file_path": "val.list"}}}
    print("compared", check_same_lists(cfg), flush=True)
""")


def test_node_with_a_different_list_copy_is_named(tmp_path):
    script = tmp_path / "check_lists.py"
    script.write_text(LIST_CHECK)
    node_dirs = [tmp_path / "copy_on_node0", tmp_path / "copy_on_node1"]
    for node, folder in enumerate(node_dirs):  # a copy of the lists per node, by the same path
        folder.mkdir()
        (folder / "val.list").write_text("v.mp4 0\n")
        (folder / "train.list").write_text("a.mp4 0\nb.mp4 1\n" if node == 0 else "a.mp4 0\n")
    logs = tmp_path / "logs"
    codes = finish(start_nodes(logs, [str(script)], cwds=node_dirs), logs)
    text = worker_logs(logs)
    assert codes != [0, 0], text
    assert "ListMismatchError: list files differ across nodes" in text, text
    assert "DATASET.train.file_path train.list: rank 1/2 on node 1/2" in text, text
    assert "DATASET.valid.file_path" not in text.split("ListMismatchError")[-1], text


PEER = textwrap.dedent("""
    import os, sys, time
    import paddle
    paddle.set_device("cpu")
    from paddlevideo.utils.dist import (all_reduce_sum, get_rank, init_distributed,
                                        set_collective_timeout)
    import numpy as np
    init_distributed(timeout=120)  # the other node may take a while to start
    all_reduce_sum(np.ones(2), name="warm-up all_reduce")
    set_collective_timeout(float(sys.argv[2]))
    if get_rank() == 1:
        if sys.argv[1] == "die":
            os._exit(9)
        time.sleep(60)
    all_reduce_sum(np.ones(2), name="all_reduce of the epoch totals")
""")


def _peer_failure(tmp_path: Path, mode: str, timeout: float) -> str:
    script = tmp_path / "peer.py"
    script.write_text(PEER)
    logs = tmp_path / f"logs_{mode}"
    launchers = start_nodes(logs, [str(script), mode, str(timeout)])
    finish(launchers[:1], logs)  # node 0 must stop by itself, in seconds
    for proc in launchers[1:]:
        proc.kill()
        proc.wait()
    return (logs / "node0" / "workerlog.0").read_text(errors="replace")


def test_dead_peer_is_an_error_naming_rank_node_and_collective(tmp_path):
    log = _peer_failure(tmp_path, "die", timeout=60)
    assert "CollectiveError: rank 0/2 on node 0/2 (" in log, log
    assert "collective 'all_reduce of the epoch totals' did not complete" in log, log


def test_stuck_peer_times_out_after_dist_timeout(tmp_path):
    log = _peer_failure(tmp_path, "sleep", timeout=3)
    assert "ERROR: rank 0/2 on node 0/2 (" in log, log
    assert "collective 'all_reduce of the epoch totals' did not complete after " in log, log
    assert "(dist_timeout 3 s): a peer process is dead or stuck" in log, log


def test_preflight_then_launch_with_identical_list_copies(tmp_path):
    """Node 1's pre-flight check waits for node 0's launcher, and its probe does not disturb
    the rendezvous; identical copies of the lists pass the check on both nodes."""
    script = tmp_path / "check_lists.py"
    script.write_text(LIST_CHECK)
    node_dirs = [tmp_path / "copy_on_node0", tmp_path / "copy_on_node1"]
    for folder in node_dirs:
        folder.mkdir()
        (folder / "val.list").write_text("v.mp4 0\n")
        (folder / "train.list").write_text("a.mp4 0\nb.mp4 1\n")
    port, logs = free_port(), tmp_path / "logs"
    master = f"127.0.0.1:{port}"
    preflight = [sys.executable, "tools/preflight.py", "--master", master]
    assert subprocess.run(preflight + ["--rank", "0"], env=_env(), cwd=REPO_ROOT).returncode == 0
    launchers = []
    for node in range(2):
        if node == 1:  # waits until node 0's launcher listens
            check = subprocess.run(preflight + ["--rank", "1", "--wait", "60"], env=_env(),
                                   cwd=REPO_ROOT, capture_output=True, text=True)
            assert check.returncode == 0 and "Preflight ok: node 1" in check.stdout, check.stderr
        cmd = LAUNCH + ["--nproc_per_node", "1", "--log_dir", str(logs / f"node{node}"),
                        "--nnodes", "2", "--master", master, "--rank", str(node), "--host",
                        "127.0.0.1", str(script)]
        launchers.append(subprocess.Popen(cmd, cwd=node_dirs[node], env=_env(),
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True))
    assert finish(launchers, logs) == [0, 0], worker_logs(logs)
    for node in range(2):
        assert "compared 2" in (logs / f"node{node}" / "workerlog.0").read_text()
