"""`takeout serve`: the bundle over HTTP, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands to `sub`."""
    serve = sub.add_parser(
        "serve",
        help="serve a bundle over HTTP",
        description="Serve the bundle's function over HTTP: POST /call, "
        "POST /v1/models/NAME:predict (KServe v1), GET /healthz, /readyz, /metrics, "
        "/openapi.json and / (a page to try it). SIGTERM or SIGINT drains in-flight calls "
        "and exits 0.",
    )
    serve.add_argument("bundle", metavar="BUNDLE")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    # $PORT: what container platforms (Knative, Cloud Run) set; export's images set 8080
    serve.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT") or 8000),
        help="port (default: $PORT, else 8000)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the port, restarted when they die (default: 1)",
    )
    serve.add_argument(
        "--token",
        default=None,
        help="require `Authorization: Bearer TOKEN` on calls and metrics (default: $TAKEOUT_TOKEN)",
    )
    serve.add_argument(
        "--max-body", default="10MiB", metavar="SIZE", help="largest request body (default: 10MiB)"
    )
    serve.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="a call running longer gets a 504 (default: 60)",
    )
    serve.add_argument(
        "--max-concurrency",
        type=int,
        default=1024,
        metavar="N",
        help="calls queued or running per worker; past it, 503 with Retry-After (default: 1024)",
    )
    serve.add_argument(
        "--threads",
        type=int,
        default=8,
        metavar="N",
        help="threads running the function per worker (default: 8)",
    )
    serve.add_argument(
        "--io-threads",
        type=int,
        default=1,
        metavar="N",
        help="threads doing HTTP and JSON per worker (default: 1)",
    )
    serve.add_argument(
        "--grace",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, how long in-flight calls may still run (default: 30)",
    )
    serve.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="a request body must arrive within this; slower clients get a 408 (default: 30)",
    )
    serve.add_argument("--log-format", choices=("text", "json"), default="text")
    serve.add_argument("--access-log", action="store_true", help="log one line per request")
    serve.add_argument(
        "--debug",
        dest="serve_debug",
        action="store_true",
        help="include the traceback in 500 responses",
    )
    serve.add_argument(
        "--signing-key",
        default=None,
        help="key for a signed bundle (default: $TAKEOUT_SIGNING_KEY)",
    )
    serve.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    from ..serving import serve

    serve(
        args.bundle,
        host=args.host,
        port=args.port,
        workers=args.workers,
        token=args.token,
        max_body=args.max_body,
        timeout=args.timeout,
        max_concurrency=args.max_concurrency,
        threads=args.threads,
        io_threads=args.io_threads,
        grace=args.grace,
        body_timeout=args.body_timeout,
        log_format=args.log_format,
        access_log=args.access_log,
        debug=args.serve_debug or args.debug,
        signing_key=args.signing_key,
    )
    return 0
