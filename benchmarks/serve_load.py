"""The HTTP service under load: 1, 4 and 16 concurrent clients, dynamic batching on and off.

    python benchmarks/serve_load.py [--requests 96 --clients 1 4 16 --threads N
                                     --format openvino|pdmodel]

Exports the demo model (configs/recognition/slowfast/slowfast_demo.yaml, random weights: speed
does not depend on their values) as OpenVINO IR (``auto`` runs it with OpenVINO) or as a Paddle
Inference program, writes a few 2-second demo clips, and starts
``tools/serve.py`` on loopback twice, side by side in one run: with dynamic batching (the
defaults) and one clip per model run (``--max_batch 1``). Each level of concurrency sends
``--requests`` uploads to ``POST /v1/predict`` from that many client threads and reports
requests/s, p50/p95/p99 latency, errors, the server's RSS (at the start, the end, and its
peak), the share of wall time the model ran, clips per model run, CPU milliseconds per request
in the server process and in its decoding workers, and the cores they used. Targets: no
errors; at 16 clients, batching on gives at least 1.5x the requests/s of the one-at-a-time
service and a p99 within 3x its p50; RSS flat (end within 20% + 50 MB of the start). Exit
status 1 if a target is missed.
"""
from __future__ import annotations

import argparse
import http.client
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "recognition", "slowfast", "slowfast_demo.yaml")
THROUGHPUT_TARGET, TAIL_TARGET = 1.5, 3.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=96, help="uploads per level")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="the model's CPU threads")
    parser.add_argument("--format", choices=("openvino", "pdmodel"), default="openvino",
                        help="the export the service runs: OpenVINO IR (what `auto` runs "
                             "fastest on a CPU) or a Paddle Inference program")
    return parser.parse_args()


def prepare(folder: str, fmt: str) -> Tuple[Dict[str, str], List[bytes]]:
    """Export the demo model in ``fmt`` and write demo clips; ``(paths, clip bytes)``."""
    import numpy as np
    import paddle

    from paddlevideo.inference import export_inference_model
    from paddlevideo.loader.demo_data import (
        MOTION_CLASSES,
        encode_h264,
        render_video,
        sample_motion,
    )
    from paddlevideo.modeling import build_model
    from paddlevideo.utils import dump_config, get_config

    labels = os.path.join(folder, "labels.txt")
    with open(labels, "w") as f:
        f.writelines(f"{i} {name}\n" for i, name in enumerate(MOTION_CLASSES[:8]))
    cfg = get_config(CONFIG, overrides=[f"label_file={labels}"])
    paddle.seed(0)
    model = build_model(cfg.MODEL)
    model.eval()
    paths = export_inference_model(model, cfg, os.path.join(folder, "model"), "SlowFastDemo",
                                   fmt)
    paths["config"] = os.path.join(folder, "demo.yaml")
    dump_config(cfg, paths["config"])
    clips = []
    for label in range(4):
        rng = np.random.default_rng([1, label])
        frames = render_video(sample_motion(label, rng, 96, 96, 60), rng, 96, 96, 60)
        path = os.path.join(folder, f"clip{label}.mp4")
        encode_h264(path, frames, 30)
        with open(path, "rb") as f:
            clips.append(f.read())
    return paths, clips


class ServerProcess:
    def __init__(self, paths: Dict[str, str], threads: int, *flags: str) -> None:
        self.log = tempfile.TemporaryFile(mode="w+")
        params = ["--params_file", paths["params"]] if paths.get("params") else []
        command = [sys.executable, os.path.join(ROOT, "tools", "serve.py"), "-c",
                   paths["config"], "--model_file", paths["model"], *params, "--port", "0",
                   "--cpu_threads", str(threads), "--max_queue", "64", *flags]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            self.log.seek(0)
            match = re.search(r"serving on http://127\.0\.0\.1:(\d+)", self.log.read())
            if match:
                self.port = int(match.group(1))
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.log.seek(0)
        raise RuntimeError(f"the server did not start:\n{self.log.read()}")

    def rss_mb(self, key: str = "VmRSS") -> float:
        with open(f"/proc/{self.process.pid}/status") as f:
            return int(re.search(rf"^{key}:\s+(\d+)", f.read(), re.M).group(1)) / 1024

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(120)
        self.log.close()


def upload(port: int, clip: bytes) -> Tuple[int, float]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"c.mp4\""
            f"\r\n\r\n").encode() + clip + f"\r\n--{boundary}--\r\n".encode()
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request("POST", "/v1/predict", body,
                     {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        response = conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - start
    finally:
        conn.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(pid: int) -> Tuple[float, float]:
    """``(the server process, its children: the decoding workers)`` CPU seconds so far."""
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            children += [int(x) for x in f.read().split()]
    return cpu_seconds(pid), sum(cpu_seconds(child) for child in children)


def model_counters(port: int) -> Tuple[float, int]:
    """``(model seconds, model runs)`` so far, from the server's ``/metrics``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    seconds = re.search(r"^pv_model_seconds_total (\S+)", text, re.M)
    runs = re.search(r"^pv_model_runs_total (\S+)", text, re.M)
    return float(seconds.group(1)), int(float(runs.group(1)))


def drive(server: ServerProcess, clips: List[bytes], clients: int,
          requests: int) -> Dict[str, float]:
    """``requests`` uploads from ``clients`` threads; throughput, latency percentiles,
    errors, the share of wall time the model ran and its mean clips per run."""
    import numpy as np

    counter = iter(range(requests))
    lock = threading.Lock()
    results: List[Tuple[int, float]] = []

    def client() -> None:
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            outcome = upload(server.port, clips[index % len(clips)])
            with lock:
                results.append(outcome)

    model_before, runs_before = model_counters(server.port)
    cpu_before = server_cpu(server.process.pid)
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(client)
    wall = time.perf_counter() - start
    cpu_after = server_cpu(server.process.pid)
    model_after, runs_after = model_counters(server.port)
    latencies = np.array([seconds for _, seconds in results])
    main_cpu, worker_cpu = (after - before for after, before in zip(cpu_after, cpu_before))
    return {"rps": len(results) / wall, "model_share": (model_after - model_before) / wall,
            "main_ms": 1000 * main_cpu / len(results),
            "worker_ms": 1000 * worker_cpu / len(results),
            "cores": (main_cpu + worker_cpu) / wall,
            "per_run": len(results) / max(runs_after - runs_before, 1),
            "p50": float(np.percentile(latencies, 50)),
            "p95": float(np.percentile(latencies, 95)),
            "p99": float(np.percentile(latencies, 99)),
            "errors": sum(status != 200 for status, _ in results)}


def run_mode(name: str, paths, clips, args, flags) -> Dict[int, Dict[str, float]]:
    server = ServerProcess(paths, args.threads, *flags)
    try:
        drive(server, clips, 2, 4)  # warm-up: decoder and model kernels
        start_rss = server.rss_mb()
        rows = {}
        for clients in args.clients:
            rows[clients] = drive(server, clips, clients, args.requests)
            rows[clients].update(rss=server.rss_mb(), peak=server.rss_mb("VmHWM"),
                                 start_rss=start_rss)
            row = rows[clients]
            print(f"| {name} | {clients} | {row['rps']:.2f} | {1000 * row['p50']:.0f} | "
                  f"{1000 * row['p95']:.0f} | {1000 * row['p99']:.0f} | {row['errors']} | "
                  f"{start_rss:.0f} → {row['rss']:.0f} (peak {row['peak']:.0f}) | "
                  f"{100 * row['model_share']:.0f} % | {row['per_run']:.1f} | "
                  f"{row['main_ms']:.1f} / {row['worker_ms']:.1f} | {row['cores']:.2f} |",
                  flush=True)
        return rows
    finally:
        server.stop()


def main() -> int:
    args = parse_args()
    sys.path.insert(0, ROOT)
    from paddlevideo.utils.cpu_features import cpu_description

    with tempfile.TemporaryDirectory(prefix="serve_load_") as folder:
        paths, clips = prepare(folder, args.format)
        print(f"{args.requests} uploads per level, {args.format} export, model threads "
              f"{args.threads}\nCPU: {cpu_description()}\n")
        print("| batching | clients | requests/s | p50 ms | p95 ms | p99 ms | errors | RSS MB | "
              "model busy | clips per run | CPU ms per request: server / decoders | cores "
              "used |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        on = run_mode("on", paths, clips, args, [])
        off = run_mode("off (--max_batch 1)", paths, clips, args, ["--max_batch", "1"])
    most = max(args.clients)
    ratio = on[most]["rps"] / off[most]["rps"]
    tail = on[most]["p99"] / on[most]["p50"]
    print(f"\nat {most} clients: batching on / off = {ratio:.2f}x requests/s (target "
          f">= {THROUGHPUT_TARGET}); on vs 1 client = {on[most]['rps'] / on[min(on)]['rps']:.2f}x;"
          f" p99 / p50 = {tail:.2f} (target <= {TAIL_TARGET})")
    errors = sum(row["errors"] for rows in (on, off) for row in rows.values())
    flat = all(row["rss"] <= 1.2 * row["start_rss"] + 50 for rows in (on, off)
               for row in rows.values())
    missed = [text for text, bad in (("errors", errors > 0), ("throughput", ratio <
                                     THROUGHPUT_TARGET), ("tail latency", tail > TAIL_TARGET),
                                     ("flat RSS", not flat)) if bad]
    print("targets missed: " + ", ".join(missed) if missed else "all targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
