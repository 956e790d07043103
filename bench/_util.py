"""What the benchmark scripts share: timing, progress lines and plain-text tables.

Standard library only: `bench/deps.py` imports it inside the MLflow venv too, where neither
takeout nor its dependencies are installed.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
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


def verdicts(targets: Sequence[tuple[str, str, Optional[bool]]]) -> list[str]:
    """The closing lines of a serving benchmark: each target PASS or FAIL with its figure."""
    lines = ["", "targets:"]
    for what, value, ok in targets:
        lines.append(f"  {'PASS' if ok else 'FAIL'}  {what}: {value}")
    lines.append("(! after a figure: some responses were not 2xx or some sockets failed)")
    return lines


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def uv_command() -> list[str]:
    # uv is one of takeout's dependencies, so it sits next to this interpreter.
    found = shutil.which("uv", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "uv"]


def ensure_venv(
    venv: Path, probe: str, attempts: Sequence[tuple[str, Sequence[str]]]
) -> tuple[Optional[Path], str]:
    """A benchmark's own venv (for a tool whose pins clash with `.venv`'s), made with uv on
    first use: its interpreter, or None and why not. `probe` is Python code that must run in
    it; `attempts` are (label, packages) tried in order, e.g. pinned to this interpreter's
    versions first, then looser; the returned text names the one used."""
    python = venv_python(venv)

    def ready() -> bool:
        check = [str(python), "-c", probe]
        return python.exists() and subprocess.run(check, capture_output=True).returncode == 0

    if ready():
        return python, "reused"
    log(f"creating {venv.name} venv in {venv.parent.name}/ (once; later runs reuse it)")
    uv = uv_command()
    made = subprocess.run(
        [*uv, "venv", "-q", "--clear", "--python", sys.executable, str(venv)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        return None, f"`uv venv` failed: {made.stderr.strip()[-300:]}"
    last = ""
    for label, packages in attempts:
        done = subprocess.run(
            [*uv, "pip", "install", "-q", "--python", str(python), *packages],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode == 0 and ready():
            return python, f"created ({label})"
        last = done.stderr.strip()[-300:]
    return None, f"could not install {' '.join(attempts[-1][1])}: {last}"


def versions_here(names: Sequence[str]) -> list[str]:
    """`name==version` of each distribution installed here (the bare name where it is not)."""
    import importlib.metadata

    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    return pins
