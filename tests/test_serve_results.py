"""What a served function may return, and how it arrives: numpy, pandas, dataclasses,
datetimes, Decimals, sets, tuples, enums, generators, coroutines; NaN and Infinity as null; a
500 naming the type and the place of anything that has no JSON form. In-process servers
(`takeout.serve(fn, background=True)`, the notebook path) over real loopback HTTP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import decimal
import enum
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import takeout
from takeout.serving import Handle


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: float
    y: float


@dataclasses.dataclass
class Path:
    name: str
    points: list[Point]
    when: dt.date


RESULTS: dict[str, Any] = {
    "np_int": lambda: np.int64(7),
    "np_float": lambda: np.float32(0.5),
    "np_bool": lambda: np.bool_(True),
    "np_array": lambda: np.array([[1.0, np.nan], [np.inf, -2.5]]),
    "np_int_array": lambda: np.arange(3, dtype=np.int32),
    "dataframe": lambda: pd.DataFrame({"b": [1, 2], "a": [0.5, None]}),
    "series": lambda: pd.Series([1.5, np.nan]),
    "timestamp": lambda: pd.Timestamp("2024-01-02T03:04:05"),
    "nat": lambda: pd.NaT,
    "dataclass": lambda: Path("p", [Point(1.0, 2.0)], dt.date(2024, 1, 2)),
    "datetime": lambda: dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
    "date": lambda: dt.date(2024, 1, 2),
    "time": lambda: dt.time(3, 4, 5),
    "timedelta": lambda: dt.timedelta(minutes=1, microseconds=500_000),
    "decimal_nan": lambda: decimal.Decimal("NaN"),
    "set": lambda: {3, 1, 2},
    "frozenset": lambda: frozenset({"b", "a"}),
    "tuple": lambda: (1, "a", None),
    "enum": lambda: Color.RED,
    "int_enum": lambda: Level.HIGH,
    "uuid": lambda: uuid.UUID(int=1),
    "floats": lambda: [float("nan"), float("inf"), -float("inf"), 1e300, -0.0],
    "bigint": lambda: 2**80,
    "generator": lambda: (i * i for i in range(3)),
    "keys": lambda: {1: "a", None: "b", False: "c", 2.5: "d"},
    "bytes": lambda: b"abc",
    "text": lambda: 'naïve "quoted" \n \u2028 \U0001f600',
}

EXPECTED: dict[str, Any] = {
    "np_int": 7,
    "np_float": 0.5,
    "np_bool": True,
    "np_array": [[1.0, None], [None, -2.5]],
    "np_int_array": [0, 1, 2],
    "dataframe": [{"b": 1, "a": 0.5}, {"b": 2, "a": None}],
    "series": [1.5, None],
    "timestamp": "2024-01-02T03:04:05",
    "nat": None,
    "dataclass": {"name": "p", "points": [{"x": 1.0, "y": 2.0}], "when": "2024-01-02"},
    "datetime": "2024-01-02T03:04:05+00:00",
    "date": "2024-01-02",
    "time": "03:04:05",
    "timedelta": 60.5,
    "decimal_nan": None,
    "set": [1, 2, 3],
    "frozenset": ["a", "b"],
    "tuple": [1, "a", None],
    "enum": "red",
    "int_enum": 3,
    "uuid": "00000000-0000-0000-0000-000000000001",
    "floats": [None, None, None, 1e300, -0.0],
    "bigint": 2**80,
    "generator": [0, 1, 4],
    "keys": {"1": "a", "null": "b", "false": "c", "2.5": "d"},
    "bytes": "abc",
    "text": 'naïve "quoted" \n \u2028 \U0001f600',
}


def result(kind: str) -> Any:
    return RESULTS[kind]()


def unserializable(kind: str) -> Any:
    if kind == "nested":
        return {"a": [1, {"b c": object()}]}
    if kind == "cycle":
        loop: list[Any] = []
        loop.append(loop)
        return loop
    if kind == "key":
        return {(1, 2): "tuple key"}
    return complex(1, 2)


def count(n: int) -> Iterator[int]:
    yield from range(n)
    if n > 5:
        raise RuntimeError("too many")


async def twice(x: float) -> float:
    await asyncio.sleep(0.01)
    if x < 0:
        raise ValueError("negative")
    return x * 2


async def slowly(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


async def stream(n: int) -> AsyncIterator[dict[str, int]]:
    for i in range(n):
        await asyncio.sleep(0)
        yield {"i": i}


@pytest.fixture(scope="module")
def served() -> Iterator[dict[str, Handle]]:
    handles = {
        fn.__name__: takeout.serve(fn, port=0, background=True, timeout=0.5)
        for fn in (result, unserializable, count, twice, slowly, stream)
    }
    yield handles  # type: ignore[misc]
    for handle in handles.values():
        assert handle is not None
        handle.stop()


def call(handle: Handle, body: Any, route: str = "/call") -> httpx.Response:
    return httpx.post(handle.url + route, json=body, timeout=10)


@pytest.mark.parametrize("kind", sorted(RESULTS))
def test_results_become_json(served: dict[str, Handle], kind: str) -> None:
    r = call(served["result"], {"kind": kind})
    assert r.status_code == 200, r.text
    assert r.json() == {"result": EXPECTED[kind]}


def test_decimals_keep_their_digits(served: dict[str, Handle]) -> None:
    RESULTS["decimal"] = lambda: decimal.Decimal("1.10")
    try:
        r = call(served["result"], {"kind": "decimal"})
    finally:
        del RESULTS["decimal"]
    assert r.content == b'{"result":1.10}'


@pytest.mark.parametrize(
    ("kind", "type_name", "where"),
    [
        ("complex", "complex", "result"),
        ("nested", "object", 'result.a[1]["b c"]'),
        ("cycle", "list nested deeper than 200 levels (a cycle?)", "result[0][0][0]"),
        ("key", "tuple as a dict key", "result{key}"),
    ],
)
def test_unserializable_results_name_type_and_place(
    served: dict[str, Handle], kind: str, type_name: str, where: str
) -> None:
    r = call(served["unserializable"], {"kind": kind})
    assert r.status_code == 500
    error = r.json()["error"]
    assert error["type"] == "unserializable_result"
    assert f"`{type_name}` at `{where}" in error["message"], error["message"]


def test_unserializable_in_a_prediction_names_the_instance(served: dict[str, Handle]) -> None:
    r = call(
        served["unserializable"],
        {"instances": ["complex", "nested"]},
        "/v1/models/unserializable:predict",
    )
    assert r.status_code == 500
    assert "at `predictions[0]`" in r.json()["error"]["message"]


def test_generators_are_collected(served: dict[str, Handle]) -> None:
    assert call(served["count"], {"n": 3}).json() == {"result": [0, 1, 2]}
    r = call(served["count"], {"n": 6})
    assert r.status_code == 500
    assert r.json()["error"] == {"type": "RuntimeError", "message": "too many", "details": []}


def test_coroutines_run_on_an_event_loop(served: dict[str, Handle]) -> None:
    assert call(served["twice"], {"x": 1.5}).json() == {"result": 3.0}
    r = call(served["twice"], {"instances": [1, 2, 3]}, "/v1/models/twice:predict")
    assert r.json() == {"predictions": [2, 4, 6]}
    r = call(served["twice"], {"x": -1})
    assert r.status_code == 500
    assert r.json()["error"]["type"] == "ValueError"
    assert call(served["stream"], [3]).json() == {"result": [{"i": 0}, {"i": 1}, {"i": 2}]}
    r = call(served["slowly"], {"seconds": 2})
    assert r.status_code == 504


def test_many_coroutines_at_once(served: dict[str, Handle]) -> None:
    async def main() -> list[Any]:
        async with httpx.AsyncClient(base_url=served["twice"].url, timeout=10) as http:
            responses = await asyncio.gather(
                *(http.post("/call", json={"x": i}) for i in range(100))
            )
        return [r.json()["result"] for r in responses]

    assert asyncio.run(main()) == [2 * i for i in range(100)]


def test_arguments_keep_their_key_order() -> None:
    def columns(rows: list[dict[str, Any]]) -> list[str]:
        return list(pd.DataFrame(rows).columns)

    handle = takeout.serve(columns, port=0, background=True)
    assert handle is not None
    try:
        r = call(handle, {"rows": [{"z": 1, "a": 2, "m": 3}]})
        assert r.json() == {"result": ["z", "a", "m"]}
    finally:
        handle.stop()
