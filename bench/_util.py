"""What the benchmark scripts share: timing, progress lines and plain-text tables.

Standard library only: `bench/deps.py` imports it inside the MLflow venv too, where neither
takeout nor its dependencies are installed.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Optional


def log(message: str) -> None:
    """A progress line on stderr (stdout is the report)."""
    print(f"· {message}", file=sys.stderr, flush=True)


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    """Median seconds of `repeat` calls (each timed alone, so one slow call cannot skew it)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def wall(cmd: list[str], repeat: int, env: Optional[dict[str, str]] = None) -> float:
    """Median wall time of `cmd` run `repeat` times (one warm-up run first)."""
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return median_time(
        lambda: subprocess.run(cmd, check=True, capture_output=True, env=env), repeat
    )


def table(headers: list[str], rows: list[list[str]], right: frozenset[int] = frozenset()) -> str:
    """Columns padded to their widest cell; those in `right` aligned right."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: list[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])
