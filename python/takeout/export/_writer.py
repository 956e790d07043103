"""The one way an export reaches the disk: written into a temporary sibling directory and
renamed into place at the end, so a failure never leaves half an export behind.

An export directory carries `takeout-export.json` (what was exported, from which bundle, with
which options). An existing directory is replaced only with `--force`, and only if it has that
file: a directory that is not an export is never replaced, whatever the flags.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import UsageError

MARKER = "takeout-export.json"
FORMAT = "takeout-export/1"


def check_target(target: Path, force: bool) -> None:
    """Refuse `target` before any work is done: it exists and `force` is off, or it is not
    an export. Checked again (cheaply) right before the rename."""
    if not target.exists() and not target.is_symlink():
        return
    if not _is_export(target):
        raise UsageError(
            f"`{target}` exists and is not a takeout export; refusing to replace it, "
            "choose another -o"
        )
    if not force:
        raise UsageError(f"`{target}` already exists; pass --force to replace it, or another -o")


def _is_export(path: Path) -> bool:
    if path.is_symlink() or not path.is_dir():
        return False
    try:
        found = json.loads((path / MARKER).read_bytes()).get("format", "")
    except (OSError, ValueError, AttributeError):
        return False
    return str(found).startswith("takeout-export/")


class Output:
    """The temporary directory being filled, and the marker to write when it is done."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.marker: dict[str, Any] = {}


@contextmanager
def writing(target: Path, force: bool) -> Iterator[Output]:
    """Yield an `Output` on an empty temporary directory beside `target`; when the block ends
    without an error, write its marker and move the directory into place (an old export is
    moved aside first and removed only once the new one is there). On an error, nothing is
    left behind."""
    from ..bundle import move_into_place  # the bundle writer's swap: the same contract

    check_target(target, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the context from a build user
        output = Output(tmp)
        yield output
        text = json.dumps({"format": FORMAT, **output.marker}, indent=2, sort_keys=True)
        write_text(tmp / MARKER, text + "\n")
        _fix_times(tmp)
        check_target(target, force)  # something may have appeared there meanwhile
        move_into_place(tmp, target, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


#: Every file and directory of an export gets this modification time (1980-01-01, the
#: earliest a zip can hold): a build engine's layer cache keys a COPY on the files' metadata
#: too, so a fresh export of the same bundle must not look newer than the last one.
FIXED_MTIME = 315532800


def _fix_times(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):  # children first, then their folder
        os.utime(path, (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
    os.utime(root, (FIXED_MTIME, FIXED_MTIME))


def write_text(path: Path, text: str, mode: int = 0o644) -> None:
    """A text file with fixed permissions, so the same export is the same bytes and modes
    whatever the user's umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")
    os.chmod(path, mode)
