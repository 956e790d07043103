"""The manifest's signature entry: parameters and a JSON Schema from annotations, and the
conversion of JSON arguments back into the annotated types."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

import takeout
from takeout import _runtime, _types, schema

from .support import run_cells

CELL = """
import dataclasses, datetime, enum, typing
from typing import Literal, Optional, Union
import numpy as np
import numpy.typing as npt
import pydantic

class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"

@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0

class Box(typing.TypedDict):
    low: Point
    high: Point

class Order(pydantic.BaseModel):
    item: str
    quantity: int = pydantic.Field(ge=1)

def everything(
    n: int,
    ratio: float,
    name: str,
    flag: bool,
    tags: list[str],
    weights: dict[str, float],
    pair: tuple[int, str],
    many: tuple[float, ...],
    maybe: Optional[int],
    either: Union[int, str],
    mode: Literal["fast", "slow"],
    color: Color,
    point: Point,
    box: Box,
    order: Order,
    matrix: np.ndarray,
    vector: npt.NDArray[np.float32],
    when: datetime.datetime,
    anything,
    *rest: int,
    scale: float = 1.0,
    **options: str,
) -> list[float]:
    return [n * ratio * scale]
"""


@pytest.fixture(scope="module")
def ns() -> dict[str, Any]:
    return run_cells(CELL)


@pytest.fixture(scope="module")
def described(ns: dict[str, Any]) -> dict[str, Any]:
    return schema.describe(ns["everything"])


def _prop(described: dict[str, Any], name: str) -> dict[str, Any]:
    return described["schema"]["properties"][name]


def test_schema_is_valid_draft_2020_12(described: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(described["schema"])
    assert json.loads(json.dumps(described)) == described


def test_builtins_and_generics(described: dict[str, Any]) -> None:
    p = lambda name: _prop(described, name)  # noqa: E731
    assert p("n") == {"type": "integer"}
    assert p("ratio") == {"type": "number"}
    assert p("name") == {"type": "string"}
    assert p("flag") == {"type": "boolean"}
    assert p("tags") == {"type": "array", "items": {"type": "string"}}
    assert p("weights") == {"type": "object", "additionalProperties": {"type": "number"}}
    assert p("pair")["prefixItems"] == [{"type": "integer"}, {"type": "string"}]
    assert p("many") == {"type": "array", "items": {"type": "number"}}
    assert p("maybe") == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert p("either") == {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert p("mode") == {"enum": ["fast", "slow"]}
    assert p("when") == {"type": "string", "format": "date-time"}
    assert p("anything") == {}
    assert p("scale") == {"type": "number", "default": 1.0}
    assert described["returns"] == {"type": "array", "items": {"type": "number"}}


def test_named_types_go_to_defs(described: dict[str, Any]) -> None:
    defs = described["schema"]["$defs"]
    assert _prop(described, "color") == {"$ref": "#/$defs/Color"}
    assert defs["Color"] == {"enum": ["red", "blue"]}
    assert defs["Point"]["required"] == ["x"]
    assert defs["Box"]["properties"]["low"] == {"$ref": "#/$defs/Point"}
    assert defs["Order"]["properties"]["quantity"]["minimum"] == 1  # pydantic's own schema
    assert _prop(described, "matrix") == {"$ref": "#/$defs/ndarray"}
    assert _prop(described, "vector") == {"$ref": "#/$defs/ndarray"}


def test_parameters_and_required(described: dict[str, Any]) -> None:
    params = {p["name"]: p for p in described["parameters"]}
    assert params["rest"]["kind"] == "VAR_POSITIONAL" and not params["rest"]["required"]
    assert params["options"]["kind"] == "VAR_KEYWORD"
    assert params["scale"] == {
        "name": "scale",
        "kind": "KEYWORD_ONLY",
        "required": False,
        "schema": {"type": "number"},
        "default": 1.0,
    }
    assert "rest" not in described["schema"]["properties"]
    assert "scale" not in described["schema"]["required"]
    assert "n" in described["schema"]["required"]
    # **options: extra keywords are allowed (as strings would be, but the schema says any)
    assert "additionalProperties" not in described["schema"]
    assert described["signature"].startswith("(n: int, ratio: float")


GOOD = {
    "n": 2,
    "ratio": 0.5,
    "name": "a",
    "flag": True,
    "tags": ["x"],
    "weights": {"a": 1.5},
    "pair": [1, "b"],
    "many": [1.0, 2.0],
    "maybe": None,
    "either": "s",
    "mode": "fast",
    "color": "red",
    "point": {"x": 1.0},
    "box": {"low": {"x": 0.0, "y": 0.0}, "high": {"x": 1.0, "y": 1.0}},
    "order": {"item": "tea", "quantity": 2},
    "matrix": [[1, 2], [3, 4]],
    "vector": [1.0, 2.5],
    "when": "2024-05-01T12:00:00Z",
    "anything": {"free": ["form"]},
}


def test_schema_accepts_good_and_rejects_bad_arguments(described: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(described["schema"])
    validator.validate(GOOD)
    for field, bad in [
        ("n", "two"),
        ("mode", "medium"),
        ("point", {"y": 1.0}),
        ("order", {"item": "tea", "quantity": 0}),
        ("matrix", [["a"]]),
        ("pair", [1, 2]),
    ]:
        errors = list(validator.iter_errors({**GOOD, field: bad}))
        assert errors and errors[0].absolute_path[0] == field, (field, errors)


def test_converter_builds_the_annotated_types(ns: dict[str, Any]) -> None:
    fn = ns["everything"]
    call = _runtime.converter(fn)
    assert call is not None
    assert call(**GOOD, scale=2.0) == [2.0]  # the JSON arguments run the real function
    hints = typing.get_type_hints(fn)
    converted = {}
    for name, value in GOOD.items():
        plan = _types.plan(hints[name]) if name in hints else None
        converted[name] = plan(value) if plan else value
    assert type(converted["color"]).__name__ == "Color"
    assert type(converted["point"]).__name__ == "Point" and converted["point"].y == 0.0
    assert type(converted["box"]["low"]).__name__ == "Point"
    assert type(converted["order"]).__name__ == "Order"
    assert isinstance(converted["matrix"], np.ndarray) and converted["matrix"].shape == (2, 2)
    assert converted["vector"].dtype == np.float32
    assert converted["pair"] == (1, "b")
    assert converted["when"].tzinfo is not None
    assert converted["tags"] == ["x"] and converted["anything"] is GOOD["anything"]


def test_values_of_the_right_type_pass_through(ns: dict[str, Any]) -> None:
    hints = typing.get_type_hints(ns["everything"])
    array = np.zeros(3)
    assert _types.plan(hints["matrix"])(array) is array
    point = ns["Point"](1.0, 2.0)
    assert _types.plan(hints["point"])(point) is point


def test_unannotated_functions_only_get_the_tuple_hint() -> None:
    f = run_cells("def f(a, b=1):\n    return a")["f"]
    call = _runtime.converter(f)
    assert call is not None and call.__wrapped__ is f
    arg = [1, 2]
    assert call(arg) is arg  # values are passed through untouched
    g = run_cells("def g(a: int, b: list[str]) -> int:\n    return a")["g"]
    call = _runtime.converter(g)
    assert call is not None and call(1, ["x"]) == 1  # JSON values already are ints and lists
    assert _runtime.converter(run_cells("def h():\n    return 1")["h"]) is None


def test_pack_and_load_a_typed_function(ns: dict[str, Any], tmp_path: Path) -> None:
    typed = run_cells(
        """
        import dataclasses
        import numpy as np
        @dataclasses.dataclass
        class Query:
            rows: int
            scale: float = 1.0
        def predict(x: np.ndarray, q: Query) -> float:
            return float(x[: q.rows].sum() * q.scale)
        """
    )
    bundle = takeout.pack(
        typed["predict"], tmp_path / "p.takeout", examples=[([1, 2, 3], {"rows": 2})]
    )
    assert bundle.manifest["examples"][0]["output"] == 3.0
    assert bundle.manifest["function"]["schema"]["properties"]["q"] == {"$ref": "#/$defs/Query"}
    fn = takeout.load(bundle.path)
    assert fn([1, 2, 3], {"rows": 3, "scale": 2.0}) == 12.0
    assert fn(np.array([1.0, 1.0]), typed["Query"](rows=1)) == 1.0


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


def test_polars_frames_are_one_table_entry() -> None:
    import polars as pl

    ns = run_cells(
        "import polars as pl\n"
        "def total(rows: pl.DataFrame, weights: pl.Series) -> pl.DataFrame:\n"
        "    return rows.with_columns(w=weights)"
    )
    described = schema.describe(ns["total"])
    props = described["schema"]["properties"]
    assert props["rows"] == {"type": "array", "items": {"type": "object"}}
    assert props["weights"] == {"type": "array"}
    call = _runtime.converter(ns["total"])
    assert call is not None
    out = call([{"a": 1}, {"a": 2}], [0.5, 1.5])
    assert isinstance(out, pl.DataFrame)
    assert _runtime.to_json(out) == [{"a": 1, "w": 0.5}, {"a": 2, "w": 1.5}]
