"""One serving process: hand the function and the whole configuration to Rust, then serve in
the background, until a signal, or under the supervisor of several workers."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable, Optional

from .._names import bundle_name
from ..errors import UsageError
from .background import Handle
from .config import ServeConfig
from .log import Log
from .signals import on_signals
from .supervisor import Supervisor

__all__ = ["describe", "exit_dropped", "limit_blas_threads", "run"]


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
        stopping: list[bool] = []

        def shutdown() -> None:
            stopping.append(True)
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
        if server.dropped_calls:
            exit_dropped(log, app.name, server.dropped_calls, config.grace)
        log.info("stopped", name=app.name)
        return None
    supervisor = Supervisor(app, config, log)
    _log_blas(log)
    supervisor.run()
    return None


def exit_dropped(log: Log, name: str, dropped: int, grace: float) -> None:
    """Exit 1 after a grace period that cut calls off: an orchestrator must see that answers
    were lost. `_exit`, because those calls still run on threads that the interpreter's
    shutdown would abort under."""
    log.error(
        "the grace period ended with calls still running; they were dropped",
        name=name,
        calls_dropped=dropped,
        grace_s=grace,
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
