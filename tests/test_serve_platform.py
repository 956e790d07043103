"""What platforms need of `takeout serve`: `$PORT`, BLAS threads per worker, KServe's Open
Inference Protocol (v2) spoken to by real clients nobody here wrote (`tritonclient[http]` and
the `kserve` SDK), and one `/metrics` scrape that shows every worker.

Real server processes on loopback; the v2 checks also run through the ASGI adapter under
uvicorn, which shares the Rust request core.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import takeout
from takeout import _threads

from .support import run_cells
from .test_serve import TRANSPORTS, Served, free_port, serve

pytestmark = pytest.mark.slow

FUNCTIONS = """
import numpy as np
from threadpoolctl import threadpool_info

def scale(x: np.ndarray, k: float = 2.0) -> np.ndarray:
    '''An ndarray parameter and result.'''
    return np.asarray(x) * k

def blas_threads(x: int = 0) -> list:
    '''The thread limit of each BLAS/OpenMP library loaded in the worker (numpy's at least).'''
    np.ones(2) @ np.ones(2)
    return sorted({m["num_threads"] for m in threadpool_info()})
"""


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, seed: dict[str, Any]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("platform")
    ns = run_cells(FUNCTIONS)
    out = {
        "km_predict_one": takeout.pack(
            seed["km_predict_one"], root / "km_predict_one.takeout", examples=[([0.5, 0.5],)]
        ).path,
        "scale": takeout.pack(ns["scale"], root / "scale.takeout", examples=[([1.0, 2.0],)]).path,
        "blas_threads": takeout.pack(ns["blas_threads"], root / "blas_threads.takeout").path,
    }
    return out


def takeout_serve(bundle: Path, *options: str, env: dict[str, str], port: int = 0) -> Served:
    argv = [sys.executable, "-m", "takeout.cli", "serve", str(bundle), *options]
    return Served(argv, env, port=port)


def refused(bundle: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`takeout serve BUNDLE` under `env`, which must refuse it as bad usage (exit 2)."""
    r = subprocess.run(
        [sys.executable, "-m", "takeout.cli", "serve", str(bundle)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    return r


# ── $PORT ───────────────────────────────────────────────────────────────────────────────────


def test_port_comes_from_the_environment_when_not_given(bundles: dict[str, Path]) -> None:
    port = free_port()
    server = takeout_serve(bundles["scale"], env={"PORT": str(port)})
    try:
        assert server.url.endswith(f":{port}")
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    finally:
        assert server.stop() == 0, server.log
    # --port wins over $PORT.
    other = free_port()
    server = takeout_serve(bundles["scale"], f"--port={other}", env={"PORT": str(port)})
    try:
        assert server.url.endswith(f":{other}")
    finally:
        assert server.stop() == 0, server.log


def test_a_bad_port_variable_is_one_sentence(bundles: dict[str, Path]) -> None:
    r = refused(bundles["scale"], PORT="http")
    assert "`$PORT` `http` must be a port number from 0 to 65535" in r.stderr
    assert "Traceback" not in r.stderr


# ── BLAS threads ────────────────────────────────────────────────────────────────────────────


def test_each_worker_gets_its_share_of_the_cpus(bundles: dict[str, Path]) -> None:
    cpus = _threads.available_cpus()
    # One CPU is left to the server's own threads (HTTP, a second call thread).
    for options, want in [
        ((), max(1, cpus - 1)),
        (("--workers=2",), max(1, (cpus - 1) // 2)),
        (("--blas-threads=1",), 1),
    ]:
        server = takeout_serve(bundles["blas_threads"], "--port=0", *options, env={})
        try:
            seen = {tuple(httpx.post(server.url + "/call", json={}).json()["result"])}
            for _ in range(20):  # new connections spread over the workers
                seen.add(tuple(httpx.post(server.url + "/call", json={}).json()["result"]))
            assert seen == {(want,)}, (options, seen)
            assert re.search(rf"blas threads per_worker={want} cpus={cpus}", server.log)
        finally:
            assert server.stop() == 0, server.log
    r = refused(bundles["scale"], TAKEOUT_BLAS_THREADS="many")
    assert "TAKEOUT_BLAS_THREADS `many` must be a whole number of threads" in r.stderr


def test_cpu_quota_from_cgroup_v2_and_v1(tmp_path: Path) -> None:
    v2 = tmp_path / "v2"
    (v2 / "kubepods" / "pod1").mkdir(parents=True)
    (v2 / "kubepods" / "cpu.max").write_text("max 100000\n")
    (v2 / "kubepods" / "pod1" / "cpu.max").write_text("150000 100000\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/kubepods/pod1\n")
    assert _threads._cgroup_quota(str(v2), str(proc)) == 1.5
    v1 = tmp_path / "v1" / "cpu,cpuacct"
    (v1 / "docker" / "c1").mkdir(parents=True)
    (v1 / "docker" / "c1" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "docker" / "c1" / "cpu.cfs_period_us").write_text("100000\n")
    (v1 / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    proc.write_text("4:cpu,cpuacct:/docker/c1\n3:memory:/docker/c1\n")
    assert _threads._cgroup_quota(str(tmp_path / "v1"), str(proc)) == 0.5
    proc.write_text("0::/\n")
    assert _threads._cgroup_quota(str(tmp_path / "none"), str(proc)) is None


# ── KServe v1 list and the Open Inference Protocol ──────────────────────────────────────────


@pytest.fixture(scope="module", params=TRANSPORTS)
def v2_servers(request: pytest.FixtureRequest, bundles: dict[str, Path]) -> Iterator[dict]:
    servers = {name: serve(request.param, bundles[name]) for name in ("km_predict_one", "scale")}
    yield servers
    for server in servers.values():
        assert server.stop() == 0, server.log


def test_tritonclient_metadata_and_infer(v2_servers: dict[str, Served], seed: dict) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    url = v2_servers["km_predict_one"].url.split("://", 1)[1]
    client = triton.InferenceServerClient(url)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("km_predict_one")
    assert client.get_server_metadata()["name"] == "takeout"
    meta = client.get_model_metadata("km_predict_one")
    assert meta["inputs"] == [{"name": "sample", "datatype": "FP64", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "output-0", "datatype": "INT64", "shape": [1]}]
    for sample in ([0.5, 0.5], [0.1, 0.9], [0.9, 0.05]):
        for binary in (True, False):
            x = triton.InferInput("sample", [2], "FP64")
            x.set_data_from_numpy(np.array(sample), binary_data=binary)
            out = triton.InferRequestedOutput("output-0", binary_data=binary)
            result = client.infer("km_predict_one", [x], outputs=[out], request_id="r")
            got = result.as_numpy("output-0")
            assert got.dtype == np.int64 and got.shape == (1,)
            assert int(got[0]) == int(seed["km_predict_one"](sample))
            assert result.get_response()["id"] == "r"
    # The protocol's errors: one string, which the client raises as its exception.
    x = triton.InferInput("sample", [3], "FP64")
    x.set_data_from_numpy(np.array([0.5, 0.5, 0.5]), binary_data=False)
    with pytest.raises(InferenceServerException, match="500"):
        client.infer("km_predict_one", [x])
    y = triton.InferInput("nope", [1], "FP64")
    y.set_data_from_numpy(np.array([1.0]))
    with pytest.raises(InferenceServerException, match="missing required argument `sample`"):
        client.infer("km_predict_one", [y])
    assert not _ready(client, "other")
    client.close()


def _ready(client: Any, name: str) -> bool:
    from tritonclient.utils import InferenceServerException

    try:
        return bool(client.is_model_ready(name))
    except InferenceServerException:
        return False


def test_tritonclient_ndarray_tensor(v2_servers: dict[str, Served]) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(v2_servers["scale"].url.split("://", 1)[1])
    meta = client.get_model_metadata("scale")
    assert meta["inputs"] == [
        {"name": "x", "datatype": "FP64", "shape": [-1]},
        {"name": "k", "datatype": "FP64", "shape": [1]},
    ]
    x = triton.InferInput("x", [2, 3], "FP32")
    x.set_data_from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3))
    k = triton.InferInput("k", [1], "FP64")
    k.set_data_from_numpy(np.array([0.5]))
    result = client.infer("scale", [x, k])  # binary in and, by default, binary out
    got = result.as_numpy("output-0")
    np.testing.assert_array_equal(got, np.arange(6).reshape(2, 3) * 0.5)
    assert got.dtype == np.float64
    client.close()


def test_kserve_rest_client(v2_servers: dict[str, Served], seed: dict) -> None:
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    base = v2_servers["scale"].url

    async def run() -> None:
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            assert await client.is_server_live(base)
            assert await client.is_server_ready(base)
            assert await client.is_model_ready(base, "scale")
            x = InferInput("x", [3], "FP64")
            x.set_data_from_numpy(np.array([1.0, 2.0, 3.0]), binary_data=False)
            request = InferRequest(model_name="scale", infer_inputs=[x], request_id="42")
            response = await client.infer(base, request, model_name="scale")
            assert response.id == "42"
            np.testing.assert_array_equal(response.outputs[0].as_numpy(), [2.0, 4.0, 6.0])
            # v1 through the same client, on the other bundle.
            v1 = InferenceRESTClient(RESTConfig(protocol="v1"))
            km = v2_servers["km_predict_one"].url
            out = await v1.infer(km, {"instances": [[0.5, 0.5]]}, model_name="km_predict_one")
            assert out == {"predictions": [int(seed["km_predict_one"]([0.5, 0.5]))]}
            await v1.close()
        finally:
            await client.close()

    asyncio.run(run())


def test_v1_model_list_and_openapi(v2_servers: dict[str, Served]) -> None:
    url = v2_servers["scale"].url
    assert httpx.get(url + "/v1/models").json() == {"models": ["scale"]}
    paths = httpx.get(url + "/openapi.json").json()["paths"]
    for path in [
        "/v1/models",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/scale",
        "/v2/models/scale/ready",
        "/v2/models/scale/infer",
    ]:
        assert path in paths, path
    r = httpx.post(url + "/v2/models/scale/infer", content=b"{", headers={})
    assert r.status_code == 400 and isinstance(r.json()["error"], str), r.text
    r = httpx.get(url + "/v2/models/other")
    assert r.status_code == 404 and "/v2/models/other" in r.json()["error"]


# ── /metrics across workers ─────────────────────────────────────────────────────────────────


def test_one_scrape_counts_every_worker(bundles: dict[str, Path]) -> None:
    server = takeout_serve(bundles["scale"], "--port=0", "--workers=2", env={})
    try:
        calls = 40
        for i in range(calls):  # a new connection each: SO_REUSEPORT spreads them
            r = httpx.post(server.url + "/call", json={"x": [i], "k": 1})
            assert r.status_code == 200
        for _ in range(10):
            text = httpx.get(server.url + "/metrics").text
            counts = {
                int(w): int(n)
                for w, n in re.findall(
                    r'takeout_requests_total\{route="/call",status="200",worker="(\d)"\} (\d+)',
                    text,
                )
            }
            assert sum(counts.values()) == calls, text
        assert set(counts) == {0, 1} and all(counts.values()), counts
        calls_total = re.findall(r'takeout_function_calls_total\{worker="\d"\} (\d+)', text)
        assert sum(map(int, calls_total)) == calls
    finally:
        assert server.stop() == 0, server.log
