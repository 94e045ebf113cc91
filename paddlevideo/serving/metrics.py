"""Counters for ``GET /metrics`` in the Prometheus text format (version 0.0.4).

Kept here rather than taken from ``prometheus_client``: five series need no dependency, and the
values are read and written under one lock from the event loop and the worker threads.
"""
from __future__ import annotations

import threading
from collections import Counter
from typing import Callable, List, Sequence

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServiceMetrics:
    """Requests by status, a latency histogram, model seconds and decoded videos.

    ``queue_depth``: a function giving the accepted requests and jobs not yet finished, read when
    the page is rendered.
    """

    def __init__(self, queue_depth: Callable[[], int],
                 buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self._lock = threading.Lock()
        self._queue_depth = queue_depth
        self.buckets = tuple(buckets)
        self.requests: Counter = Counter()  # (path group, status) → count
        self._bucket_counts = [0] * len(self.buckets)
        self._latency_sum = 0.0
        self._latency_count = 0
        self.model_seconds = 0.0
        self.model_runs = 0
        self.videos_decoded = 0

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, int(status))] += 1
            self._latency_sum += seconds
            self._latency_count += 1
            for i, bound in enumerate(self.buckets):
                if seconds <= bound:
                    self._bucket_counts[i] += 1

    def add_model_run(self, seconds: float) -> None:
        with self._lock:
            self.model_seconds += seconds
            self.model_runs += 1

    def add_decoded(self, videos: int = 1) -> None:
        with self._lock:
            self.videos_decoded += videos

    def render(self) -> str:
        """The page: one ``# HELP``/``# TYPE`` pair per metric, then its samples."""
        with self._lock:
            lines: List[str] = [
                "# HELP pv_requests_total HTTP requests answered, by route and status.",
                "# TYPE pv_requests_total counter"]
            for (route, status), count in sorted(self.requests.items()):
                lines.append(f'pv_requests_total{{route="{route}",status="{status}"}} {count}')
            lines += ["# HELP pv_request_seconds Time from request to answer.",
                      "# TYPE pv_request_seconds histogram"]
            for bound, count in zip(self.buckets, self._bucket_counts):
                lines.append(f'pv_request_seconds_bucket{{le="{bound:g}"}} {count}')
            lines += [f'pv_request_seconds_bucket{{le="+Inf"}} {self._latency_count}',
                      f"pv_request_seconds_sum {self._latency_sum:.6f}",
                      f"pv_request_seconds_count {self._latency_count}",
                      "# HELP pv_queue_depth Accepted requests and jobs not finished yet.",
                      "# TYPE pv_queue_depth gauge",
                      f"pv_queue_depth {self._queue_depth()}",
                      "# HELP pv_model_seconds_total Seconds spent running the model.",
                      "# TYPE pv_model_seconds_total counter",
                      f"pv_model_seconds_total {self.model_seconds:.6f}",
                      "# HELP pv_model_runs_total Model runs (one per batch).",
                      "# TYPE pv_model_runs_total counter",
                      f"pv_model_runs_total {self.model_runs}",
                      "# HELP pv_videos_decoded_total Videos decoded for predictions and "
                      "timelines.",
                      "# TYPE pv_videos_decoded_total counter",
                      f"pv_videos_decoded_total {self.videos_decoded}"]
        return "\n".join(lines) + "\n"
