"""Where a CPU training step goes: kernel time per op type, from ``paddle.profiler``.

    python benchmarks/train_profile.py [--models demo,4x16] [--crop 112] [--steps 1]

For each model, one training step (forward with the loss, backward, optimizer step, on an
in-memory batch, after one warm-up step) is traced with ``paddle.profiler`` and the host
kernel time of every op is summed by op type. Models: ``demo`` (slowfast_demo.yaml: width 8,
8 frames, 64 crop, batch 8, AdamW) and ``4x16`` (slowfast.yaml: R50 4x16, batch 2, ``--crop``,
Momentum). The table lists, per op type, milliseconds per step and the share of the step's wall
time; "phases" gives the forward, backward and optimizer wall time of the same step.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from typing import Dict, List, Optional

import paddle
from paddle import profiler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, build_trainer, memory_batch, print_table  # noqa: E402

from paddlevideo.tasks.backbone_paths import apply_backbone_path  # noqa: E402
from paddlevideo.utils.config import get_config  # noqa: E402

MODELS = {
    "demo": ("slowfast_demo.yaml", 8, 64),
    "4x16": ("slowfast.yaml", 2, None),  # crop from --crop
}
# op type -> group shown in the table; anything else is "other"
GROUPS = {
    "conv3d": "conv3d", "conv3d_grad": "conv3d_grad",
    "batch_norm": "batch_norm", "batch_norm_grad": "batch_norm_grad",
    "pool3d": "pool3d (+grad)", "pool3d_grad": "pool3d (+grad)",
    "transpose": "layout copies (transpose, concat, split, slice)",
    "transpose_grad": "layout copies (transpose, concat, split, slice)",
    "concat": "layout copies (transpose, concat, split, slice)",
    "concat_grad": "layout copies (transpose, concat, split, slice)",
    "split": "layout copies (transpose, concat, split, slice)",
    "strided_slice": "layout copies (transpose, concat, split, slice)",
    "slice": "layout copies (transpose, concat, split, slice)",
    "relu": "elementwise (relu, add, ...)", "relu_grad": "elementwise (relu, add, ...)",
    "add": "elementwise (relu, add, ...)", "add_grad": "elementwise (relu, add, ...)",
    "add_n": "elementwise (relu, add, ...)", "multiply": "elementwise (relu, add, ...)",
    "scale": "elementwise (relu, add, ...)", "cast": "elementwise (relu, add, ...)",
    "momentum": "optimizer update", "adamw": "optimizer update", "adam": "optimizer update",
    "onednn_to_paddle_layout": "layout copies (oneDNN blocked → plain)",
}
KERNEL_EVENT = re.compile(r"^(\w+) kernel launch\[")
STATIC_OP_EVENT = re.compile(r"^(pd_op|onednn_op)\.(\w+?)_?\[")


def profile_step(cfg_name: str, batch: int, crop: int, path: str = "dygraph",
                 dump: str = "") -> Dict[str, object]:
    """Trace one step after a warm-up; returns op-type ms, phase seconds and the step's wall."""
    cfg = get_config(os.path.join(ROOT, "configs", "recognition", "slowfast", cfg_name))
    model, optimizer, lr = build_trainer(cfg)
    apply_backbone_path(model, {"cpu_fast_path": path})
    data = memory_batch(cfg, batch, crop)
    phases = {}

    def step(record: bool) -> None:
        tick = time.perf_counter()
        loss = model(data, mode="train")["loss"]
        loss.item()
        mid = time.perf_counter()
        loss.backward()
        back = time.perf_counter()
        optimizer.step()
        optimizer.clear_grad()
        if record:
            phases.update(forward=mid - tick, backward=back - mid,
                          optimizer=time.perf_counter() - back)

    step(False)
    with tempfile.TemporaryDirectory(prefix="train_profile_") as folder:
        prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU],
                                 on_trace_ready=profiler.export_chrome_tracing(folder))
        prof.start()
        step(True)
        prof.step()
        prof.stop()
        trace = sorted(glob.glob(os.path.join(folder, "*.json")))[-1]
        if dump:
            import shutil
            shutil.copy(trace, dump)
        ops = kernel_ms_by_op(trace)
    return {"ops": ops, "phases": phases, "step_s": sum(phases.values())}


def kernel_ms_by_op(trace_path: str) -> Dict[str, float]:
    """Milliseconds per op type in a chrome trace (Paddle's trace times are microseconds).

    Dygraph ops count their ``<op> kernel launch`` events. Ops of a static program count their
    instruction events (``pd_op.<op>``, or ``onednn_op.<op>`` shown as ``<op> (oneDNN)``), which
    include the op's input layout transforms; their inner kernel events are not counted again.
    """
    with open(trace_path) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    total = defaultdict(float)
    for event in events:
        if event.get("ph") != "X":
            continue
        name = event.get("name", "")
        dygraph = KERNEL_EVENT.match(name) if event.get("cat") == "DygraphKernelLaunch" else None
        static = STATIC_OP_EVENT.match(name) if event.get("cat") == "Operator" else None
        if dygraph:
            total[dygraph.group(1)] += event["dur"] / 1000.0
        elif static:
            op = static.group(2) + (" (oneDNN)" if static.group(1) == "onednn_op" else "")
            total[op] += event["dur"] / 1000.0
    return dict(total)


def group_rows(ops: Dict[str, float], step_s: float) -> List[List[str]]:
    grouped = defaultdict(float)
    for op, ms in ops.items():
        base = op.replace(" (oneDNN)", "")
        group = GROUPS.get(base, "other")
        grouped[group + (" (oneDNN)" if base != op else "")] += ms
    rows = [[name, f"{ms:.0f}", f"{100 * ms / (1000 * step_s):.1f}%"]
            for name, ms in sorted(grouped.items(), key=lambda kv: -kv[1])]
    kernels = sum(grouped.values())
    rows.append(["all kernels", f"{kernels:.0f}", f"{100 * kernels / (1000 * step_s):.1f}%"])
    return rows


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,4x16", help="comma list of: demo, 4x16")
    parser.add_argument("--crop", type=int, default=112, help="crop of the 4x16 model")
    parser.add_argument("--top", type=int, default=12, help="single op types listed")
    parser.add_argument("--path", default="dygraph", choices=("dygraph", "onednn"),
                        help="cpu_fast_path of the profiled step")
    parser.add_argument("--dump", default="", help="copy the chrome trace to this file")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    paddle.set_device("cpu")
    for name in args.models.split(","):
        if name not in MODELS:
            raise SystemExit(f"--models: unknown model {name!r}; choose from {sorted(MODELS)}")
        cfg_name, batch, crop = MODELS[name]
        crop = crop or args.crop
        result = profile_step(cfg_name, batch, crop, args.path, args.dump)
        step_s, phases = result["step_s"], result["phases"]
        title = (f"{name} ({cfg_name}, batch {batch}, crop {crop}): step {step_s:.2f} s = "
                 + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()))
        print_table(title, ["op group", "ms / step", "of step"], group_rows(result["ops"], step_s))
        top = sorted(result["ops"].items(), key=lambda kv: -kv[1])[:args.top]
        print_table(f"{name}: top op types", ["op", "ms / step", "of step"],
                    [[op, f"{ms:.0f}", f"{100 * ms / (1000 * step_s):.1f}%"] for op, ms in top])
    return 0


if __name__ == "__main__":
    sys.exit(main())
