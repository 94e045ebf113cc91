"""A real ``tools/serve.py`` process on a loopback port, serving the three-class test model.

The model is the one of the timeline tests (``tests/inference/timeline_helpers.py``): a small
exported SlowFast that tells three demo motions apart, so a clip of one of them has a known
answer. Requests use only the standard library (``http.client``), so the tests see the bytes
a client sees.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from tests.inference.helpers import REPO_ROOT, work_dir
from tests.inference.timeline_helpers import CLASSES, clip_frames, three_class_export

START_TIMEOUT = 120.0


def clip_video(label_index: int) -> Path:
    """The 2 s clip of class ``CLASSES[label_index]`` as an H.264 MP4 (96x96, 60 frames)."""
    from tests.conftest import write_video

    path = work_dir() / f"clip_{CLASSES[label_index]}.mp4"
    if not path.exists():
        write_video(path, clip_frames()[label_index], fps=30)
    return path


class Server:
    """``tools/serve.py`` started with ``extra`` flags; ``port``, ``log()``, ``request()``."""

    def __init__(self, *extra: str, env: Optional[Dict[str, str]] = None) -> None:
        paths = three_class_export()
        self.log_path = work_dir() / f"serve_{uuid.uuid4().hex[:8]}.log"
        command = [sys.executable, str(REPO_ROOT / "tools" / "serve.py"), "-c", paths["config"],
                   "--model_file", paths["model"], "--params_file", paths["params"],
                   "--port", "0", "--cpu_threads", "1", *extra]
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        cwd=str(REPO_ROOT), env={**os.environ, **(env or {})})
        self.port = self._wait_for_port()

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            match = re.search(r"serving on http://127\.0\.0\.1:(\d+)", self.log())
            if match:
                return int(match.group(1))
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n"
                                   f"{self.log()}")
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not start in {START_TIMEOUT} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pid_status(self, key: str) -> int:
        """A ``/proc/PID/status`` value in kB (``VmRSS``, ``VmHWM``)."""
        text = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M).group(1))

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                headers: Optional[Dict[str, str]] = None,
                timeout: float = 120.0) -> Tuple[int, Dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: Optional[bytes] = None,
             headers: Optional[Dict[str, str]] = None) -> Tuple[int, Any]:
        status, _, data = self.request(method, path, body, headers)
        return status, json.loads(data)

    def upload(self, path: str, video: Path, query: str = "",
               headers: Optional[Dict[str, str]] = None) -> Tuple[int, Any]:
        body, content_type = multipart({"video": (video.name, video.read_bytes())})
        return self.json("POST", path + query, body,
                         {"Content-Type": content_type, **(headers or {})})

    def wait_job(self, job_id: str, timeout: float = 120.0,
                 headers: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, job = self.json("GET", f"/v1/jobs/{job_id}", headers=headers)
            assert status == 200, job
            if job["status"] in ("done", "failed"):
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish in {timeout} s")

    def terminate(self, timeout: float = 60.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        self._log.close()


def multipart(fields: Dict[str, Tuple[str, bytes]]) -> Tuple[bytes, str]:
    """A multipart/form-data body of ``{field: (file name, bytes)}`` and its content type."""
    boundary = uuid.uuid4().hex
    parts: List[bytes] = []
    for name, (filename, data) in fields.items():
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                     f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream"
                     f"\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def send_body(port: int, path: str, chunks: Iterable[bytes], headers: Dict[str, str],
              length: Optional[int] = None, timeout: float = 60.0) -> Tuple[int, str, int]:
    """POST ``chunks`` on a raw socket (``Content-Length: length``, or chunked transfer
    encoding without it), reading the answer as soon as the server sends one (a server that
    refuses the body answers mid-upload). Returns ``(status, body, body bytes sent)``."""
    import select
    import socket

    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", framing]
    head += [f"{k}: {v}" for k, v in headers.items()]
    sent, received = 0, b""
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        for chunk in chunks:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk if length is not None else
                             f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        else:
            if length is None:
                sock.sendall(b"0\r\n\r\n")
        sock.settimeout(timeout)
        while b"\r\n\r\n" not in received or not _complete(received):
            data = sock.recv(65536)
            if not data:
                break
            received += data
    finally:
        sock.close()
    header, _, body = received.partition(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1]) if header else 0
    return status, body.decode(errors="replace"), sent


def _complete(data: bytes) -> bool:
    header, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"content-length:\s*(\d+)", header, re.I)
    return bool(match) and len(body) >= int(match.group(1))


def top_level_boxes(data: bytes) -> List[str]:
    """The names of an MP4's top-level boxes, in file order."""
    import struct

    names, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8:offset + 16])[0]
        names.append(kind.decode("latin-1"))
        if size < 8:
            break
        offset += size
    return names


def decoding_workers(pid: int) -> List[int]:
    """PIDs of a server's decoding workers (its ``spawn`` children, not the resource tracker)."""
    children: List[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            children += [int(x) for x in f.read().split()]
    workers = []
    for child in children:
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    workers.append(child)
        except FileNotFoundError:  # ended meanwhile
            pass
    return workers


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
