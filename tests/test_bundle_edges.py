"""Edge cases of packing, loading and converting that a review turned up."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import takeout
from takeout import _runtime, _types, schema
from takeout.errors import BundleIntegrityError, UsageError

from .conftest import run_cells


def test_pack_an_async_function_inside_a_running_event_loop(tmp_path: Path) -> None:
    ns = run_cells("async def double(x):\n    return 2 * x")

    async def in_a_cell() -> takeout.Bundle:  # a Jupyter cell runs inside an event loop
        return takeout.pack(ns["double"], tmp_path / "d.takeout", examples=[(21,)])

    bundle = asyncio.run(in_a_cell())
    assert bundle.manifest["examples"][0]["output"] == 42


def test_overwrite_keeps_a_directory_with_someone_elses_manifest(tmp_path: Path) -> None:
    webapp = tmp_path / "webapp"
    webapp.mkdir()
    (webapp / "manifest.json").write_text('{"name": "my pwa", "start_url": "/"}')
    (webapp / "index.html").write_text("<html></html>")
    ns = run_cells("def f():\n    return 1")
    with pytest.raises(UsageError, match="is not a takeout bundle; refusing to replace it"):
        takeout.pack(ns["f"], webapp, overwrite=True)
    assert (webapp / "index.html").exists()


def test_recursive_dataclasses_convert_and_describe(tmp_path: Path) -> None:
    ns = run_cells(
        """
        from __future__ import annotations
        import dataclasses
        @dataclasses.dataclass
        class Node:
            value: int
            children: list[Node] = dataclasses.field(default_factory=list)
        def total(tree: Node) -> int:
            return tree.value + sum(total(c) for c in tree.children)
        """
    )
    tree = {"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}]}
    bundle = takeout.pack(ns["total"], tmp_path / "t.takeout", examples=[(tree,)])
    assert bundle.manifest["examples"][0]["output"] == 6
    defs = bundle.manifest["function"]["schema"]["$defs"]
    assert defs["Node"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert takeout.load(bundle.path)(tree) == 6


def test_literal_and_enum_values_become_json() -> None:
    ns = run_cells(
        """
        import enum, datetime
        from typing import Literal
        class Color(enum.Enum):
            RED = "red"
        class Day(enum.Enum):
            NEW_YEAR = datetime.date(2024, 1, 1)
        def f(c: Literal[Color.RED], d: Day, b: Literal[b"x"]):
            return 1
        """
    )
    described = schema.describe(ns["f"])
    props = described["schema"]["properties"]
    assert props["c"] == {"enum": ["red"]}
    assert described["schema"]["$defs"]["Day"] == {"enum": ["2024-01-01"]}
    assert props["b"] == {"enum": ["eA=="]}  # bytes are base64
    json.dumps(described)
    plans = [_types.plan(typing.get_type_hints(ns["f"])[name]) for name in "cdb"]
    got = [plan(value) for plan, value in zip(plans, ["red", "2024-01-01", "eA=="])]
    assert got == [ns["Color"].RED, ns["Day"].NEW_YEAR, b"x"]  # the members themselves


def test_two_classes_with_one_name_get_two_definitions() -> None:
    ns = run_cells(
        """
        import dataclasses
        def make(field):
            return dataclasses.make_dataclass("Item", [(field, int)])
        A, B = make("a"), make("b")
        def f(x: A, y: B):
            return 1
        """
    )
    described = schema.describe(ns["f"])
    props = described["schema"]["properties"]
    assert props["x"] != props["y"]
    defs = described["schema"]["$defs"]
    assert defs["Item"]["required"] == ["a"] and defs["Item2"]["required"] == ["b"]


def test_a_damaged_manifest_is_one_sentence(tmp_path: Path) -> None:
    ns = run_cells("import numpy as np\nw = np.zeros(200_000)\ndef f():\n    return float(w[0])")
    bundle = takeout.pack(ns["f"], tmp_path / "b.takeout")
    original = (bundle.path / "manifest.json").read_text()
    for damage in (
        lambda m: m["buffers"][0].update(file=["x"]),
        lambda m: m.update(buffers=3),
        lambda m: m.update(python="3.11"),
        lambda m: m["buffers"][0].pop("size"),
        lambda m: m["files"].update({"function.pkl": "/etc/passwd"}),
    ):
        manifest = json.loads(original)
        damage(manifest)
        (bundle.path / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(BundleIntegrityError, match="is damaged"):
            takeout.load(bundle.path)
        out = subprocess.run(
            [sys.executable, "-m", "takeout.cli", "call", str(bundle.path), "[]"],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert "is damaged" in out.stderr and "the function raised" not in out.stderr


@pytest.mark.slow
def test_verify_a_chatty_signed_function(tmp_path: Path) -> None:
    ns = run_cells("import sys\ndef f(x):\n    sys.stdout.write('working...')\n    return x + 1")
    bundle = takeout.pack(ns["f"], tmp_path / "f.takeout", examples=[(1,)], signing_key="k")
    result = takeout.verify(bundle.path, signing_key="k")
    assert result.ok, str(result)
    out = subprocess.run(
        [sys.executable, "-m", "takeout.cli", "verify", str(bundle.path), "--signing-key", "k"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr


def test_conversions_round_trip() -> None:
    ns = run_cells(
        """
        import datetime
        def wait(d: datetime.timedelta, pair: tuple[int, int], at: datetime.time):
            return d.total_seconds(), pair, at.isoformat()
        """
    )
    call = _runtime.converter(ns["wait"])
    assert call is not None
    assert call(90, [1, 2], "12:00:00Z") == (90.0, (1, 2), "12:00:00+00:00")
    with pytest.raises(TypeError, match="expected 2 items, got 3"):
        call(1, [1, 2, 3], "12:00:00")
