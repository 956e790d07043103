"""`takeout serve`: the bundle over HTTP, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands to `sub`."""
    from ..serving.config import ServeConfig

    serve = sub.add_parser(
        "serve",
        help="serve a bundle over HTTP",
        description="Serve the bundle's function over HTTP: POST /call, "
        "POST /v1/models/NAME:predict (KServe v1), GET /healthz, /readyz, /metrics, "
        "/openapi.json and / (a page to try it). SIGTERM, SIGINT or SIGHUP drains in-flight "
        "calls and exits 0 (1 if the grace period cut calls off). Every option can also be set "
        "by its environment variable; a flag wins.",
    )
    serve.add_argument("bundle", metavar="BUNDLE")
    ServeConfig.add_arguments(serve)
    serve.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    import dataclasses

    from ..serving import serve
    from ..serving.config import ServeConfig

    config = ServeConfig.from_args(args)
    if args.debug:
        # `takeout --debug serve` shows tracebacks, of its own errors and in 500 responses.
        config = dataclasses.replace(config, debug=True)
    serve(args.bundle, config=config)
    return 0
