"""``main.py -p``: profile a range of training iterations with ``paddle.profiler``.

The option string has PaddleVideo's format and defaults::

    batch_range=[10,20];state=CPU;tracer_option=Default;profile_path=model.profile

``batch_range=[a,b]`` profiles iterations ``a`` to ``b - 1`` (counted over the whole run, from
0); when iteration ``b`` starts, the trace is written to ``profile_path`` (Chrome tracing JSON,
for chrome://tracing), the summary table is printed and, with ``exit_on_finished=True`` (the
default), the process ends with status 0. A run that ends before iteration ``b`` writes what was
recorded when training ends, with a line saying that the range end was not reached.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import List, Optional

STATES = ("CPU", "GPU", "All")
SORTED_KEYS = ("calls", "total", "max", "min", "ave")
TRACER_OPTIONS = ("Default", "OpDetail", "AllOpDetail")


class ProfilerOptionsError(ValueError):
    """A ``-p/--profiler_options`` string that cannot be used."""


@dataclass
class ProfilerOptions:
    """Parsed ``-p`` options; the defaults are PaddleVideo's."""

    batch_range: List[int] = field(default_factory=lambda: [10, 20])
    state: str = "All"
    sorted_key: str = "total"
    tracer_option: str = "Default"
    profile_path: str = "/tmp/profile"
    exit_on_finished: bool = True

    @classmethod
    def parse(cls, text: str) -> ProfilerOptions:
        """``key1=value1;key2=value2`` → options; an unknown key or bad value is an error."""
        options = cls()
        for item in text.replace(" ", "").split(";"):
            if not item:
                continue
            key, sep, value = item.partition("=")
            if not sep:
                raise ProfilerOptionsError(f"profiler option {item!r} is not key=value")
            options._set(key, value)
        return options

    def _set(self, key: str, value: str) -> None:
        if key == "batch_range":
            try:
                numbers = [int(v) for v in value.strip("[]").split(",")]
            except ValueError:
                numbers = []
            if len(numbers) != 2 or not 0 <= numbers[0] < numbers[1]:
                raise ProfilerOptionsError(
                    f"profiler batch_range must be [start,end] with 0 <= start < end, got "
                    f"{value!r}")
            self.batch_range = numbers
        elif key == "exit_on_finished":
            self.exit_on_finished = value.lower() in ("yes", "true", "t", "1")
        elif key in ("state", "sorted_key", "tracer_option"):
            allowed = {"state": STATES, "sorted_key": SORTED_KEYS,
                       "tracer_option": TRACER_OPTIONS}[key]
            if value not in allowed:
                raise ProfilerOptionsError(
                    f"profiler {key} must be one of {', '.join(allowed)}, got {value!r}")
            setattr(self, key, value)
        elif key == "profile_path":
            self.profile_path = value
        else:
            known = "batch_range, state, sorted_key, tracer_option, profile_path, exit_on_finished"
            raise ProfilerOptionsError(f"unknown profiler option {key!r} (known: {known})")


def _targets(state: str) -> list:
    """Profiler targets for ``state``; GPU tracing only where this Paddle has CUDA."""
    import paddle
    from paddle.profiler import ProfilerTarget

    if state != "CPU" and paddle.is_compiled_with_cuda():
        return [ProfilerTarget.CPU, ProfilerTarget.GPU] if state == "All" else [
            ProfilerTarget.GPU]
    if state == "GPU":
        print("Profiler: state=GPU but this Paddle has no CUDA; tracing the CPU", flush=True)
    return [ProfilerTarget.CPU]


def _sorted_by(sorted_key: str, state: str):
    from paddle.profiler import SortedKeys

    device = "GPU" if state == "GPU" else "CPU"
    # PaddleVideo's "calls" has no counterpart in paddle.profiler: sort by total time then.
    suffix = {"total": "Total", "max": "Max", "min": "Min", "ave": "Avg"}.get(sorted_key,
                                                                          "Total")
    return getattr(SortedKeys, device + suffix)


class TrainingProfiler:
    """Call :meth:`step` once per training iteration; it starts and stops the profiler."""

    def __init__(self, options: ProfilerOptions) -> None:
        self.options = options
        self.step_id = 0
        self._profiler = None

    @classmethod
    def from_string(cls, text: Optional[str]) -> Optional[TrainingProfiler]:
        """A profiler for ``-p TEXT``; None when profiling was not asked for."""
        return cls(ProfilerOptions.parse(text)) if text else None

    def step(self) -> None:
        """Mark the start of a training iteration."""
        start, end = self.options.batch_range
        if self.step_id == end:
            self.finish()
        elif self.step_id == start:
            self._start()
        elif self._profiler is not None:
            self._profiler.step()
        self.step_id += 1

    def _start(self) -> None:
        import paddle.profiler as profiler

        # on_trace_ready does nothing: the trace goes to profile_path in finish(), not to
        # Paddle's default ./profiler_log folder.
        self._profiler = profiler.Profiler(targets=_targets(self.options.state),
                                           on_trace_ready=lambda prof: None, timer_only=False)
        self._profiler.start()

    def close(self) -> None:
        """Training ended: write what was recorded when it ended inside ``batch_range``, and
        say so when the range end (or start) was never reached."""
        start, end = self.options.batch_range
        if self.step_id >= end and self._profiler is None:
            return  # finished as asked
        if self._profiler is None:
            print(f"Profiler: training ended after {self.step_id} iterations, before "
                  f"batch_range start {start}; nothing was profiled", flush=True)
            return
        print(f"Profiler: training ended after {self.step_id} iterations, before the "
              f"batch_range end {end} was reached; writing iterations {start}-"
              f"{self.step_id - 1}", flush=True)
        self.finish(exit_when_done=False)

    def finish(self, exit_when_done: bool = True) -> None:
        """Stop, write the trace to ``profile_path``, print the summary; exit if asked to."""
        if self._profiler is None:
            return
        profiler, self._profiler = self._profiler, None
        profiler.stop()
        path = os.path.abspath(self.options.profile_path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        profiler.export(path=path, format="json")
        profiler.summary(sorted_by=_sorted_by(self.options.sorted_key, self.options.state),
                         op_detail=self.options.tracer_option != "Default", thread_sep=False,
                         time_unit="ms")
        # Paddle allows one profiler per process: release this one before another can start.
        del profiler
        start, end = self.options.batch_range
        print(f"Profile of iterations {start}-{min(end, self.step_id) - 1} written to {path}",
              flush=True)
        if self.options.exit_on_finished and exit_when_done:
            sys.exit(0)
