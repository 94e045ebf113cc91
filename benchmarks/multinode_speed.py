"""Training speed as 1 × 1, 1 node × 2 processes and 2 nodes × 1 process (on loopback), and the
all-reduce share of a step.

    python benchmarks/multinode_speed.py [--model small|full] [--steps 5] [--rounds 3]
                                         [--warmup 2]

Every row trains the same model (``small``: slowfast.yaml narrowed to the test model, width 8,
16 frames, 64 crop; ``full``: R50 4x16 at 224, tens of seconds a step here) with batch 2 per
process from memory, through ``paddle.distributed.launch`` (``--nproc_per_node 2``, or two
launchers with ``--nnodes 2 --master 127.0.0.1:PORT``). Per row: the step time with the gradient
all-reduce (``paddle.DataParallel``), the step time under ``no_sync()`` (the same step without
it), their difference as a share of the step, and the time of one all-reduce of all gradients
flattened into one tensor. Step times are medians over ``--rounds`` interleaved rounds of
``--steps`` steps each way. On one 2-core machine the two "nodes" share the cores: the point is
the overhead of the multi-node path against 1 × 2 (target ≤ 5 %), not scaling.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import paddle  # noqa: E402
import paddle.distributed as dist  # noqa: E402

from paddlevideo.modeling import build_model  # noqa: E402
from paddlevideo.solver import build_lr, build_optimizer  # noqa: E402
from paddlevideo.utils.config import get_config  # noqa: E402

CONFIG = os.path.join(ROOT, "configs", "recognition", "slowfast", "slowfast.yaml")
BATCH = 2
SMALL = {"MODEL.backbone.width_per_group": 8, "MODEL.head.width_per_group": 8,
         "MODEL.backbone.alpha": 4, "MODEL.backbone.beta": 4, "MODEL.head.alpha": 4,
         "MODEL.head.beta": 4, "MODEL.head.num_frames": 16, "MODEL.head.crop_size": 64,
         "MODEL.head.num_classes": 5, "PIPELINE.train.decode_sampler.num_frames": 16}


def model_config(name: str):
    """``(config, crop)`` of the ``small`` or ``full`` model."""
    if name == "small":
        return get_config(CONFIG, [f"{k}={v}" for k, v in SMALL.items()]), 64
    return get_config(CONFIG), 224


def random_batch(cfg, crop: int, seed: int) -> List[paddle.Tensor]:
    """``[slow [N,3,T/alpha,crop,crop], fast [N,3,T,crop,crop], labels [N,1]]``."""
    frames, alpha = cfg.PIPELINE.train.decode_sampler.num_frames, cfg.MODEL.backbone.alpha
    rng = np.random.default_rng(seed)
    fast = rng.standard_normal((BATCH, 3, frames, crop, crop), dtype=np.float32)
    labels = rng.integers(0, cfg.MODEL.head.num_classes, (BATCH, 1)).astype("int64")
    return [paddle.to_tensor(fast[:, :, ::alpha].copy()), paddle.to_tensor(fast),
            paddle.to_tensor(labels)]


def step_times(model, optimizer, batch, steps: int, sync: bool) -> List[float]:
    """Seconds of each of ``steps`` steps, with (``sync``) or without the gradient all-reduce."""
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        if sync or not isinstance(model, paddle.DataParallel):
            model(batch, mode="train")["loss"].backward()
        else:
            with model.no_sync():
                model(batch, mode="train")["loss"].backward()
        optimizer.step()
        optimizer.clear_grad()
        times.append(time.perf_counter() - start)
    return times


def flat_all_reduce_seconds(model, batch, repeats: int = 3) -> float:
    """Median seconds of one all-reduce of every gradient concatenated into one tensor."""
    if not isinstance(model, paddle.DataParallel):
        return 0.0
    with model.no_sync():
        model(batch, mode="train")["loss"].backward()
    grads = [p.grad.reshape([-1]) for p in model.parameters() if p.grad is not None]
    flat = paddle.concat(grads)
    times = []
    for _ in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(flat)
        times.append(time.perf_counter() - start)
    model.clear_gradients()
    return statistics.median(times)


def worker(args: argparse.Namespace) -> int:
    """One launched process: writes its timings to ``--result-dir/rank{R}.json``."""
    paddle.set_device("cpu")
    cfg, crop = model_config(args.model)
    world = int(paddle.distributed.ParallelEnv().world_size)
    paddle.seed(0)
    model = build_model(cfg.MODEL)
    model.train()
    optimizer = build_optimizer(cfg.OPTIMIZER, build_lr(cfg.OPTIMIZER.learning_rate, 100), model)
    if world > 1:
        dist.init_parallel_env()
        model = paddle.DataParallel(model)
    rank = dist.get_rank() if world > 1 else 0
    batch = random_batch(cfg, crop, seed=rank)
    step_times(model, optimizer, batch, args.warmup, sync=True)
    with_sync, without = [], []
    for _ in range(args.rounds):  # interleaved, so a load change on the machine hits both
        with_sync += step_times(model, optimizer, batch, args.steps, sync=True)
        without += step_times(model, optimizer, batch, args.steps, sync=False)
    result = {"step_s": statistics.median(with_sync), "no_sync_step_s": statistics.median(without),
              "flat_all_reduce_s": flat_all_reduce_seconds(model, batch)}
    with open(os.path.join(args.result_dir, f"rank{rank}.json"), "w") as handle:
        json.dump(result, handle)
    return 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_topology(args: argparse.Namespace, nodes: int, procs: int) -> Dict[str, float]:
    """Launch ``nodes`` launchers × ``procs`` processes; rank 0's timings (step times are
    the same on every rank: each waits for the others in the all-reduce)."""
    with tempfile.TemporaryDirectory(prefix="multinode_speed_") as tmp:
        env = dict(os.environ)
        env.pop("CUDA_VISIBLE_DEVICES", None)  # an empty value makes the launcher expect GPUs
        port = free_port()
        worker_args = [os.path.abspath(__file__), "--worker", "--result-dir", tmp, "--model",
                       args.model, "--steps", str(args.steps), "--warmup", str(args.warmup),
                       "--rounds", str(args.rounds)]
        launchers = []
        for node in range(nodes):
            cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node",
                   str(procs), "--log_dir", os.path.join(tmp, f"log{node}")]
            if nodes > 1:
                cmd += ["--nnodes", str(nodes), "--master", f"127.0.0.1:{port}", "--rank",
                        str(node), "--host", "127.0.0.1"]
            if nodes * procs == 1:
                cmd = [sys.executable]
            launchers.append(subprocess.Popen(cmd + worker_args, env=env, cwd=ROOT,
                                              stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE, text=True))
        errors = [proc.communicate()[1] for proc in launchers]
        path = os.path.join(tmp, "rank0.json")
        if any(proc.returncode for proc in launchers) or not os.path.exists(path):
            raise RuntimeError(f"{nodes} × {procs} failed:\n" + "\n".join(e[-2000:]
                                                                          for e in errors))
        with open(path) as handle:
            return json.load(handle)


def report(rows: Dict[str, Dict[str, float]]) -> None:
    header = ["nodes × processes", "step s", "clips/s (all)", "no_sync step s",
              "all-reduce share", "flat all_reduce s"]
    table = []
    for name, result in rows.items():
        world = int(name.split(" × ")[0]) * int(name.split(" × ")[1])
        share = max(result["step_s"] - result["no_sync_step_s"], 0.0) / result["step_s"]
        table.append([name, f"{result['step_s']:.3f}", f"{BATCH * world / result['step_s']:.2f}",
                      f"{result['no_sync_step_s']:.3f}",
                      f"{share:.1%}" if world > 1 else "-",
                      f"{result['flat_all_reduce_s']:.4f}" if world > 1 else "-"])
    widths = [max(len(str(x)) for x in column) for column in zip(header, *table)]
    for row in [header, ["-" * w for w in widths]] + table:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))
    if "1 × 2" in rows and "2 × 1" in rows:
        overhead = rows["2 × 1"]["step_s"] / rows["1 × 2"]["step_s"] - 1
        print(f"\n2 nodes × 1 against 1 node × 2: step time {overhead:+.1%} (target ≤ +5%)")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("small", "full"), default="small")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of (steps with, steps without the all-reduce)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result-dir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    rows: Dict[str, Any] = {}
    for nodes, procs in ((1, 1), (1, 2), (2, 1)):
        rows[f"{nodes} × {procs}"] = run_topology(args, nodes, procs)
    print(f"model {args.model}, batch {BATCH} per process, median of {args.rounds} × "
          f"{args.steps} steps with and without the all-reduce after {args.warmup} warm-up "
          f"steps, CPU, loopback\n")
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
