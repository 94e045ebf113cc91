"""Forward and forward+backward time of SlowFast 4x16 and 8x8 on this machine, plus GMACs per clip.

    python benchmarks/model_speed.py [--batch-sizes 1,2] [--repeats 1] [--models 4x16,8x8]

Times are the median of ``--repeats`` runs after one warm-up forward (which also counts the
MACs at the 224 training crop). "forward" is inference (eval mode, no gradients); "fwd+bwd" is a
training step's forward with the loss and its backward. GMACs at 256 (the test crop) come from a
64-pixel forward × 16, which is exact for crops that are multiples of 32.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from functools import partial
from typing import Callable, Dict, List

import paddle

from paddlevideo.modeling.builder import build_model
from paddlevideo.modeling.flops import count_macs, slowfast_inputs
from paddlevideo.utils.config import get_config

CONFIGS = {"4x16": "configs/recognition/slowfast/slowfast.yaml",
           "8x8": "configs/recognition/slowfast/slowfast_multigrid.yaml"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _median_seconds(step: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def forward(model: paddle.nn.Layer, inputs: List[paddle.Tensor]) -> None:
    """Inference: eval mode, no gradients, result copied to numpy (waits for the device)."""
    model.eval()
    with paddle.no_grad():
        model(inputs, mode="infer").numpy()


def forward_backward(model: paddle.nn.Layer, batch: List[paddle.Tensor]) -> None:
    """A training step without the optimizer: forward with the loss, then backward."""
    model.train()
    loss = model(batch, mode="train")["loss"]
    loss.backward()
    model.clear_gradients()


def gmacs_at(model: paddle.nn.Layer, alpha: int, num_frames: int, crop: int) -> float:
    """GMACs per clip; crops that are multiples of 32 are counted at 64 pixels and scaled."""
    if crop % 32 == 0 and crop > 64:
        small = count_macs(model, slowfast_inputs(num_frames, 64, alpha), mode="infer")
        return small.by_type["Conv3D"] * (crop / 64) ** 2 / 1e9 + small.by_type["Linear"] / 1e9
    return count_macs(model, slowfast_inputs(num_frames, crop, alpha), mode="infer") \
        .gmacs_per_sample


def benchmark_model(name: str, batch_sizes: List[int], crop: int, repeats: int) -> List[Dict]:
    cfg = get_config(os.path.join(ROOT, CONFIGS[name]))
    paddle.seed(0)
    model = build_model(cfg.MODEL)
    alpha = cfg.MODEL.backbone.alpha
    num_frames = cfg.PIPELINE.train.decode_sampler.num_frames
    num_classes = cfg.MODEL.head.num_classes
    # the warm-up forward, counted at the training crop
    gmacs_train = count_macs(model, slowfast_inputs(num_frames, crop, alpha),
                             mode="infer").gmacs_per_sample
    gmacs_test = gmacs_at(model, alpha, num_frames, 256)
    rows = []
    for batch in batch_sizes:
        slow, fast = slowfast_inputs(num_frames, crop, alpha, batch_size=batch)
        labels = paddle.randint(0, num_classes, [batch, 1])

        step_inputs = [slow, fast]
        rows.append({"model": name, "batch": batch,
                     "forward": _median_seconds(partial(forward, model, step_inputs), repeats),
                     "fwd+bwd": _median_seconds(
                         partial(forward_backward, model, step_inputs + [labels]), repeats),
                     f"GMACs@{crop}": gmacs_train, "GMACs@256": gmacs_test})
    return rows


def print_table(rows: List[Dict], crop: int) -> None:
    print(f"\nSlowFast R50 speed on {paddle.device.get_device()} "
          f"({os.cpu_count()} CPUs), {crop}x{crop} crops, 32 frames")
    print(f"{'model':>6} {'batch':>5} {'forward s':>10} {'s/clip':>7} {'fwd+bwd s':>10} "
          f"{'s/clip':>7} {'bwd/fwd':>7} {f'GMACs@{crop}':>11} {'GMACs@256':>10}")
    for r in rows:
        print(f"{r['model']:>6} {r['batch']:>5} {r['forward']:>10.2f} "
              f"{r['forward'] / r['batch']:>7.2f} {r['fwd+bwd']:>10.2f} "
              f"{r['fwd+bwd'] / r['batch']:>7.2f} {r['fwd+bwd'] / r['forward']:>7.2f} "
              f"{r[f'GMACs@{crop}']:>11.1f} {r['GMACs@256']:>10.1f}")
    print("published GMACs per clip at 256: 4x16 36.1, 8x8 65.7")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="4x16,8x8")
    parser.add_argument("--batch-sizes", default="1,2")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    paddle.set_device("cpu")
    rows = []
    for name in args.models.split(","):
        if name not in CONFIGS:
            parser.error(f"--models: unknown model {name!r}; choose from {sorted(CONFIGS)}")
        rows += benchmark_model(name, [int(b) for b in args.batch_sizes.split(",")],
                                args.crop, args.repeats)
    print_table(rows, args.crop)


if __name__ == "__main__":
    main()
