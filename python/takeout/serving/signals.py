"""SIGTERM, SIGINT and SIGHUP for the serving processes: the first drains, a second exits at
once. SIGHUP is SIGTERM here: its default action would kill a worker with its calls in flight,
and a server has no terminal to reload for."""

from __future__ import annotations

import os
import signal
from typing import Any, Callable

from .._signals import SIGNALS, take_early

__all__ = ["SIGNALS", "on_signals", "take_early"]


class on_signals:
    """SIGTERM/SIGINT/SIGHUP call `stop()` once; a second signal exits at once."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self.stop = stop
        self.seen = 0
        self.previous: dict[int, Any] = {}

    def handle(self, signum: int, frame: Any) -> None:
        self.seen += 1
        if self.seen > 1:
            os._exit(128 + signum)
        self.stop()

    def __enter__(self) -> on_signals:
        for sig in SIGNALS:
            self.previous[sig] = signal.signal(sig, self.handle)
        for early in take_early()[:1]:
            self.handle(early, None)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self.previous.items():
            signal.signal(sig, previous)
