"""The HTTP service: routes, authentication, admission (429), errors as JSON, request log.

``build_app(service)`` returns the FastAPI application for a :class:`Service` (the model, the
job queue, the private folder and the settings). Every answer that is not a success is
``{"error": "<one line>"}`` with the fitting status; nothing a client sends is executed or named
as a server file (see :mod:`.uploads`).
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Dict, List, Optional, Tuple

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..loader.pipelines.decode import VideoDecodeError
from .batching import BatcherStopped
from .jobs import Job, JobQueue
from .metrics import ServiceMetrics
from .model import ServedModel, TimelineModel, top_k_records
from .uploads import (
    InputError,
    check_container,
    check_frame_size,
    check_url,
    download,
    private_file,
    receive_upload,
    too_large,
)

LOG = logging.getLogger("paddlevideo.serve")
OPEN_PATHS = ("/healthz", "/")  # the page is static; everything it shows needs the token
MAX_JSON_BYTES = 64 * 1024


@dataclass
class Settings:
    """What ``tools/serve.py``'s flags set (sizes in bytes, times in seconds)."""

    max_upload: int = 200 * 2**20
    max_queue: int = 32
    token: Optional[str] = None
    url_prefixes: List[str] = field(default_factory=list)
    job_ttl: float = 3600.0
    shutdown_timeout: float = 30.0
    default_views: int = 1
    upload_timeout: float = 300.0  # a slow upload must not hold a queue slot for ever
    max_pixels: int = 3840 * 2160


class Service:
    """The model, job queue, private folder and admission counter of one process."""

    def __init__(self, predictor: Any, cfg: Any, settings: Settings, workers: int = 2,
                 max_batch: int = 8, batch_wait: float = 0.01) -> None:
        self.settings = settings
        self.folder = tempfile.mkdtemp(prefix="paddlevideo-serve-")  # mode 0700
        self._lock = threading.Lock()
        self.in_flight = 0  # accepted predictions and unfinished timeline jobs
        self.metrics = ServiceMetrics(lambda: self.in_flight)
        self.model = ServedModel(predictor, cfg, self.metrics, workers=workers,
                                 max_batch=max_batch, batch_wait=batch_wait)
        self.jobs = JobQueue(self.folder, lambda: TimelineModel(self.model),
                             ttl=settings.job_ttl, on_finish=self._job_finished,
                             on_decoded=self.metrics.add_decoded)
        self._latency = 1.0  # running mean of prediction seconds, for Retry-After
        self.stop_requested: Optional[float] = None  # monotonic time of SIGTERM/SIGINT
        self.cut_short = False  # the shutdown's wait ended with work still running

    def try_admit(self) -> bool:
        with self._lock:
            if self.in_flight >= self.settings.max_queue:
                return False
            self.in_flight += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def note_latency(self, seconds: float) -> None:
        self._latency = 0.9 * self._latency + 0.1 * seconds

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue's length in mean request times
        shared over the batch running at once (at least 1)."""
        return max(1, math.ceil(self._latency * self.in_flight / max(self.model.batcher.max_rows,
                                                                      1)))

    def _job_finished(self, job: Job) -> None:
        self.release()
        LOG.info("timeline job %s %s (%s)", job.id, job.status, job.error or job.name)

    def shutdown(self) -> None:
        """Run the accepted jobs, stop the model and delete the private folder, all within
        ``shutdown_timeout`` of the stop request (``stop_requested``, else now)."""
        deadline = (self.stop_requested or time.monotonic()) + self.settings.shutdown_timeout
        jobs_done = self.jobs.close(max(deadline - time.monotonic(), 0.0))
        if not jobs_done:
            LOG.warning("timeline jobs still running after %.0f s; stopping anyway",
                        self.settings.shutdown_timeout)
        model_done = self.model.close(max(deadline - time.monotonic(), 0.0))
        shutil.rmtree(self.folder, ignore_errors=True)
        self.cut_short = not (jobs_done and model_done)


def error(status: int, message: str, headers: Optional[Dict[str, str]] = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


ROUTES = ("/", "/healthz", "/metrics", "/v1/predict", "/v1/timeline")


def route_label(path: str) -> str:
    """The metrics label of a request path: its route, job ids left out, and every unknown
    path as ``other`` (clients must not be able to grow the label set)."""
    if path.startswith("/v1/jobs/"):
        return "/v1/jobs/video" if path.endswith("/video") else "/v1/jobs"
    return path if path in ROUTES else "other"


class AccessMiddleware:
    """ASGI middleware: the bearer token check, one log line and the metrics of each request."""

    def __init__(self, app: Any, service: Service) -> None:
        self.app, self.service = app, service

    def _authorised(self, scope: Dict[str, Any]) -> bool:
        token = self.service.settings.token
        path = scope["path"]
        video = path.startswith("/v1/jobs/") and path.endswith("/video")  # its own check
        if not token or path in OPEN_PATHS or video:
            return True
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"").decode("latin-1")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    async def __call__(self, scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def send_status(message: Dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        if self._authorised(scope):
            await self.app(scope, receive, send_status)
        else:
            await error(401, "missing or wrong bearer token (Authorization: Bearer TOKEN)",
                        {"WWW-Authenticate": "Bearer"})(scope, receive, send_status)
        seconds = time.perf_counter() - start
        client = scope.get("client") or ("-", 0)
        self.service.metrics.observe_request(route_label(scope["path"]), status[0], seconds)
        LOG.info("%s %s %d %.0f ms %s:%s", scope["method"], scope["path"], status[0],
                 1000 * seconds, client[0], client[1])


async def receive_input(request: Request, service: Service) -> Tuple[str, str]:
    """``(path in the private folder, the client's name for it)`` of a request's video: a
    multipart upload (field ``video``) or JSON ``{"url": ...}``; checked to be a video
    container with frames of a sensible size. Raises :class:`InputError` (408 past
    ``upload_timeout``)."""
    try:
        return await asyncio.wait_for(_receive_input(request, service),
                                      service.settings.upload_timeout)
    except asyncio.TimeoutError:
        raise InputError(408, f"the upload took longer than "
                              f"{service.settings.upload_timeout:g} s") from None


async def _receive_input(request: Request, service: Service) -> Tuple[str, str]:
    limit = service.settings.max_upload
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    path = private_file(service.folder, ".video")
    try:
        if request.headers.get("content-type", "").startswith("application/json"):
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_JSON_BYTES:
                    raise InputError(413, "JSON body too large")
            try:
                url = json.loads(body or b"null").get("url")
            except (ValueError, AttributeError):
                raise InputError(400, 'expected a JSON object {"url": ...}') from None
            name = check_url(url, service.settings.url_prefixes)
            await asyncio.to_thread(download, name, path, limit)
        else:
            name = await receive_upload(request.stream(), request.headers.get(
                "content-type", ""), path, limit) or "upload"
        check_container(path)
        await asyncio.to_thread(check_frame_size, path, service.settings.max_pixels)
    except BaseException:
        os.remove(path)
        raise
    return path, os.path.basename(name)[:200] if "://" not in name else name[:500]


def _admit(service: Service) -> Optional[JSONResponse]:
    if service.try_admit():
        return None
    return error(429, f"the queue is full ({service.settings.max_queue} requests); try again "
                      f"later", {"Retry-After": str(service.retry_after())})


def add_routes(app: FastAPI, service: Service) -> None:
    """The page, ``/healthz`` and ``/metrics``."""
    page = resources.files(__package__).joinpath("static/index.html").read_text("utf-8")

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/healthz")
    async def healthz() -> Dict[str, Any]:
        return {"status": "ok", "classes": len(service.model.class_names)}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(service.metrics.render(),
                                 media_type="text/plain; version=0.0.4")


def add_work_routes(app: FastAPI, service: Service) -> None:
    """``POST /v1/predict`` and ``POST /v1/timeline``."""

    @app.post("/v1/predict")
    async def predict(request: Request, top_k: int = Query(5, ge=1),
                      views: Optional[int] = Query(None, ge=1, le=10)) -> Any:
        refused = _admit(service)
        if refused is not None:
            return refused
        start = time.perf_counter()
        path = None
        try:
            path, _name = await receive_input(request, service)
            probs = await service.model.video_probs(path, views or service.settings.default_views)
        except VideoDecodeError as err:
            return error(422, f"not a readable video: {err.reason}")
        finally:
            if path is not None and os.path.exists(path):
                os.remove(path)
            service.release()
        seconds = time.perf_counter() - start
        service.note_latency(seconds)
        names = service.model.class_names
        return {"top_k": top_k_records(probs, names, min(top_k, len(names))),
                "num_views": views or service.settings.default_views,
                "ms": round(1000 * seconds, 1)}

    @app.post("/v1/timeline", status_code=202)
    async def timeline(request: Request, stride: Optional[float] = Query(None, ge=0.1)) -> Any:
        refused = _admit(service)
        if refused is not None:
            return refused
        try:
            path, name = await receive_input(request, service)
            await asyncio.to_thread(_check_decodable, path)
        except BaseException:
            service.release()
            raise
        job = service.jobs.submit(path, name, stride)
        return {"job": job.id}


def add_job_routes(app: FastAPI, service: Service) -> None:
    """``GET /v1/jobs/ID`` and ``GET /v1/jobs/ID/video``."""

    @app.get("/v1/jobs/{job_id}")
    async def job_status(job_id: str) -> Any:
        job = service.jobs.get(job_id)
        if job is None:
            return error(404, f"no job {job_id[:40]} (unknown or expired)")
        return job.record()

    @app.get("/v1/jobs/{job_id}/video")
    async def job_video(job_id: str, request: Request) -> Any:
        job = service.jobs.get(job_id)
        token = service.settings.token
        if token and not hmac.compare_digest(request.headers.get("authorization", "").encode(),
                                             f"Bearer {token}".encode()):
            key = request.query_params.get("key", "")
            if job is None or not hmac.compare_digest(key.encode(), job.key.encode()):
                return error(401, "missing or wrong bearer token (or the job's video key)",
                             {"WWW-Authenticate": "Bearer"})
        if job is None:
            return error(404, f"no job {job_id[:40]} (unknown or expired)")
        if job.status != "done":
            return error(409, f"job {job.id} is {job.status}; its video comes when it is done")
        return FileResponse(job.video_path, media_type="video/mp4")


def _check_decodable(path: str) -> None:
    """Open the file the way testing does (image/truncation checks, then the decoder), so a
    bad upload is refused before its job is accepted."""
    from ..loader.pipelines.decode import VideoSource

    try:
        VideoSource(path).close()
    except VideoDecodeError as err:
        raise InputError(422, f"not a readable video: {err.reason}") from None


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InputError)
    async def input_error(_request: Request, err: InputError) -> JSONResponse:
        headers = {"Connection": "close"} if err.status == 413 else None
        return error(err.status, err.message, headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, err: StarletteHTTPException) -> JSONResponse:
        return error(err.status_code, str(err.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}"
                             for e in err.errors())
        return error(422, problems or "invalid request")

    @app.exception_handler(BatcherStopped)
    async def stopping(_request: Request, err: BatcherStopped) -> JSONResponse:
        return error(503, str(err))

    @app.exception_handler(Exception)
    async def internal(_request: Request, err: Exception) -> JSONResponse:
        LOG.exception("internal error (please report it)")
        return error(500, f"internal error: {type(err).__name__}")


def build_app(service: Service) -> FastAPI:
    """The FastAPI application of ``service``; its shutdown finishes accepted work."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        LOG.info("shutting down: finishing accepted work (at most %.0f s)",
                 service.settings.shutdown_timeout)
        await asyncio.to_thread(service.shutdown)

    app = FastAPI(title="paddlevideo", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    add_error_handlers(app)
    add_routes(app, service)
    add_work_routes(app, service)
    add_job_routes(app, service)
    app.add_middleware(AccessMiddleware, service=service)
    return app
