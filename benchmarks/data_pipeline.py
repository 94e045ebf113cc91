"""How much the SlowFast data pipeline costs on top of decoding, measured side by side.

    python benchmarks/data_pipeline.py [--rounds 5 --clips 6]

Writes 10-second 30 fps H.264 videos at 340x256 and 640x360 into a temporary folder and times,
per training clip (32 frames, sampling rate 2), medians over rounds:
  (a) floor: decord opening the video and decoding only the clip's frames (``get_batch``);
  (b) this training pipeline through ``build_dataset`` with slowfast.yaml's train pipeline
      (decoding with PyAV, which skips the frames a clip does not need), and (b') the same
      pipeline with ``backend: decord``;
  (c) a per-frame pipeline as PaddleVideo runs it (PIL images, PIL bilinear resize of whole
      frames, crop, float conversion, normalisation).
All three decode the same frames (the same per-clip seed). Then the test pipeline's time per video
(10 clips x 3 crops, each clip decoded once) against decoding every view separately, and loader
throughput with 0 and 2 workers. Targets: (b) <= 1.10 x (a); test pipeline >= 2.5x faster.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Callable, Dict, List

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from paddlevideo.loader import build_dataloader, build_dataset  # noqa: E402
from paddlevideo.loader.demo_data import encode_h264  # noqa: E402
from paddlevideo.loader.pipelines import functional as F  # noqa: E402
from paddlevideo.loader.pipelines.decode import DecodeSampler  # noqa: E402
from paddlevideo.loader.pipelines.random_state import pipeline_rng, seed_pipeline_rng  # noqa
from paddlevideo.utils.config import get_config  # noqa: E402

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "configs", "recognition", "slowfast", "slowfast.yaml")
SIZES = ((340, 256), (640, 360))
NUM_FRAMES, SAMPLING_RATE, MEAN, STD = 32, 2, [0.45] * 3, [0.225] * 3


def make_video(path: str, width: int, height: int, seconds: int = 10, fps: int = 30) -> None:
    """A panning texture with a moving blob: natural-ish content for the encoder."""
    rng = np.random.default_rng(0)
    import cv2

    coarse = rng.uniform(0, 255, (height // 8, width // 4, 3)).astype(np.float32)
    texture = cv2.resize(coarse, (width * 2, height), interpolation=cv2.INTER_CUBIC)
    frames = np.empty((seconds * fps, height, width, 3), np.uint8)
    for t in range(len(frames)):
        frame = texture[:, t: t + width].copy()
        cv2.circle(frame, (int(width * (0.2 + 0.6 * t / len(frames))), height // 2),
                   height // 6, (250, 40, 40), -1)
        frames[t] = np.clip(frame + rng.normal(0, 3, (height, width, 1)), 0, 255)
    encode_h264(path, frames, fps)


def clip_indices(num_video_frames: int, fps: float) -> np.ndarray:
    """The frames DecodeSampler picks for a training clip (same first draw of the stream)."""
    start = float(pipeline_rng().uniform(0.0, 1.0))
    return F.sample_clip_indices(num_video_frames, NUM_FRAMES, SAMPLING_RATE, fps, 30, start)


def floor_clip(path: str) -> None:
    import decord

    reader = decord.VideoReader(path, num_threads=0)
    reader.get_batch(clip_indices(len(reader), reader.get_avg_fps()).tolist()).asnumpy()


def paddlevideo_style_clip(path: str) -> None:
    """Per-frame PIL route: decode, PIL images, resize whole frames, crop, float, normalise."""
    import decord
    from PIL import Image

    reader = decord.VideoReader(path, num_threads=0)
    frames = reader.get_batch(clip_indices(len(reader), reader.get_avg_fps()).tolist()).asnumpy()
    images = [Image.fromarray(f, mode="RGB") for f in frames]
    size = int(round(pipeline_rng().uniform(256, 320)))
    width, height = images[0].size
    new_h, new_w = F.short_side_size(height, width, size)
    images = [img.resize((new_w, new_h), Image.BILINEAR) for img in images]
    x0 = int(pipeline_rng().integers(0, new_w - 224 + 1))
    y0 = int(pipeline_rng().integers(0, new_h - 224 + 1))
    images = [img.crop((x0, y0, x0 + 224, y0 + 224)) for img in images]
    if pipeline_rng().uniform() < 0.5:
        images = [img.transpose(Image.FLIP_LEFT_RIGHT) for img in images]
    array = np.stack([np.asarray(img) for img in images]).astype("float32")
    array = (array / 255.0 - np.array(MEAN, "float32")) / np.array(STD, "float32")
    fast = array.transpose(3, 0, 1, 2)
    _slow = fast[:, F.slow_pathway_indices(NUM_FRAMES, 8)]


def interleaved_medians(runs: Dict[str, Callable[[], None]], clips: int,
                        rounds: int) -> Dict[str, float]:
    """Median over rounds of ms per call; within a round the methods take turns clip by clip
    (clip k of round r gets the same seed in every method), so load changes hit all alike."""
    totals: Dict[str, List[float]] = {name: [] for name in runs}
    for r in range(rounds):
        spent = dict.fromkeys(runs, 0.0)
        for k in range(clips):
            for name, run in runs.items():
                seed_pipeline_rng((r, k))
                start = time.perf_counter()
                run()
                spent[name] += time.perf_counter() - start
        for name in runs:
            totals[name].append(spent[name] / clips * 1000)
    return {name: float(np.median(values)) for name, values in totals.items()}


def write_list(folder: str, path: str, copies: int) -> str:
    list_path = os.path.join(folder, os.path.basename(path) + ".list")
    with open(list_path, "w") as f:
        f.write(f"{path} 0\n" * copies)
    return list_path


def with_backend(pipeline_cfg, backend: str) -> Dict:
    return dict(pipeline_cfg, decode_sampler=dict(pipeline_cfg["decode_sampler"],
                                                  backend=backend))


def train_benchmark(cfg, path: str, folder: str, clips: int, rounds: int) -> Dict[str, float]:
    dataset_cfg = dict(cfg.DATASET.train, file_path=write_list(folder, path, 1))
    dataset = build_dataset((dataset_cfg, cfg.PIPELINE.train))
    with_decord = build_dataset((dataset_cfg, with_backend(cfg.PIPELINE.train, "decord")))
    return interleaved_medians({"floor": lambda: floor_clip(path),
                                "ours": lambda: dataset[0],
                                "ours_decord": lambda: with_decord[0],
                                "paddlevideo": lambda: paddlevideo_style_clip(path)},
                               clips, rounds)


def test_benchmark(cfg, path: str, folder: str, rounds: int) -> Dict[str, float]:
    dataset_cfg = dict(cfg.DATASET.test, file_path=write_list(folder, path, 1), test_mode=True)
    dataset = build_dataset((dataset_cfg, cfg.PIPELINE.test))
    sampler = next(s for s in dataset.pipeline.steps if isinstance(s, DecodeSampler))

    def per_video(cached: bool) -> None:
        sampler._last_source, sampler._clip_cache, sampler._clip_bytes = None, {}, {}
        for i in range(len(dataset)):
            if not cached:  # forget the open reader and decoded clips: every view decodes
                sampler._last_source, sampler._clip_cache, sampler._clip_bytes = None, {}, {}
            dataset[i]

    return interleaved_medians({"once": lambda: per_video(True),
                                "separate": lambda: per_video(False)}, 1, rounds)


def loader_benchmark(cfg, path: str, folder: str, workers: int, batches: int) -> float:
    dataset_cfg = dict(cfg.DATASET.train, file_path=write_list(folder, path, 4 * batches))
    dataset = build_dataset((dataset_cfg, cfg.PIPELINE.train))
    loader = build_dataloader(dataset, batch_size=4, num_workers=workers, shuffle=False)
    start = time.perf_counter()
    count = sum(batch[0].shape[0] for batch in loader)
    return count / (time.perf_counter() - start)


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clips", type=int, default=6, help="training clips per round")
    args = parser.parse_args(argv)
    cfg = get_config(CONFIG)
    with tempfile.TemporaryDirectory(prefix="pv_bench_") as folder:
        for width, height in SIZES:
            path = os.path.join(folder, f"video_{width}x{height}.mp4")
            make_video(path, width, height)
            train = train_benchmark(cfg, path, folder, args.clips, args.rounds)
            test = test_benchmark(cfg, path, folder, max(args.rounds // 2, 1))
            ratio_b, ratio_c = train["ours"] / train["floor"], train["paddlevideo"] / train["floor"]
            backend = cfg.PIPELINE.train["decode_sampler"].get("backend", "decord")
            speedup = test["separate"] / test["once"]
            print(f"\n== {width}x{height}, 10 s at 30 fps, H.264 ==")
            print(f"train clip (32x2)   (a) decord floor {train['floor']:7.1f} ms")
            print(f"                    (b) this pipeline {train['ours']:6.1f} ms  "
                  f"= {ratio_b:.2f}x floor  (target <= 1.10x) "
                  f"{'OK' if ratio_b <= 1.10 else 'MISSED'}  [backend {backend}]")
            print(f"                    (b') with decord  {train['ours_decord']:6.1f} ms  "
                  f"= {train['ours_decord'] / train['floor']:.2f}x floor")
            print(f"                    (c) per-frame PIL {train['paddlevideo']:6.1f} ms  "
                  f"= {ratio_c:.2f}x floor")
            print(f"test video 10x3     decode once per clip {test['once']:7.0f} ms, every view "
                  f"separately {test['separate']:7.0f} ms = {speedup:.2f}x faster "
                  f"(target >= 2.5x) {'OK' if speedup >= 2.5 else 'MISSED'}")
            if (width, height) == SIZES[0]:
                for workers in (0, 2):
                    rate = loader_benchmark(cfg, path, folder, workers, batches=4)
                    print(f"loader, {workers} workers: {rate:5.1f} clips/s (batch 4)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
