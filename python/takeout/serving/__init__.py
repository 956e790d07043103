"""Serving a function over HTTP: `takeout.serve` and `takeout serve`.

Everything on the request path is Rust (`takeout._core.App`, `takeout._core.Server`); this
package loads the bundle, hands the function, its manifest and the whole `ServeConfig` to Rust,
and runs the process:

- `config`: `ServeConfig`, every option with its default, check, `TAKEOUT_*` variable and flag;
- `process`: one worker: serve until SIGTERM/SIGINT, drain in-flight calls, exit 0;
- `supervisor`: `workers=N`: load the bundle once, then fork N worker processes that each serve
  the same port (SO_REUSEPORT, so the kernel spreads connections), supervised: a worker that
  dies — even of a segfault in a C extension — is replaced with backoff while the others serve;
- `background`: `background=True`: a `Handle` with `.url` and `.stop()`, for notebooks and tests;
- `signals`, `log`: what the processes share.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .background import Handle, launch
from .config import DEFAULTS, ServeConfig, parse_size
from .process import describe, limit_blas_threads, run

__all__ = ["Handle", "ServeConfig", "parse_size", "serve", "serve_function"]


def serve(
    path: Union[str, os.PathLike[str], Callable[..., Any]],
    host: str = DEFAULTS.host,
    port: Optional[int] = None,
    workers: int = DEFAULTS.workers,
    background: bool = False,
    *,
    config: Optional[ServeConfig] = None,
    manifest: Optional[dict[str, Any]] = None,
    **options: Any,
) -> Optional[Handle]:
    """Serve the bundle at `path` (or, in a notebook, a function directly) over HTTP.

    Blocks until SIGTERM/SIGINT unless `background=True`, which returns a `Handle` with
    `.url` and `.stop()`. `options` are the fields of `ServeConfig` (`token`, `max_body`,
    `timeout`, `max_concurrency`, `max_connections`, `body_budget`, `threads`, `io_threads`,
    `grace`, `stuck_restart`, `body_timeout`, `allow_host`, `log_format`, `access_log`,
    `debug`, `signing_key`, `blas_threads`), or pass a whole `config=`. `port` defaults to
    `$PORT`, else 8000. `token` (default `$TAKEOUT_TOKEN`) requires `Authorization: Bearer`.
    Routes and errors are those of ARCHITECTURE.md's HTTP contract. `manifest`, with a
    function: its manifest dict, as in `serve_function`.
    """
    if port is not None:
        options["port"] = port
    config = ServeConfig.resolve(config, host=host, workers=workers, **options)
    if not (background and callable(path)):
        # Before the bundle loads numpy; not in a notebook's own process, whose BLAS the
        # user's other cells share.
        limit_blas_threads(config)
    if callable(path):
        fn, manifest = (path, manifest) if manifest is not None else describe(path)
    else:
        if manifest is not None:
            raise TypeError(
                f"`manifest=` is for serving a function, and `{path}` is a bundle, which "
                "carries its own manifest; leave `manifest=` out"
            )
        if background and config.workers > 1:
            return launch(Path(path), config)
        from ..bundle import load_with_manifest

        fn, manifest = load_with_manifest(path, signing_key=config.signing_key)
    return run(fn, manifest, config, background)


def serve_function(
    fn: Callable[..., Any], manifest: dict[str, Any], *args: Any, **kwargs: Any
) -> Optional[Handle]:
    """`serve` for a callable and a manifest dict (`name`, `function`, `examples` as a bundle's
    manifest has them); `fn` receives plain JSON-derived arguments. The other arguments are
    `serve`'s, defined there once."""
    return serve(fn, *args, manifest=manifest, **kwargs)
