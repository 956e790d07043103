"""Running uv, the one tool that makes venvs and installs for `verify` and locks for `pack`.

The `uv` distribution (a dependency) ships the binary; `find_uv_bin` locates it, so no uv on
`PATH` is needed.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from .errors import BundleError

__all__ = ["index_flags", "reason", "run", "uv_bin"]


def uv_bin() -> str:
    """The uv binary of the `uv` distribution."""
    from uv import find_uv_bin

    return str(find_uv_bin())


def run(args: list[str], *, show: bool, what: str) -> None:
    """Run uv; with `show`, its messages pass through to stderr as they come (the install
    progress), and either way its last words explain a failure."""
    cmd = [uv_bin(), *args]
    if not show:
        cmd.insert(2 if args[0] == "pip" else 1, "-q")
    tail: list[str] = []
    with subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace"
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            if show:
                sys.stderr.write(line)
                sys.stderr.flush()
            if line.strip():
                tail = [*tail[-19:], line.strip()]
    if proc.returncode != 0:
        raise BundleError(
            f"{what} failed: {reason(tail, proc.returncode)}; check the package index "
            "(or pass --find-links/--offline)"
        )


def reason(lines: list[str], status: int) -> str:
    """The most telling line of uv's messages: its `cause:`, else its `error:`."""
    for prefix in ("cause:", "error:"):
        for line in lines:
            if line.startswith(prefix):
                return line[len(prefix) :].strip().rstrip(".")
    return lines[-1] if lines else f"uv exited with status {status}"


def index_flags(find_links: Sequence[Any], offline: bool) -> list[str]:
    flags: list[str] = []
    for location in find_links:
        flags += ["--find-links", str(location)]
    if offline:
        flags.append("--offline")
    return flags
