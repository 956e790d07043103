"""How a served function's results arrive beyond their JSON (which the conformance table in
`test_conformance.py` holds for every type and path): generators, coroutines and async
generators, errors raised while collecting them, unserializable predictions. In-process
servers (`takeout.serve(fn, background=True)`, the notebook path) over real loopback HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pandas as pd
import pytest

import takeout
from takeout.serving import Handle


def unserializable(kind: str) -> Any:
    if kind == "nested":
        return {"a": [1, {"b c": object()}]}
    if kind == "cycle":
        loop: list[Any] = []
        loop.append(loop)
        return loop
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
        for fn in (unserializable, count, twice, slowly, stream)
    }
    yield handles  # type: ignore[misc]
    for handle in handles.values():
        assert handle is not None
        handle.stop()


def call(handle: Handle, body: Any, route: str = "/call") -> httpx.Response:
    return httpx.post(handle.url + route, json=body, timeout=10)


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
