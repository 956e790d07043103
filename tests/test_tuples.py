"""JSON has no tuple: an array arrives as a tuple where the annotation or the parameter's
default says tuple, and where a list still reaches a hash (a dict key, `lru_cache`), the error
names the parameter and the annotation that fixes it, on `takeout call` and `takeout serve`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

import takeout
from takeout import _runtime

from .support import run_cells

CELL = """
import functools
from typing import Tuple

PRICES = {(0, 0): 1.0, (1, 2): 2.5}

def by_annotation(cell: tuple[int, int], path: Tuple[Tuple[int, int], ...] = ()) -> float:
    return PRICES[cell] + sum(PRICES[p] for p in path)

def by_default(cell=(0, 0), path=((0, 0),)):
    return PRICES[cell] + sum(PRICES[p] for p in path)

@functools.lru_cache(maxsize=None)
def cached(points, scale: float = 1.0):
    return len(points) * scale

def lookup(cell, other):
    return PRICES[cell] + PRICES[other]
"""


@pytest.fixture(scope="module")
def cell() -> dict[str, Any]:
    return run_cells(CELL)


def cli_call(bundle: Path, arguments: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "takeout.cli", "call", str(bundle), json.dumps(arguments)],
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize("name", ["by_annotation", "by_default"])
def test_arrays_become_tuples_where_the_function_says_tuple(
    cell: dict[str, Any], tmp_path: Path, name: str
) -> None:
    arguments = {"cell": [1, 2], "path": [[0, 0], [1, 2]]}
    bundle = takeout.pack(cell[name], tmp_path / "b.takeout", examples=[arguments])
    assert bundle.manifest["examples"][0]["output"] == 6.0
    out = cli_call(bundle.path, arguments)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == 6.0
    handle = takeout.serve(cell[name], port=0, background=True)
    assert handle is not None
    try:
        r = httpx.post(handle.url + "/call", json=[[1, 2]], timeout=10)
    finally:
        handle.stop()
    assert r.json() == {"result": 2.5 + 1.0 * (name == "by_default")}


def test_a_hashed_list_names_the_parameter_and_the_fix(
    cell: dict[str, Any], tmp_path: Path
) -> None:
    bundle = takeout.pack(cell["cached"], tmp_path / "c.takeout")
    out = cli_call(bundle.path, {"points": [[0, 1], [2, 3]]})
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "takeout: error: the function raised TypeError: unhashable type: 'list': parameter "
        "`points` received a JSON array, which arrives as a list; annotate it "
        "`points: tuple[tuple[int, ...], ...]` (or give it a tuple default) so it arrives as "
        "a tuple"
    )
    handle = takeout.serve(cell["lookup"], port=0, background=True)
    assert handle is not None
    try:
        r = httpx.post(handle.url + "/call", json={"cell": [0, 0], "other": ["a", 1]}, timeout=10)
    finally:
        handle.stop()
    assert r.status_code == 500
    error = r.json()["error"]
    assert error["type"] == "TypeError"
    assert error["message"] == (
        "unhashable type: 'list': parameters `cell`, `other` received JSON arrays, which arrive "
        "as lists; annotate them `cell: tuple[int, ...]`, `other: tuple[Any, ...]` so they "
        "arrive as tuples"
    )


def test_other_type_errors_are_left_alone(cell: dict[str, Any]) -> None:
    call = _runtime.converter(cell["lookup"])
    assert call is not None
    with pytest.raises(TypeError, match=r"^unhashable type: 'dict'$"):
        call({"a": 1}, (0, 0))
    with pytest.raises(KeyError):
        call((5, 5), (0, 0))
