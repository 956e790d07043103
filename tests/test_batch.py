"""Batch functions, end to end: packed with `takeout.Batch`, `@takeout.batched` or
`takeout pack --batch`, served by real `takeout serve` processes and by the ASGI adapter under
uvicorn (both run the Rust batcher), called with a real HTTP client on loopback, and checked
against the same model called in this process.

The model is scikit-learn's KMeans fitted on the iris measurements, with the seed's
`km_predict_one` as its unbatched twin. A batched twin of `tests/test_serve.py`'s probe runs
the HTTP contract tests of that file again (its `probe_server` fixture, here on this module's
`bundles`), so a batched bundle answers as an unbatched one.
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

import takeout
from takeout.errors import UsageError

from .support import answers_under_load, run_cells
from .test_notebook_slice import write_notebook
from .test_serve import (  # noqa: F401  (the contract tests run here again, batched)
    TRANSPORTS,
    Served,
    error_of,
    post,
    probe_server,
    serve,
    test_400_malformed_and_too_deep,
    test_404_and_405,
    test_413_by_declared_and_by_actual_length,
    test_415_not_json,
    test_422_says_which_field,
    test_500_says_type_and_message_without_traceback,
    test_503_over_max_concurrency_with_retry_after,
    test_504_past_the_timeout,
    test_call_binds_objects_arrays_and_defaults,
    test_index_page_is_self_contained,
    test_metrics_count_requests_latency_in_flight_and_errors,
    test_openapi_is_built_from_the_manifest,
    test_probes_and_model_metadata,
    test_the_server_survives_garbage,
)

pytestmark = pytest.mark.slow

TAKEOUT = [sys.executable, "-m", "takeout.cli"]

KMEANS = """
import numpy as np
import takeout
from sklearn.cluster import KMeans
from sklearn.datasets import load_iris

data = load_iris().data[:, :2]
model = KMeans(n_clusters=3, random_state=0, n_init=10).fit(data)

def km_predict_one(sample):
    sample = np.array(sample).reshape(1, -1)
    return model.predict(sample)[0]

@takeout.batched(max_size=32, max_wait_ms=2)
def km_predict(samples: list[list[float]]) -> list[int]:
    '''The cluster of each sample.'''
    return model.predict(np.array(samples, dtype=float).reshape(len(samples), -1))
"""

# The probe of tests/test_serve.py as a batch function: one result per item, misbehaving for
# the whole batch as `mode` says (items with another `mode` are never in the same batch).
PROBE = """
import os, time

def probe(x: list[float], mode: str = "ok") -> list[float]:
    '''Double x, or misbehave as `mode` says.'''
    if mode == "raise":
        raise ValueError("bad x " + ", ".join(f"{v:g}" for v in x))
    if mode == "sleep":
        time.sleep(max(x))
        return x
    if mode == "pid":
        return [os.getpid()] * len(x)
    if mode == "object":
        return [object() for _ in x]
    if mode == "short":
        return [v * 2 for v in x][1:]
    if mode == "size":
        return [len(x)] * len(x)
    if mode == "series":
        import pandas
        return pandas.Series([v * 2 for v in x], index=[f"r{i}" for i in range(len(x))])
    return [v * 2 for v in x]
"""


@pytest.fixture(scope="module")
def km() -> dict[str, Any]:
    return run_cells(KMEANS)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, km: dict[str, Any]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("batch")
    probe = run_cells(PROBE)["probe"]
    example = [([5.0, 3.5],)]
    return {
        # The decorator's settings.
        "km": takeout.pack(km["km_predict"], root / "km.takeout", examples=example).path,
        "twin": takeout.pack(km["km_predict_one"], root / "twin.takeout", examples=example).path,
        "probe": takeout.pack(
            probe, root / "probe.takeout", examples=[(1.5,)], batch=takeout.Batch()
        ).path,
        # Requests queue behind a running call until it answers or 2 s pass: what a batch
        # holds is then up to the test.
        "hold": takeout.pack(
            probe,
            root / "hold.takeout",
            name="probe",
            batch=takeout.Batch(max_size=8, max_wait_ms=2000),
        ).path,
        "quick": takeout.pack(
            probe,
            root / "quick.takeout",
            name="probe",
            batch=takeout.Batch(max_size=8, max_wait_ms=300),
        ).path,
    }


@pytest.fixture(scope="module", params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def samples(n: int, seed: int) -> list[list[float]]:
    rng = random.Random(seed)
    return [[round(rng.uniform(4, 8), 2), round(rng.uniform(2, 4.5), 2)] for _ in range(n)]


def metric(text: str, name: str) -> float:
    """A metric summed over workers."""
    found = re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    assert found, text
    return sum(float(v) for v in found)


# ── the Python API and the manifest ─────────────────────────────────────────────────────────


def test_the_decorated_function_still_takes_a_list(km: dict[str, Any]) -> None:
    fn = km["km_predict"]
    got = fn([[5.0, 3.5], [6.5, 3.0]]).tolist()
    assert got == [int(km["km_predict_one"](s)) for s in ([5.0, 3.5], [6.5, 3.0])]


def test_the_manifest_records_the_batch_and_describes_one_item(bundles: dict[str, Path]) -> None:
    manifest = json.loads((bundles["km"] / "manifest.json").read_text())
    assert manifest["batch"] == {"max_size": 32, "max_wait_ms": 2.0, "parameter": "samples"}
    function = manifest["function"]
    assert function["signature"] == "(samples: list[float]) -> int"
    assert function["parameters"][0]["schema"] == {"type": "array", "items": {"type": "number"}}
    assert function["returns"] == {"type": "integer"}
    # The example is one item, recorded with that item's answer.
    assert manifest["examples"][0]["args"] == [[5.0, 3.5]]
    assert isinstance(manifest["examples"][0]["output"], int)
    # The mark is not pickled: a loader needs no takeout to unpickle the function.
    assert b"takeout" not in (bundles["km"] / "function.pkl").read_bytes()
    unbatched = json.loads((bundles["twin"] / "manifest.json").read_text())
    assert "batch" not in unbatched


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_size": 0}, "Batch max_size `0` is not a whole number from 1 to 65536"),
        ({"max_size": 2.5}, "Batch max_size `2.5`"),
        ({"max_wait_ms": -1}, "Batch max_wait_ms `-1` is not a number of milliseconds"),
        ({"max_wait_ms": float("nan")}, "Batch max_wait_ms `nan`"),
    ],
)
def test_bad_settings_are_one_sentence(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        takeout.Batch(**settings)


def test_a_function_that_cannot_take_a_list_first_is_refused(tmp_path: Path) -> None:
    ns = run_cells("def star(*xs):\n    return xs\n\nasync def later(xs):\n    return xs\n")
    with pytest.raises(UsageError, match="must take the list of items as its first parameter"):
        takeout.pack(ns["star"], tmp_path / "a.takeout", batch=takeout.Batch())
    with pytest.raises(UsageError, match="is `async def`"):
        takeout.pack(ns["later"], tmp_path / "b.takeout", batch=takeout.Batch())
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_takeout_call_takes_one_item(bundles: dict[str, Path], km: dict[str, Any]) -> None:
    for body in ("[[6.5, 3.0]]", '{"samples": [6.5, 3.0]}'):
        out = subprocess.run(
            [*TAKEOUT, "call", str(bundles["km"]), body], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == int(km["km_predict_one"]([6.5, 3.0]))
    out = subprocess.run(
        [*TAKEOUT, "call", str(bundles["probe"]), '{"x": 2, "mode": "short"}'],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert out.stderr == (
        "takeout: error: the batch function returned 0 results for 1 item; return one result "
        "per item, in order\n"
    )


def test_verify_replays_the_examples_one_item_at_a_time(bundles: dict[str, Path]) -> None:
    result = takeout.verify(bundles["km"])
    assert result.ok, str(result)
    assert [e.ok for e in result.examples] == [True]


def test_pack_from_the_shell_with_batch_flags(tmp_path: Path, km: dict[str, Any]) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", KMEANS.replace("@takeout.batched", "# "))
    out = subprocess.run(
        [
            *TAKEOUT,
            "pack",
            str(nb),
            "km_predict",
            *("--batch", "16", "--batch-wait", "500us"),
            "--example",
            "[[5.0, 3.5]]",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    manifest = json.loads((tmp_path / "km_predict.takeout" / "manifest.json").read_text())
    assert manifest["batch"] == {"max_size": 16, "max_wait_ms": 0.5, "parameter": "samples"}
    bad = subprocess.run(
        [*TAKEOUT, "pack", str(nb), "km_predict", "--batch", "8", "--batch-wait", "soon"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("takeout: error: --batch-wait `soon` is not a duration")
    assert len(bad.stderr.splitlines()) == 1


# ── serving ─────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("workers", [1, 2])
def test_every_client_gets_its_own_answer_under_concurrent_load(
    transport: str, workers: int, bundles: dict[str, Path], km: dict[str, Any]
) -> None:
    if transport != "takeout" and workers > 1:
        pytest.skip("uvicorn's own workers are covered by tests/test_serve_lifecycle.py")
    points = samples(400, workers)
    expected = [int(km["km_predict_one"](p)) for p in points]
    server = serve(transport, bundles["km"], f"--workers={workers}")

    bodies = [{"samples": p} if i % 2 else [p] for i, p in enumerate(points)]
    try:
        assert answers_under_load(server.url, bodies) == expected
        text = httpx.get(server.url + "/metrics").text
        assert metric(text, "takeout_batch_size_sum") == len(points)
        assert metric(text, "takeout_batch_queue_wait_seconds_count") == len(points)
        # Concurrent requests shared calls.
        assert metric(text, "takeout_batch_size_count") < len(points)
    finally:
        assert server.stop() == 0, server.log


def test_batched_answers_equal_the_unbatched_twin_on_every_route(
    transport: str, bundles: dict[str, Path]
) -> None:
    batched = serve(transport, bundles["km"])
    twin = serve(transport, bundles["twin"])
    points = samples(40, 7)
    try:
        for sample in points[:5]:
            want = post(twin.url + "/call", [sample]).json()
            assert post(batched.url + "/call", [sample]).json() == want
            assert post(batched.url + "/call", {"samples": sample}).json() == want
        # KServe v1: 40 instances in chunks of max_size (32), one answer in order.
        v1 = post(twin.url + "/v1/models/km_predict_one:predict", {"instances": points}).json()
        r = post(batched.url + "/v1/models/km_predict:predict", {"instances": points})
        assert r.status_code == 200, r.text
        assert r.json() == v1
        # KServe v2: the batch dimension is the first one of the item input.
        meta = httpx.get(batched.url + "/v2/models/km_predict").json()
        assert meta["inputs"] == [{"name": "samples", "datatype": "FP64", "shape": [-1, -1]}]
        flat = [v for p in points for v in p]
        body = {"inputs": [{"name": "samples", "shape": [40, 2], "datatype": "FP64", "data": flat}]}
        r = post(batched.url + "/v2/models/km_predict/infer", body)
        assert r.status_code == 200, r.text
        output = r.json()["outputs"][0]
        assert (output["shape"], output["data"]) == ([40], v1["predictions"])
        # The schema clients see is the unbatched function's.
        doc, twin_doc = (httpx.get(s.url + "/openapi.json").json() for s in (batched, twin))
        args = doc["components"]["schemas"]["Arguments"]["properties"]["samples"]
        assert args == {"type": "array", "items": {"type": "number"}}
        assert set(doc["paths"]) == {
            p.replace("km_predict_one", "km_predict") for p in twin_doc["paths"]
        }
        # A bad item is a 422 naming the instance, as unbatched.
        r = post(batched.url + "/v1/models/km_predict:predict", {"instances": [[1, 2], [1, "a"]]})
        assert error_of(r)["details"][0]["loc"] == ["body", "instances", 1, 1]
    finally:
        for server in (batched, twin):
            assert server.stop() == 0, server.log


def _occupy(url: str, seconds: float) -> threading.Thread:
    """A call that runs `seconds`; requests sent meanwhile queue behind it."""
    done: list[httpx.Response] = []
    t = threading.Thread(
        target=lambda: done.append(post(url + "/call", {"x": seconds, "mode": "sleep"}))
    )
    t.start()
    time.sleep(0.5)  # it is in the function now
    t.done = done  # type: ignore[attr-defined]
    return t


def _together(url: str, bodies: list[Any]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda b: post(url + "/call", b), bodies))


def test_a_partial_batch_goes_when_max_wait_has_passed(
    transport: str, bundles: dict[str, Path]
) -> None:
    server = serve(transport, bundles["quick"], "--threads=2")
    try:
        running = _occupy(server.url, 2.5)
        t0 = time.monotonic()
        answers = _together(server.url, [{"x": i, "mode": "size"} for i in range(3)])
        waited = time.monotonic() - t0
        # Three of max_size 8, handed over 300 ms after the first queued, not when the
        # running call (2.5 s) answered.
        assert [r.json() for r in answers] == [{"result": 3}] * 3
        assert waited < 2.0, waited
        running.join()
        assert running.done[0].json() == {"result": 2.5}  # type: ignore[attr-defined]
    finally:
        assert server.stop() == 0, server.log


def test_a_raising_batch_fails_every_request_in_it(
    transport: str, bundles: dict[str, Path]
) -> None:
    server = serve(transport, bundles["hold"])
    try:
        running = _occupy(server.url, 2.0)
        answers = _together(server.url, [{"x": i, "mode": "raise"} for i in (1, 2, 3, 4)])
        errors = [error_of(r) for r in answers]
        assert [r.status_code for r in answers] == [500] * 4
        assert {e["type"] for e in errors} == {"ValueError"}
        # One call raised, with all four items: each request has its message.
        (message,) = {e["message"] for e in errors}
        assert sorted(message.removeprefix("bad x ").split(", ")) == ["1", "2", "3", "4"]
        running.join()
        # The server goes on: the next batch runs; a pandas Series is split by position, not
        # by its index.
        assert post(server.url + "/call", {"x": 5}).json() == {"result": 10}
        assert post(server.url + "/call", {"x": 4, "mode": "series"}).json() == {"result": 8}
    finally:
        assert server.stop() == 0, server.log


def test_a_result_of_the_wrong_length_is_a_500_naming_both_lengths(
    transport: str, bundles: dict[str, Path]
) -> None:
    server = serve(transport, bundles["hold"])
    try:
        running = _occupy(server.url, 2.0)
        answers = _together(server.url, [{"x": i, "mode": "short"} for i in (1, 2, 3)])
        for r in answers:
            assert r.status_code == 500
            assert error_of(r) == {
                "type": "invalid_batch_result",
                "message": "the batch function returned 2 results for 3 items; return one "
                "result per item, in order",
                "details": [],
            }
        running.join()
        r = post(server.url + "/call", {"x": 1, "mode": "short"})
        assert "returned 0 results for 1 item;" in error_of(r)["message"]
        text = httpx.get(server.url + "/metrics").text
        assert 'takeout_function_errors_total{type="invalid_batch_result"} 4' in text
    finally:
        assert server.stop() == 0, server.log


def test_sigterm_with_a_half_full_queue_loses_no_request(
    transport: str, bundles: dict[str, Path]
) -> None:
    server = serve(transport, bundles["hold"])
    running = _occupy(server.url, 2.0)
    results: list[httpx.Response] = []
    queued = [
        threading.Thread(target=lambda i=i: results.append(post(server.url + "/call", {"x": i})))
        for i in range(4)  # half of max_size 8, with 2 s to wait
    ]
    for t in queued:
        t.start()
    time.sleep(0.8)  # connected and queued: the running call has more than a second to go
    code = server.stop(signal.SIGTERM)
    for t in [running, *queued]:
        t.join()
    assert code == 0, server.log
    assert running.done[0].json() == {"result": 2.0}  # type: ignore[attr-defined]
    assert sorted(r.json()["result"] for r in results) == [0, 2, 4, 6]


def test_a_live_decorated_function_is_served_batched(km: dict[str, Any]) -> None:
    handle = takeout.serve(km["km_predict"], port=0, background=True)
    assert handle is not None
    try:
        r = post(handle.url + "/call", {"samples": [6.5, 3.0]})
        assert r.json() == {"result": int(km["km_predict_one"]([6.5, 3.0]))}
        assert metric(httpx.get(handle.url + "/metrics").text, "takeout_batch_size_count") == 1
    finally:
        handle.stop()
