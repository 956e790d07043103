"""Serving in the background: the `Handle` that `background=True` returns, and the launcher
that runs several workers as a `takeout serve` child process."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

from ..errors import ServeError
from .config import ServeConfig

__all__ = ["Handle", "launch"]


class Handle:
    """A server running in the background. `stop()` drains it; also a context manager."""

    def __init__(self, name: str, url: str, stop: Callable[[float], None]) -> None:
        self.name = name
        self.url = url
        self._stop = stop
        self._stopped = False

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1].rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting, let in-flight calls finish (at most `timeout` seconds), return."""
        if not self._stopped:
            self._stopped = True
            self._stop(timeout)

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "serving"
        return f"<takeout.serving.Handle {self.name!r} {state} at {self.url}>"


def launch(path: Path, config: ServeConfig) -> Handle:
    """Several workers in the background: `takeout serve` in a child process of its own,
    configured whole by `config` (flags, and the secrets in its environment)."""
    host, port = config.host, config.port
    if port == 0:
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
        config = dataclasses.replace(config, port=port)
    argv = [sys.executable, "-m", "takeout.cli", "serve", str(path), *config.to_argv()]
    env = config.child_env(os.environ)
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise ServeError(f"`takeout serve {path}` exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise ServeError(f"`takeout serve {path}` did not become ready within 120 s")
        time.sleep(0.05)

    def stop(timeout: float) -> None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    # The name the server itself answers with: the manifest's, not the directory's.
    with urllib.request.urlopen(url + "/openapi.json", timeout=5) as r:
        name = json.load(r)["info"]["title"]
    return Handle(name, url, stop)
