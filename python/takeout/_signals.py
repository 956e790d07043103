"""The signals that stop a server, and those that land before it can drain. Standard library
only and imported first by `takeout serve`: until a handler is installed, SIGTERM's default
action kills the process, so the earlier it is installed the shorter that window."""

from __future__ import annotations

import signal

# SIGHUP is SIGTERM here: its default action would kill a worker with its calls in flight, and
# a server has no terminal to reload for.
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

_early: list[int] = []


def _remember(signum: int, frame: object) -> None:
    _early.append(signum)


def remember_early() -> None:
    """Keep a signal that lands while the server starts for `on_signals` (or the supervisor),
    which then drains at once."""
    for sig in SIGNALS:
        signal.signal(sig, _remember)


def take_early() -> list[int]:
    """The signals `remember_early` kept, once."""
    seen = list(_early)
    _early.clear()
    return seen
