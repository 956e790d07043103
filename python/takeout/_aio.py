"""The event loop the server runs coroutines, futures and async generators on.

Imported by the Rust server (`crates/takeout-py/src/server/aio.rs`) the first time a served
function returns an awaitable; the loop runs on a daemon thread of its own so that pool
threads only hand it work and never block on it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any


async def resolve(value: Any) -> Any:
    """The awaitable's result, or every item of an async generator, as a list."""
    if hasattr(value, "__anext__"):
        return [item async for item in value]
    return await value


def start() -> asyncio.AbstractEventLoop:
    """A new event loop, already running on its own daemon thread."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="takeout-asyncio", daemon=True).start()
    return loop
