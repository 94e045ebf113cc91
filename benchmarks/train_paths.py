"""CPU training paths side by side: today's dygraph step against ``cpu_fast_path: onednn``.

Part of ``benchmarks/train_speed.py`` (its first table); also runs alone:

    python benchmarks/train_paths.py [--models demo,4x16@112,4x16@224] [--steps 2] [--rounds 2]

For each model, a trainer per path (same seed, same config optimizer and LR schedule, same
in-memory batch) and, in rounds where the paths take turns (dygraph, onednn, dygraph...), the
wall and CPU (process) time of ``--steps`` training steps after ``--warmup`` untimed ones (the
first onednn step builds the program). The losses of the first steps are compared. The
reference is the exported model's forward at the same batch and crop in Paddle Inference with
oneDNN, one thread: a training step costs about three forwards, so step / forward is how far a
path is from what the CPU does.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paddle  # noqa: E402
from common import CONFIG_DIR, build_trainer, memory_batch, print_table, train_step  # noqa: E402

from paddlevideo.tasks.backbone_paths import apply_backbone_path  # noqa: E402
from paddlevideo.utils.config import get_config  # noqa: E402

MODELS = {  # name -> (config, batch, crop)
    "demo": ("slowfast_demo.yaml", 8, 64),
    "4x16@112": ("slowfast.yaml", 2, 112),
    "4x16@224": ("slowfast.yaml", 2, 224),
}
PATHS = ("dygraph", "auto")  # "auto": the default, what a user without the key gets


def model_config(name: str):
    cfg_name, batch, crop = MODELS[name]
    return get_config(os.path.join(CONFIG_DIR, cfg_name)), batch, crop


def timed(trainer, batch, steps: int, first_step: int) -> List[Dict[str, float]]:
    """Wall and CPU seconds and the loss of each of ``steps`` training steps."""
    model, optimizer, lr = trainer
    out = []
    for i in range(steps):
        wall, cpu = time.perf_counter(), time.process_time()
        value = train_step(model, optimizer, lr, batch, first_step + i)
        out.append({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                    "loss": value})
    return out


def inference_forward_s(cfg, model, batch: int, crop: int, repeats: int = 2) -> float:
    """Median seconds of the exported model's forward on ``batch`` clips in Paddle Inference
    with oneDNN (one thread), after one warm-up run."""
    from paddlevideo.inference import EngineOptions, create_engine, export_inference_model

    cfg.INFERENCE.target_size = crop
    frames = cfg.PIPELINE.train.decode_sampler.num_frames
    alpha = cfg.MODEL.backbone.alpha
    with tempfile.TemporaryDirectory(prefix="train_paths_") as tmp:
        paths = export_inference_model(model, cfg, tmp, "SlowFast", "pdmodel")
        engine = create_engine(paths["model"], paths["params"],
                               EngineOptions(enable_mkldnn=True, cpu_threads=1))
        fast = np.random.default_rng(0).standard_normal(
            (batch, 3, frames, crop, crop)).astype("float32")
        slow = fast[:, :, ::alpha].copy()
        engine.run(slow, fast)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            engine.run(slow, fast)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare_paths(name: str, steps: int, warmup: int, rounds: int) -> Dict[str, object]:
    """Per path: median step wall/CPU over rounds, first-step losses; and the inference forward."""
    cfg, batch_size, crop = model_config(name)
    batch = memory_batch(cfg, batch_size, crop)
    trainers, chosen, first = {}, {}, {}
    for path in PATHS:
        trainer = build_trainer(cfg)
        chosen[path] = apply_backbone_path(trainer[0], {"cpu_fast_path": path})
        start = time.perf_counter()
        first[path] = timed(trainer, batch, max(warmup, 1), 0)
        first[path][0]["build_s"] = time.perf_counter() - start
        trainers[path] = trainer
    samples: Dict[str, List[Dict[str, float]]] = {p: [] for p in PATHS}
    for r in range(rounds):
        for path in PATHS:  # the paths take turns, so drifting load hits both alike
            samples[path] += timed(trainers[path], batch, steps, max(warmup, 1) + r * steps)
    result = {"batch": batch_size, "crop": crop, "paths": {}}
    for path in PATHS:
        walls = [s["wall"] for s in samples[path]]
        result["paths"][path] = {
            "runs": chosen[path], "wall": statistics.median(walls), "wall_min": min(walls),
            "wall_max": max(walls), "cpu": statistics.median(s["cpu"] for s in samples[path]),
            "losses": [s["loss"] for s in first[path]], "first_s": first[path][0]["build_s"]}
    model = trainers["dygraph"][0]
    model.eval()
    result["inference_s"] = inference_forward_s(cfg, model, batch_size, crop)
    return result


def report(results: Dict[str, Dict[str, object]]) -> None:
    rows = []
    for name, res in results.items():
        base = res["paths"]["dygraph"]
        for path, r in res["paths"].items():
            rows.append([f"{name} (batch {res['batch']}, crop {res['crop']})", path, r["runs"],
                         f"{r['wall']:.3f} ({r['wall_min']:.3f}-{r['wall_max']:.3f})",
                         f"{r['cpu']:.3f}", f"{base['wall'] / r['wall']:.2f}",
                         f"{base['cpu'] / r['cpu']:.2f}", f"{r['wall'] / res['inference_s']:.1f}",
                         f"{r['cpu'] / res['inference_s']:.1f}",
                         f"{r['first_s']:.1f}",
                         " ".join(f"{x:.5f}" for x in r["losses"])])
    print_table("CPU training paths (cpu_fast_path), one process; step s = median (min-max)",
                ["model", "path", "runs", "step s", "CPU s", "wall speed-up", "CPU speed-up",
                 "wall / inference fwd", "CPU / inference fwd", "1st step s", "first losses"],
                rows)
    print("oneDNN inference forward (Paddle Inference, 1 thread, same batch and crop): "
          + ", ".join(f"{n} {r['inference_s']:.3f} s" for n, r in results.items()))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma list of: {', '.join(MODELS)}")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per path per round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of turns between paths")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> Dict[str, Dict[str, object]]:
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise SystemExit(f"--models: unknown {unknown}; choose from {sorted(MODELS)}")
    results = {n: compare_paths(n, args.steps, args.warmup, args.rounds) for n in names}
    report(results)
    return results


def main(argv: Optional[List[str]] = None) -> int:
    paddle.set_device("cpu")
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
