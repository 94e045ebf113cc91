"""Training speed on this CPU: training paths, clips/s from memory, data waiting, to_static.

    python benchmarks/train_speed.py [--steps 1] [--warmup 1] [--rounds 1] [--data-steps 1]
                                     [--workers 0,2] [--small]
                                     [--skip paths,two_process,data,static] [--paths-only]
                                     [--models demo,4x16@112,4x16@224]

0. Training paths (``benchmarks/train_paths.py``): for the demo model (batch 8, crop 64) and
   the 4x16 (batch 2, crops 112 and 224), today's dygraph step against ``cpu_fast_path:
   onednn``, the paths taking turns over at least 2 rounds, with the ratio of each step to the
   oneDNN inference forward of the same model and batch. ``--paths-only`` stops after it.

All rows train slowfast.yaml's model (R50, width 64, 4x16) with its Momentum optimizer and
cosine LR, batch 2 per process at the 224 crop: forward with the loss, backward, optimizer step.
One such step takes tens of seconds on a 2-core CPU, hence the small defaults; use
``--steps 3 --rounds 2`` for steadier numbers.

1. From memory (random slow [2,3,4,224,224], fast [2,3,32,224,224], labels): one process, and
   two processes launched through ``paddle.distributed.launch --nproc_per_node 2`` on this
   script's ``--worker`` mode with ``paddle.DataParallel`` (gradients all-reduced every step).
   Per-process and total clips/s, and the 2-process / 1-process ratio of total clips/s.
2. Waiting for data: 10-second 340x256 H.264 videos read through slowfast.yaml's train
   pipeline and ``build_dataloader`` with 0 and 2 workers, training the model from (1); per
   step, the time blocked on the loader against the whole step, after one warm-up step (which
   includes starting the workers).
3. Dygraph against the backbone converted by ``convert_backbone`` (``-o to_static=True``): the
   model from (1) is converted, its first step (which builds the program) and then its step time
   are compared with its dygraph numbers from (1). ``--small`` adds the same comparison for the
   narrow test model (width 8, 64 crop, 16 frames) over ``--small-steps`` steps.

Step times are means over ``--steps`` steps after ``--warmup`` (at least 1) untimed steps; with
``--rounds`` > 1 the median over rounds. Each process uses Paddle's default CPU math threads
(one per process).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paddle  # noqa: E402
from common import (  # noqa: E402
    CONFIG_DIR,
    ROOT,
    build_trainer,
    median_of_rounds,
    memory_batch,
    print_table,
    timed_steps,
    train_step,
)

from paddlevideo.tasks.backbone_paths import convert_backbone, convert_info  # noqa: E402
from paddlevideo.utils.config import get_config  # noqa: E402

CONFIG = os.path.join(CONFIG_DIR, "slowfast.yaml")
BATCH, CROP = 2, 224


# ---------------------------------------------------------------- 1. from memory, 1 or 2 procs
def in_memory_speed(cfg, steps: int, warmup: int, rounds: int) -> Dict[str, float]:
    """Step time and clips/s of this process (``DataParallel`` when launched with several)."""
    world = int(paddle.distributed.ParallelEnv().world_size)
    model, optimizer, lr = build_trainer(cfg)
    if world > 1:
        paddle.distributed.init_parallel_env()
        model = paddle.DataParallel(model)
    batch = memory_batch(cfg, seed=paddle.distributed.get_rank())
    start = time.perf_counter()
    timed_steps(model, optimizer, lr, batch, max(warmup, 1))
    first_s = time.perf_counter() - start
    per_round = [timed_steps(model, optimizer, lr, batch, steps, warmup + r * steps)
                 for r in range(rounds)]
    step_s = median_of_rounds(per_round)
    return {"step_s": step_s, "clips_per_s": BATCH / step_s, "first_s": first_s,
            "trainer": (model, optimizer, lr), "batch": batch}


def worker_main(args: argparse.Namespace) -> int:
    """``--worker``: one launched process; writes its numbers to ``--result-dir``."""
    cfg = get_config(CONFIG)
    result = in_memory_speed(cfg, args.steps, args.warmup, args.rounds)
    result = {k: v for k, v in result.items() if k in ("step_s", "clips_per_s", "first_s")}
    rank = paddle.distributed.get_rank()
    with open(os.path.join(args.result_dir, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)
    return 0


def two_process_speed(args: argparse.Namespace) -> List[Dict[str, float]]:
    """Launch 2 CPU processes on the worker mode; their per-process results, rank order."""
    with tempfile.TemporaryDirectory(prefix="train_speed_") as tmp:
        env = dict(os.environ)
        # an empty CUDA_VISIBLE_DEVICES makes the launcher look for GPUs: leave it unset
        env.pop("CUDA_VISIBLE_DEVICES", None)
        cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
               "--log_dir", os.path.join(tmp, "log"), os.path.abspath(__file__), "--worker",
               "--result-dir", tmp, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--rounds", str(args.rounds)]
        proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
        paths = [os.path.join(tmp, f"rank{r}.json") for r in range(2)]
        if proc.returncode != 0 or not all(os.path.exists(p) for p in paths):
            logs = _read_logs(os.path.join(tmp, "log"))
            raise RuntimeError(f"2-process run failed (exit {proc.returncode}):\n"
                               f"{proc.stderr[-2000:]}\n{logs[-3000:]}")
        results = []
        for path in paths:
            with open(path) as f:
                results.append(json.load(f))
        return results


def _read_logs(folder: str) -> str:
    if not os.path.isdir(folder):
        return ""
    texts = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), errors="replace") as f:
            texts.append(f"--- {name}\n{f.read()}")
    return "\n".join(texts)


# ---------------------------------------------------------------- 2. dygraph vs to_static
def static_vs_dygraph(trainer, batch, steps: int, warmup: int, rounds: int,
                      dygraph: Optional[Dict[str, float]] = None) -> Dict[str, float]:
    """Step seconds of ``trainer``'s model in dygraph, then with its backbone through to_static.

    ``dygraph`` (``first_s``, ``step_s``) reuses a measurement of this same model made just
    before, so the full model's dygraph steps are not run twice. The to_static side's first step
    builds the program; later steps run it.
    """
    model, optimizer, lr = trainer
    step = 0
    if dygraph is None:
        start = time.perf_counter()
        timed_steps(*trainer, batch, max(warmup, 1))
        first_dygraph = time.perf_counter() - start
        step = max(warmup, 1)
        per_round = [timed_steps(*trainer, batch, steps, step + r * steps) for r in range(rounds)]
        dygraph = {"first_s": first_dygraph, "step_s": median_of_rounds(per_round)}
        step += rounds * steps
    convert_backbone(model, "to_static")
    start = time.perf_counter()
    timed_steps(*trainer, batch, max(warmup, 1), step)
    first_static = time.perf_counter() - start
    if convert_info(model) != "static":
        raise RuntimeError("to_static fell back to dygraph (see the warning above)")
    step += max(warmup, 1)
    per_round = [timed_steps(*trainer, batch, steps, step + r * steps) for r in range(rounds)]
    static_step = median_of_rounds(per_round)
    return {"dygraph_step_s": dygraph["step_s"], "static_step_s": static_step,
            "dygraph_first_s": dygraph["first_s"], "static_first_s": first_static,
            "speedup": dygraph["step_s"] / static_step}


def small_cfg():
    """slowfast.yaml's model narrowed to the test model: width 8, 16 frames, 64 crop, 5 classes."""
    overrides = {"MODEL.backbone.width_per_group": 8, "MODEL.head.width_per_group": 8,
                 "MODEL.backbone.alpha": 4, "MODEL.backbone.beta": 4, "MODEL.head.alpha": 4,
                 "MODEL.head.beta": 4, "MODEL.head.num_frames": 16, "MODEL.head.crop_size": 64,
                 "MODEL.head.num_classes": 5, "PIPELINE.train.decode_sampler.num_frames": 16}
    return get_config(CONFIG, [f"{k}={v}" for k, v in overrides.items()])


# ---------------------------------------------------------------- 3. waiting for data
def make_videos(folder: str, count: int, seconds: int = 10, fps: int = 30) -> str:
    """``count`` 340x256 H.264 videos of a drifting texture; returns the list file."""
    import cv2

    from paddlevideo.loader.demo_data import encode_h264

    lines = []
    for i in range(count):
        rng = np.random.default_rng(i)
        coarse = rng.uniform(0, 255, (32, 128, 3)).astype(np.float32)
        texture = cv2.resize(coarse, (340 * 2, 256), interpolation=cv2.INTER_CUBIC)
        frames = np.stack([texture[:, t: t + 340] for t in range(seconds * fps)])
        path = os.path.join(folder, f"video_{i}.mp4")
        encode_h264(path, np.clip(frames, 0, 255).astype(np.uint8), fps)
        lines.append(f"{path} {i % 400}")
    list_path = os.path.join(folder, "train.list")
    with open(list_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return list_path


def data_wait(trainer, list_path: str, workers: int, steps: int) -> Dict[str, float]:
    """Mean reader wait and step time over ``steps`` steps after one warm-up step (which
    includes starting the workers); ``trainer`` is an already warmed-up model."""
    from paddlevideo.loader import build_dataloader, build_dataset

    cfg = get_config(CONFIG, [f"DATASET.train.file_path={list_path}"])
    dataset = build_dataset((cfg.DATASET.train, cfg.PIPELINE.train))
    loader = build_dataloader(dataset, BATCH, workers, shuffle=True, drop_last=True, seed=0)
    model, optimizer, lr = trainer
    waits, totals, step = [], [], 0
    while step <= steps:  # more steps than one epoch holds: start another epoch
        tick = time.perf_counter()
        for batch in loader:
            ready = time.perf_counter()
            train_step(model, optimizer, lr, batch, step)
            done = time.perf_counter()
            if step > 0:  # step 0 warms up (worker start, first allocations)
                waits.append(ready - tick)
                totals.append(done - tick)
            step, tick = step + 1, done
            if step > steps:
                break
    wait, total = statistics.fmean(waits), statistics.fmean(totals)
    return {"wait_s": wait, "step_s": total, "fraction": wait / total}


# ---------------------------------------------------------------- report
def report_processes(one: Dict[str, float], two: Optional[List[Dict[str, float]]]) -> None:
    rows = [["1 process", f"{one['step_s']:.2f}", f"{one['clips_per_s']:.3f}",
             f"{one['clips_per_s']:.3f}", "1.00"]]
    if two:
        total = sum(r["clips_per_s"] for r in two)
        per = " / ".join(f"{r['clips_per_s']:.3f}" for r in two)
        steps = " / ".join(f"{r['step_s']:.2f}" for r in two)
        rows.append(["2 processes (DataParallel)", steps, per, f"{total:.3f}",
                     f"{total / one['clips_per_s']:.2f}"])
    print_table(f"SlowFast 4x16 training from memory, batch {BATCH}/process, crop {CROP}",
                ["run", "step s", "clips/s per process", "clips/s total", "vs 1 process"], rows)


def report_static(results: Dict[str, Dict[str, float]]) -> None:
    rows = []
    for name, r in results.items():
        rows.append([name, f"{r['dygraph_step_s']:.3f}", f"{r['static_step_s']:.3f}",
                     f"{r['speedup']:.2f}", f"{r['dygraph_first_s']:.1f}",
                     f"{r['static_first_s']:.1f}"])
    print_table("dygraph vs to_static (convert_backbone), one process",
                ["model", "dygraph step s", "to_static step s", "dygraph/static",
                 "dygraph 1st step s", "to_static 1st step s"], rows)


def report_data(results: Dict[int, Dict[str, float]]) -> None:
    rows = [[f"{w} workers", f"{r['step_s']:.2f}", f"{r['wait_s']:.3f}",
             f"{100 * r['fraction']:.1f}%"] for w, r in results.items()]
    print_table(f"SlowFast 4x16 training from 10 s 340x256 H.264 videos, batch {BATCH}",
                ["loader", "step s", "data wait s", "wait / step"], rows)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1,
                        help="timed steps per measurement of the 4x16 model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before timing")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat each timed block; the median round is reported")
    parser.add_argument("--data-steps", type=int, default=1,
                        help="timed steps per loader setting in the data-wait table")
    parser.add_argument("--workers", default="0,2", help="loader worker counts to compare")
    parser.add_argument("--small", action="store_true",
                        help="also compare dygraph and to_static on the narrow test model")
    parser.add_argument("--small-steps", type=int, default=20,
                        help="timed steps per measurement of the narrow model")
    parser.add_argument("--skip", default="",
                        help="comma list of parts to leave out: paths, two_process, static, data")
    parser.add_argument("--paths-only", action="store_true",
                        help="print only the training-paths table")
    parser.add_argument("--models", default="demo,4x16@112,4x16@224",
                        help="models of the training-paths table")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result-dir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - {"paths", "two_process", "static", "data"}
    if unknown:
        raise SystemExit(f"--skip: unknown part(s) {sorted(unknown)}")
    paddle.set_device("cpu")
    cfg = get_config(CONFIG)
    print(f"Paddle {paddle.__version__}, {os.cpu_count()} CPUs, steps {args.steps}, "
          f"warm-up {args.warmup}, rounds {args.rounds}")
    if "paths" not in skip:
        from train_paths import run as run_paths

        run_paths(argparse.Namespace(models=args.models, steps=args.steps, warmup=args.warmup,
                                     rounds=max(args.rounds, 2)))
    if args.paths_only:
        return 0
    one = in_memory_speed(cfg, args.steps, args.warmup, args.rounds)
    two = None if "two_process" in skip else two_process_speed(args)
    report_processes(one, two)
    trainer = one["trainer"]
    if "data" not in skip:
        with tempfile.TemporaryDirectory(prefix="train_speed_videos_") as folder:
            list_path = make_videos(folder, (args.data_steps + 1) * BATCH)
            workers = [int(w) for w in args.workers.split(",")]
            report_data({w: data_wait(trainer, list_path, w, args.data_steps)
                         for w in workers})
    if "static" not in skip:
        static = {}
        if args.small:
            static["narrow (w8, 16f, 64px, batch 2)"] = static_vs_dygraph(
                build_trainer(small_cfg()), memory_batch(small_cfg(), BATCH, 64),
                args.small_steps, args.warmup, args.rounds)
        # the full model's dygraph side is the 1-process measurement above
        static[f"4x16 (224px, batch {BATCH})"] = static_vs_dygraph(
            trainer, one["batch"], args.steps, args.warmup, args.rounds, dygraph=one)
        report_static(static)
    return 0


if __name__ == "__main__":
    sys.exit(main())
