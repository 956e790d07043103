"""The naming rules other modules share: PEP 503 distribution names, bundle names, and the
short form of a value quoted in a message. Standard library only and cheap to import
(`takeout call` imports it on its start-up path)."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["BUNDLE_NAME", "bundle_name", "clip", "normalize", "short"]

#: What a bundle's name may be: it is a URL path segment (`/v1/models/NAME:predict`) and a
#: directory name.
BUNDLE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def normalize(name: str) -> str:
    """PEP 503: runs of `-`, `_` and `.` become one `-`, lower case (`Foo__Bar.baz` →
    `foo-bar-baz`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def bundle_name(fn: Any) -> str:
    """The name a function's bundle gets when none is given: its `__name__` (a lambda's is
    `function`), with what a URL segment cannot hold replaced by `_`."""
    name = getattr(fn, "__name__", None) or type(fn).__name__
    if name == "<lambda>":
        return "function"
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:128]
    return name if BUNDLE_NAME.match(name) else f"_{name}"[:128]


def short(value: Any, limit: int = 60) -> str:
    """`repr(value)`, cut to `limit` characters for a one-line message."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} object>"
    return clip(text, limit)


def clip(text: str, limit: int = 60) -> str:
    """`text`, cut to `limit` characters with `...` when longer."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def first_informative_line(text: str) -> str:
    """The first line of a message that says something: nltk's resource errors start with a
    line of asterisks, others with a blank line."""
    lines = [line.strip() for line in text.strip().splitlines()]
    return next(
        (line for line in lines if any(c.isalnum() for c in line)), lines[0] if lines else ""
    )
