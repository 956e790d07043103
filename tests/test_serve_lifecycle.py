"""Load, shutdown and crashes, with real processes: many concurrent clients get correct
results; SIGTERM during in-flight calls loses none of them; a worker that segfaults is
replaced while the service keeps answering. Each runs under `takeout serve` and under uvicorn.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import takeout

from .support import answers_under_load
from .test_serve import TRANSPORTS, bundles_fixture, post, serve  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_many_concurrent_clients_get_their_own_results(
    transport: str, workers: int, bundles: dict[str, Path], seed: dict[str, Any]
) -> None:
    server = serve(transport, bundles["km_predict_two"], f"--workers={workers}")
    rng = random.Random(workers)
    samples = [[rng.random(), rng.random()] for _ in range(400)]
    expected = [int(seed["km_predict_two"](s)) for s in samples]

    bodies = [{"sample": s} if i % 2 else [s] for i, s in enumerate(samples)]
    try:
        assert answers_under_load(server.url, bodies) == expected
    finally:
        assert server.stop() == 0, server.log


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sigterm_lets_in_flight_calls_finish(
    transport: str, workers: int, bundles: dict[str, Path]
) -> None:
    server = serve(transport, bundles["probe"], f"--workers={workers}", "--threads=16")
    results: list[httpx.Response] = []
    started = threading.Barrier(17)

    def call(i: int) -> None:
        with httpx.Client(timeout=30) as http:
            started.wait()
            results.append(
                http.post(server.url + "/call", json={"x": 1.0 + i / 100, "mode": "sleep"})
            )

    threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.4)  # every call is in the function now
    t0 = time.monotonic()
    code = server.stop(signal.SIGTERM)
    for t in threads:
        t.join()
    assert code == 0, server.log
    assert sorted(r.status_code for r in results) == [200] * 16, [r.text for r in results]
    assert sorted(r.json()["result"] for r in results) == [1.0 + i / 100 for i in range(16)]
    assert time.monotonic() - t0 < 4  # the 16 calls ran side by side, not one after another
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/healthz", timeout=2)


def test_a_crashed_worker_is_replaced_while_the_others_serve(bundles: dict[str, Path]) -> None:
    server = serve("takeout", bundles["probe"], "--workers=2")
    url = server.url + "/call"
    try:
        pids = _worker_pids(url, 2)
        # A segfault inside a C extension (ctypes reading address 0) kills one worker.
        with pytest.raises(httpx.HTTPError):
            post(url, {"x": 0, "mode": "crash"})
        # The service keeps answering: the other worker, then the replacement.
        failures = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                r = post(url, {"x": 1})
                assert r.json() == {"result": 2}
            except httpx.TransportError:
                failures += 1  # a connection the kernel had queued on the dead worker's socket
            new = _worker_pids(url, 2, timeout=0.5)
            if len(new) == 2 and new != pids:
                break
        else:
            pytest.fail(f"no replacement worker: {server.log}")
        assert failures <= 2
        assert "worker died; replacing it" in server.log
        assert "cause=SIGSEGV" in server.log
    finally:
        assert server.stop() == 0, server.log


def _worker_pids(url: str, n: int, timeout: float = 10) -> set[int]:
    """The PIDs of the workers answering (new connections spread across SO_REUSEPORT)."""
    pids: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(pids) < n and time.monotonic() < deadline:
        try:
            with httpx.Client(timeout=5) as fresh:  # a new connection each time
                pids.add(int(fresh.post(url, json={"x": 0, "mode": "pid"}).json()["result"]))
        except httpx.TransportError:
            pass
    return pids


def test_background_handle(bundles: dict[str, Path]) -> None:
    handle = takeout.serve(bundles["probe"], port=0, background=True)
    assert handle is not None
    try:
        assert handle.url.startswith("http://127.0.0.1:")
        assert post(handle.url + "/call", {"x": 4}).json() == {"result": 8}
    finally:
        handle.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(handle.url + "/healthz", timeout=2)


def test_background_handle_with_workers(bundles: dict[str, Path]) -> None:
    with takeout.serve(bundles["probe"], port=0, workers=2, background=True) as handle:
        assert handle is not None
        assert post(handle.url + "/call", {"x": 4}).json() == {"result": 8}
        assert len(_worker_pids(handle.url + "/call", 2)) == 2
    with pytest.raises(httpx.ConnectError):
        httpx.get(handle.url + "/healthz", timeout=2)
