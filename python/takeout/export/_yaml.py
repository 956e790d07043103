"""YAML for the manifests we write, and only those: dicts, lists, strings, numbers, booleans.

Hand-written rather than a PyYAML dependency for one small, fixed shape. Every string is
written as a JSON string (a valid YAML double-quoted scalar), so nothing is ever read back as
another type (`"8080"`, `"true"`, `"1.29"` stay strings); keys are plain when they can be.
"""

from __future__ import annotations

import json
import re
from typing import Any

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")


def dump(value: Any) -> str:
    return "\n".join(_lines(value, 0)) + "\n"


def dump_all(documents: list[Any]) -> str:
    return "---\n".join(dump(d) for d in documents)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"no YAML form for {type(value).__name__}")


def _key(key: str) -> str:
    return (
        key
        if _PLAIN_KEY.match(key) and key not in ("true", "false", "null", "yes", "no", "on", "off")
        else json.dumps(key)
    )


def _lines(value: Any, indent: int) -> list[str]:
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return [pad + "{}"]
        out = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                out.append(f"{pad}{_key(key)}:")
                out.extend(_lines(item, indent + (1 if isinstance(item, dict) else 0)))
            else:
                out.append(f"{pad}{_key(key)}: {_inline(item)}")
        return out
    if isinstance(value, list):
        if not value:
            return [pad + "[]"]
        out = []
        for item in value:
            if isinstance(item, (dict, list)) and item:
                inner = _lines(item, indent + 1)
                out.append(f"{pad}- {inner[0].lstrip()}")
                out.extend(inner[1:])
            else:
                out.append(f"{pad}- {_inline(item)}")
        return out
    return [pad + _scalar(value)]


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)
