"""Serve an exported model over HTTP: predictions, timeline jobs, metrics and a web page.

    python tools/serve.py -c configs/recognition/slowfast/slowfast.yaml \
        --model_file inference/SlowFast/SlowFast.pdmodel \
        --params_file inference/SlowFast/SlowFast.pdiparams --port 8080

Binds 127.0.0.1 unless ``--host`` says otherwise; see docs/serve.md for the endpoints and the
security settings. Exit status: 0 after SIGTERM (accepted work finished), 130 after Ctrl-C,
2 for flags or files that cannot work (checked before the server starts), 1 if the server
cannot run (the port is taken).
"""
import argparse
import logging
import os
import signal
import socket
import sys
import warnings

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
# Paddle warns at import about a compiler cache that only matters for custom C++ ops.
warnings.filterwarnings("ignore", message="No ccache found")
from paddlevideo.inference.engine_flags import add_engine_arguments  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        "Serve an exported SlowFast model over HTTP",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="config file path")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="config override (e.g. INFERENCE.target_size=224)")
    parser.add_argument("--model_file", required=True,
                        help=".pdmodel, .json, .onnx or OpenVINO .xml")
    parser.add_argument("--params_file", default=None, help=".pdiparams (not for .onnx)")
    parser.add_argument("--label_file", default=None,
                        help="'<id> <name>' lines (default: the config's label_file)")
    service = parser.add_argument_group("service")
    service.add_argument("--host", default="127.0.0.1",
                         help="address to bind (0.0.0.0: every interface)")
    service.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    service.add_argument("--max_upload_mb", type=float, default=200,
                         help="largest accepted upload or URL download")
    service.add_argument("--max_queue", type=int, default=32,
                         help="accepted requests and unfinished jobs at once; more get 429")
    service.add_argument("--batch_wait_ms", type=float, default=10,
                         help="how long a clip waits for others to share its model run")
    service.add_argument("--max_batch", type=int, default=8,
                         help="most clips per model run (1: no dynamic batching)")
    service.add_argument("--workers", type=int, default=2,
                         help="worker processes that decode and preprocess uploads")
    service.add_argument("--num_views", type=int, default=1,
                         help="clips per video when a request gives no ?views=")
    service.add_argument("--token", default=os.environ.get("PADDLEVIDEO_SERVE_TOKEN"),
                         help="require 'Authorization: Bearer TOKEN' (default: the "
                              "PADDLEVIDEO_SERVE_TOKEN environment variable)")
    service.add_argument("--allow_url_prefix", action="extend", nargs="+", default=[],
                         metavar="PREFIX",
                         help="http(s) URL prefixes clients may ask to fetch (several, or the "
                              "flag repeated; without it URL inputs are refused)")
    service.add_argument("--upload_timeout", type=float, default=300,
                         help="seconds an upload or URL download may take (then 408)")
    service.add_argument("--max_pixels", type=int, default=3840 * 2160,
                         help="largest frame (width x height) a video may have")
    service.add_argument("--job_ttl", type=float, default=3600,
                         help="seconds a finished timeline job and its video are kept")
    service.add_argument("--shutdown_timeout", type=float, default=30,
                         help="seconds SIGTERM waits for accepted work before exiting")
    add_engine_arguments(parser.add_argument_group("engine (as tools/predict.py)"),
                         use_gpu=False)
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace):
    """The one-line reason the flags cannot work, or None (before anything is loaded)."""
    for name in ("max_queue", "max_batch", "workers", "num_views", "gpu_mem"):
        if getattr(args, name) < 1:
            return f"--{name} must be at least 1, got {getattr(args, name)}"
    for name in ("max_upload_mb", "job_ttl", "shutdown_timeout", "upload_timeout",
                 "max_pixels"):
        if getattr(args, name) <= 0:
            return f"--{name} must be positive, got {getattr(args, name)}"
    if args.batch_wait_ms < 0:
        return f"--batch_wait_ms must be 0 or more, got {args.batch_wait_ms}"
    if not 0 <= args.port < 65536:
        return f"--port must be in [0, 65535], got {args.port}"
    if args.num_views > 10:
        return f"--num_views must be at most 10, got {args.num_views}"
    if args.token is not None and not args.token.strip():
        return "--token is empty"
    from paddlevideo.serving.uploads import check_url_prefixes

    try:
        args.allow_url_prefix = check_url_prefixes(args.allow_url_prefix)
    except ValueError as err:
        return str(err)
    return None


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the model loads so a taken port fails at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def run_server(app, service, sock: socket.socket, shutdown_timeout: float) -> int:
    """Serve until SIGTERM (→ 0) or SIGINT (→ 130); uvicorn stops accepting and lets running
    requests finish, then the app's shutdown finishes the accepted jobs, all within
    ``shutdown_timeout`` of the signal."""
    import time

    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            if service.stop_requested is None:  # the shutdown's deadline counts from here
                service.stop_requested = time.monotonic()
            super().handle_exit(sig, frame)

    caught = []
    # uvicorn re-raises the stopping signal after its graceful shutdown; these handlers take
    # it, so the process ends with the exit status below rather than being killed by it.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, _frame: caught.append(number))
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=max(int(shutdown_timeout), 1))
    Server(config).run(sockets=[sock])
    return 130 if signal.SIGINT in caught else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    problem = check_args(args)
    if problem:
        print(f"Error: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    if args.disable_glog:
        os.environ.setdefault("GLOG_minloglevel", "1")
    warnings.filterwarnings("ignore", message="No ccache found")
    try:
        sock = bind(args.host, args.port)
    except OSError as err:
        print(f"Error: cannot listen on {args.host}:{args.port}: {err.strerror}", file=sys.stderr)
        return 1
    from paddlevideo.inference.engines import EngineError
    from paddlevideo.inference.labels import LabelMapError
    from paddlevideo.serving import Service, Settings, build_app, load_predictor
    from paddlevideo.utils import ConfigError

    try:
        predictor, cfg = load_predictor(args)
    except (ConfigError, EngineError, LabelMapError, ValueError, OSError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    settings = Settings(max_upload=int(args.max_upload_mb * 2**20), max_queue=args.max_queue,
                        token=args.token, url_prefixes=args.allow_url_prefix,
                        job_ttl=args.job_ttl, shutdown_timeout=args.shutdown_timeout,
                        default_views=args.num_views, upload_timeout=args.upload_timeout,
                        max_pixels=args.max_pixels)
    service = Service(predictor, cfg, settings, workers=args.workers, max_batch=args.max_batch,
                      batch_wait=args.batch_wait_ms / 1000)
    service.model.warm_up()
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    logging.getLogger("paddlevideo.serve").info(
        "serving on http://%s:%d (%d classes, token %s)", shown, port,
        len(predictor.class_names), "required" if args.token else "off")
    code = run_server(build_app(service), service, sock, args.shutdown_timeout)
    if service.cut_short:
        # a job's thread is still inside the engine: ending the interpreter normally would
        # tear the engine down under it (a C++ abort); the wait is over, so leave now
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
