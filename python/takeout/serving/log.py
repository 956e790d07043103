"""The supervisor's log lines, in the same two formats as the Rust server's."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

__all__ = ["Log"]


class Log:
    """Lines on stderr, `text` or `json` as `--log-format` says."""

    def __init__(self, format: str) -> None:
        self.format = format

    def info(self, msg: str, **fields: Any) -> None:
        self._emit("info", msg, fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self._emit("warning", msg, fields)

    def error(self, msg: str, **fields: Any) -> None:
        self._emit("error", msg, fields)

    def _emit(self, level: str, msg: str, fields: dict[str, Any]) -> None:
        now = time.time()
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        if self.format == "json":
            line = json.dumps(
                {"ts": ts, "level": level, "logger": "takeout.serve", "msg": msg, **fields}
            )
        else:
            parts = [f"{ts} {level.upper():<7} takeout.serve: {msg}"]
            for k, v in fields.items():
                text = str(v)
                parts.append(f"{k}={json.dumps(text) if (' ' in text or not text) else text}")
            line = " ".join(parts)
        try:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            # The function closed fd 2: a lost log line must not turn a clean stop into an error.
            pass
