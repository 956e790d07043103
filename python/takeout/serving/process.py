"""One serving process: hand the function and the whole configuration to Rust, then serve in
the background, until a signal, or under the supervisor of several workers."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable, Optional

from .._names import bundle_name
from ..errors import UsageError
from .background import Handle
from .config import ServeConfig
from .log import Log
from .signals import on_signals
from .supervisor import Supervisor

__all__ = ["describe", "exit_if_calls_left", "limit_blas_threads", "run"]


def limit_blas_threads(config: ServeConfig) -> None:
    """Each worker's BLAS/OpenMP threads as `config.blas_threads` says (None: its share of the
    CPUs), set in this process before it forks its workers; logged."""
    from .. import _threads

    if config.blas_threads == 0:
        _blas_line[:] = [("blas threads left to the libraries", {})]
        return
    cpus = _threads.available_cpus()
    if config.blas_threads is None:
        threads, source = _threads.default_threads(config.workers, cpus), "share"
    else:
        threads, source = config.blas_threads, "set"
    how = _threads.limit(threads)
    fields = {"per_worker": threads, "cpus": cpus, "workers": config.workers, "source": source}
    _blas_line[:] = [("blas threads", {**fields, "applied": how})]


# Logged once the port is bound, so that a start that fails is still one line.
_blas_line: list[tuple[str, dict[str, Any]]] = []


def _log_blas(log: Log) -> None:
    for msg, fields in _blas_line:
        log.info(msg, **fields)
    _blas_line.clear()


def run(
    fn: Callable[..., Any], manifest: dict[str, Any], config: ServeConfig, background: bool
) -> Optional[Handle]:
    """Serve `fn` as `config` says; a `Handle` when `background`, else once stopped None."""
    from .. import _core

    app = _core.App(fn, json.dumps(manifest), config)
    log = Log(config.log_format)
    if background:
        if config.workers != 1:
            raise UsageError(
                "background=True with a function runs one worker in this process; "
                "pack it and serve the bundle path to run several"
            )
        server = _core.Server(app, config)

        def stop(timeout: float) -> None:
            server.stop(timeout)
            app.close()

        return Handle(app.name, server.url, stop)
    if config.workers == 1:
        # Handlers first: a SIGTERM that lands while the server starts still drains it.
        started: list[Any] = []
        stopping: list[float] = []

        def shutdown() -> None:
            stopping.append(time.monotonic())
            for server in started:
                server.shutdown()

        with on_signals(shutdown):
            server = _core.Server(app, config)
            started.append(server)
            if stopping:
                server.shutdown()
            log.info("serving", name=app.name, url=server.url, workers=1, pid=os.getpid())
            _log_blas(log)
            server.wait()
        exit_if_calls_left(log, app, server, config, stopping[0] if stopping else None)
        log.info("stopped", name=app.name)
        return None
    supervisor = Supervisor(app, config, log)
    _log_blas(log)
    supervisor.run()
    return None


def exit_if_calls_left(
    log: Log, app: Any, server: Any, config: ServeConfig, since: Optional[float]
) -> None:
    """Exit 1 when the server stopped with calls still running: those the grace period cut
    off (their clients got no answer) and those stuck past `--timeout` (their clients got a
    504) — an orchestrator must see that. `_exit`, because a call that returns while the
    interpreter shuts down takes a GIL that is being torn down, and the process aborts.

    A call that outlived its request may still return within the grace period, counted from
    `since` (the signal); a wedged pool's calls will not, and are not waited for."""
    deadline = (time.monotonic() if since is None else since) + config.grace
    while app.calls_running and not app.wedged and time.monotonic() < deadline:
        time.sleep(0.01)
    dropped = server.dropped_calls
    left = app.calls_running
    if not dropped and not left:
        return
    if dropped:
        log.error(
            "the grace period ended with calls still running; they were dropped",
            name=app.name,
            calls_dropped=dropped,
            grace_s=config.grace,
        )
    if left > dropped:
        log.error(
            "calls that ran past --timeout were still running; they were abandoned",
            name=app.name,
            calls_stuck=left - dropped,
            timeout_s=config.timeout,
        )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def describe(fn: Callable[..., Any]) -> tuple[Callable[..., Any], dict[str, Any]]:
    """A manifest for a live function, as `takeout.pack` would write it, without packing."""
    from .. import _runtime, batching, schema

    name = bundle_name(fn)
    batch = batching.batch_of(fn, None)  # `@takeout.batched` serves batched here too
    described = schema.describe(fn, batch=batch is not None)
    manifest: dict[str, Any] = {
        "name": name,
        "function": {"qualname": getattr(fn, "__qualname__", name), **described},
    }
    if batch is not None:
        manifest["batch"] = batch.to_manifest(batching.item_parameter(fn).name)
    return (_runtime.converter(fn) or fn), manifest
