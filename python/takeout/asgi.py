"""The bundle as an ASGI application, for uvicorn, Granian, Hypercorn or Ray Serve.

    # app.py
    import takeout.asgi
    app = takeout.asgi.app("km_predict_two.takeout")

    $ uvicorn app:app                                     # or, without a file:
    $ TAKEOUT_BUNDLE=km_predict_two.takeout uvicorn --factory takeout.asgi:from_env

Routes, errors, binding, validation, metrics and result conversion are the Rust request core
that `takeout serve` runs (`takeout._core.App`); this module only moves bytes between the ASGI
server and it. Calls run on the core's own threads (coroutines on its own event loop), never on
the server's event loop, so a slow function does not stall other requests and `timeout` holds.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any, Optional, Union

from .errors import UsageError
from .serving.config import DEFAULTS, ServeConfig

__all__ = ["ASGIApp", "app", "from_env", "from_function"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
BUNDLE_ENV = "TAKEOUT_BUNDLE"


class ASGIApp:
    """An ASGI 3 application around a `takeout._core.App`."""

    def __init__(self, core: Any, body_timeout: float = DEFAULTS.body_timeout) -> None:
        self.core = core
        self.body_timeout = body_timeout

    @property
    def name(self) -> str:
        return str(self.core.name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        step = self.core.start(scope["method"], path, scope["headers"])
        if isinstance(step, tuple):
            await _respond(send, step)
            return
        try:
            body = await asyncio.wait_for(_read_body(receive, step.max_body), self.body_timeout)
        except asyncio.TimeoutError:
            await _respond(send, step.body_timeout(self.body_timeout))
            return
        if body is None:
            return  # the client left before sending its body
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        notify = functools.partial(loop.call_soon_threadsafe, _resolve, done)
        response = step.submit(body, notify)
        if response is None:
            try:
                await asyncio.wait_for(asyncio.shield(done), self.core.timeout)
                response = step.response()
            except asyncio.TimeoutError:
                response = step.timeout()
        await _respond(send, response)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # The ASGI server has drained its requests by now.
                self.core.drain()
                self.core.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def app(
    bundle: Union[str, os.PathLike[str]],
    *,
    config: Optional[ServeConfig] = None,
    **options: Any,
) -> ASGIApp:
    """The bundle at `bundle` as an ASGI application, with `takeout serve`'s routes and errors.

    `options` are the fields of `takeout.serving.ServeConfig` (or pass a whole `config=`);
    the address, port and workers are the ASGI server's. `token` defaults to `$TAKEOUT_TOKEN`;
    a signed bundle needs `signing_key` (or `$TAKEOUT_SIGNING_KEY`).
    """
    from .bundle import load_with_manifest

    config = ServeConfig.resolve(config, **options)
    fn, manifest = load_with_manifest(bundle, signing_key=config.signing_key)
    return from_function(fn, manifest, config=config)


def from_function(
    fn: Callable[..., Any],
    manifest: dict[str, Any],
    *,
    config: Optional[ServeConfig] = None,
    **options: Any,
) -> ASGIApp:
    """A callable and its manifest dict as an ASGI application (see `serving.serve_function`)."""
    from . import _core

    config = ServeConfig.resolve(config, **options)
    return ASGIApp(_core.App(fn, json.dumps(manifest), config), config.body_timeout)


def from_env() -> ASGIApp:
    """For `uvicorn --factory takeout.asgi:from_env`: the bundle named by `$TAKEOUT_BUNDLE`,
    configured like `takeout serve`'s flags by the `TAKEOUT_*` variables of
    `takeout.serving.ServeConfig` (`$TAKEOUT_TOKEN`, `$TAKEOUT_TIMEOUT`, `$TAKEOUT_MAX_BODY`, …)."""
    path = os.environ.get(BUNDLE_ENV)
    if not path:
        raise UsageError(f"set `{BUNDLE_ENV}` to the bundle directory to serve")
    return app(path, config=ServeConfig.from_env())


async def _read_body(receive: Receive, limit: int) -> Optional[bytes]:
    """The whole body, or its first `limit + 1` bytes (enough for the core to answer 413);
    None when the client disconnects."""
    chunks = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks += message.get("body", b"")
        if len(chunks) > limit or not message.get("more_body", False):
            return bytes(chunks)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _respond(send: Send, response: tuple[int, list[tuple[bytes, bytes]], bytes]) -> None:
    status, headers, body = response
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
