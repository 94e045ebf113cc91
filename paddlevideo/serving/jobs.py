"""Timeline jobs: accepted at once, run in order on a worker thread, kept until they expire.

A job owns its input file (deleted when the run ends) and its folder in the service's private
area (the annotated MP4, deleted when the job expires). ``progress`` is the seconds of video
decided so far, ``duration`` the input's length when the container states it.
"""
from __future__ import annotations

import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from ..inference.frame_stream import StreamError
from ..inference.timeline_runner import TimelineRun, timeline_record
from ..loader.pipelines.decode import VideoDecodeError

RunFactory = Callable[[], Any]  # () -> a predictor-like object for TimelineRun


@dataclass
class Job:
    """One timeline request. ``status``: queued, running, done or failed."""

    id: str
    input_path: str
    folder: str
    name: str  # what the client called its input (file name or URL), echoed back
    stride: Optional[float]
    status: str = "queued"
    progress: float = 0.0
    duration: float = 0.0
    result: Optional[Dict[str, Any]] = None
    error: Optional[str] = None
    # lets a <video> element fetch the annotated MP4 without the bearer token
    key: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    created: float = field(default_factory=time.time)
    finished: Optional[float] = None

    @property
    def video_path(self) -> str:
        return os.path.join(self.folder, "annotated.mp4")

    def record(self) -> Dict[str, Any]:
        """The JSON of ``GET /v1/jobs/ID``."""
        out: Dict[str, Any] = {"job": self.id, "status": self.status, "input": self.name,
                               "progress": round(self.progress, 3),
                               "duration": round(self.duration, 3)}
        if self.result is not None:
            out["timeline"] = self.result
            out["video"] = f"/v1/jobs/{self.id}/video?key={self.key}"
        if self.error is not None:
            out["error"] = self.error
        return out


class JobQueue:
    """Timeline jobs run one after another on a worker thread (the model is shared with the
    predictions, so running several at once would only interleave them).

    ``model_factory()`` gives the predictor-like object a run uses; ``ttl``: seconds a finished
    job and its files are kept (at most ``max_finished`` of them); ``on_finish(job)`` is called
    when a run ends (the service frees the job's queue slot there).
    """

    def __init__(self, root: str, model_factory: RunFactory, ttl: float = 3600.0,
                 on_finish: Optional[Callable[[Job], None]] = None,
                 on_decoded: Optional[Callable[[], None]] = None,
                 max_finished: int = 256) -> None:
        self.root, self.model_factory, self.ttl = root, model_factory, ttl
        self.max_finished = max_finished  # a bound on disk use whatever the request rate
        self.on_finish, self.on_decoded = on_finish, on_decoded
        self.jobs: Dict[str, Job] = {}
        self._order: List[str] = []
        self._lock = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._work, name="timeline-jobs", daemon=True)
        self._thread.start()

    def submit(self, input_path: str, name: str, stride: Optional[float]) -> Job:
        """Accept a job for ``input_path`` (which the job now owns)."""
        self.expire()
        job_id = secrets.token_hex(8)
        folder = os.path.join(self.root, "job-" + job_id)
        os.makedirs(folder, mode=0o700)
        job = Job(job_id, input_path, folder, name, stride)
        with self._lock:
            self.jobs[job_id] = job
            self._order.append(job_id)
            self._lock.notify_all()
        return job

    def get(self, job_id: str) -> Optional[Job]:
        self.expire()
        with self._lock:
            return self.jobs.get(job_id)

    def unfinished(self) -> int:
        with self._lock:
            return sum(job.status in ("queued", "running") for job in self.jobs.values())

    def expire(self, now: Optional[float] = None) -> List[str]:
        """Forget finished jobs older than ``ttl``, and the oldest beyond ``max_finished``, and
        delete their files; their ids."""
        now = time.time() if now is None else now
        with self._lock:
            finished = sorted((j for j in self.jobs.values() if j.finished is not None),
                              key=lambda j: j.finished)
            surplus = max(len(finished) - self.max_finished, 0)
            old = finished[:surplus] + [j for j in finished[surplus:]
                                        if now - j.finished > self.ttl]
            for job in old:
                del self.jobs[job.id]
        for job in old:
            shutil.rmtree(job.folder, ignore_errors=True)
        return [job.id for job in old]

    def close(self, timeout: float) -> bool:
        """Run the accepted jobs, waiting at most ``timeout`` seconds; True if all finished."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _next(self) -> Optional[Job]:
        with self._lock:
            while not self._order:
                if self._closing:
                    return None
                self._lock.wait()
            return self.jobs.get(self._order.pop(0))

    def _work(self) -> None:
        while True:
            job = self._next()
            if job is None:
                return
            self._run(job)

    def _run(self, job: Job) -> None:
        job.status = "running"
        try:
            run = TimelineRun(self.model_factory(), job.input_path, stride=job.stride,
                              live=False, output_video=job.video_path, reconnects=0,
                              on_window=lambda window, _lag: setattr(job, "progress",
                                                                     window.end))
            info = run.stream.info
            job.duration = info.num_frames / info.fps if info.num_frames else 0.0
            if self.on_decoded is not None:
                self.on_decoded()
            result = run.run()
            record = timeline_record(result, run.predictor)
            # the server's own paths mean nothing to a client: name the input and the URL
            record.update(file=job.name, output_video=f"/v1/jobs/{job.id}/video")
            job.result, job.status = record, "done"
            job.progress = job.duration = result.duration
        except (StreamError, VideoDecodeError, ValueError) as err:
            job.error, job.status = str(err).replace(job.input_path, job.name), "failed"
        except Exception as err:  # a failed job must not end the worker thread
            job.error, job.status = f"the timeline failed: {type(err).__name__}", "failed"
        finally:
            job.finished = time.time()
            if os.path.exists(job.input_path):
                os.remove(job.input_path)
            if self.on_finish is not None:
                self.on_finish(job)
