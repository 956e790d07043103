"""`takeout serve` and the ASGI adapter under uvicorn: every route and every error code of the
HTTP contract, against real server processes on loopback with a real HTTP client.

Each check runs against both transports (`takeout serve`, and `takeout.asgi` under uvicorn):
they share the Rust request core, so they must answer alike.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import httpx
import pytest

import takeout
from takeout.serving.config import OPTIONS

from .support import run_cells

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TRANSPORTS = ["takeout", "uvicorn"]

PROBE = """
import os, time

def probe(x: float, mode: str = "ok") -> float:
    '''Double x, or misbehave as `mode` says.'''
    if mode == "raise":
        raise ValueError(f"bad x {x}")
    if mode == "sleep":
        time.sleep(x)
        return x
    if mode == "crash":
        import ctypes
        ctypes.string_at(0)
    if mode == "pid":
        return os.getpid()
    if mode == "object":
        return object()
    return x * 2
"""


# ── servers in processes of their own ───────────────────────────────────────────────────────


class Served:
    """A server process; `url` once it answers, `stop()` sends SIGTERM and returns the status."""

    def __init__(self, argv: list[str], env: Optional[dict[str, str]] = None, port: int = 0):
        self.argv = argv
        # uvicorn re-raises SIGTERM once drained, so its clean exit is death by that signal.
        self.clean_exit = -signal.SIGTERM if "uvicorn" in argv else 0
        self.proc = subprocess.Popen(
            argv,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.lines: list[str] = []
        self.url = ""
        found = threading.Event()

        def drain() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line)
                match = re.search(r"url=(http://\S+)", line)
                if match and not self.url:
                    self.url = match.group(1)
                    found.set()

        threading.Thread(target=drain, daemon=True).start()
        if port:
            self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                time.sleep(0.1)
                raise RuntimeError(f"{argv} exited {self.proc.returncode}:\n{self.log}")
            if self.url and _answers(self.url):
                return
            found.wait(0.05)
        self.proc.kill()
        raise RuntimeError(f"{argv} did not answer within 60 s:\n{self.log}")

    @property
    def log(self) -> str:
        return "".join(self.lines)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            if self.proc.stderr is not None:
                self.proc.stderr.close()
        return 0 if code == self.clean_exit else code


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Each `takeout serve` flag's environment variable, which configures the ASGI factory.
OPTION_ENV = {option.flag: option.env for option in OPTIONS}


def serve(transport: str, bundle: Path, *options: str, token: str = "", **kw: Any) -> Served:
    """`takeout serve BUNDLE OPTIONS`, or the same bundle and options through the ASGI
    adapter under `transport` (uvicorn or granian)."""
    env = {"TAKEOUT_TOKEN": token} if token else {}
    if transport == "takeout":
        argv = [sys.executable, "-m", "takeout.cli", "serve", str(bundle), "--port=0", *options]
        return Served(argv, env, **kw)
    env["TAKEOUT_BUNDLE"] = str(bundle)
    uvicorn_args: list[str] = []
    for option in options:
        name, _, value = option.partition("=")
        if name == "--workers":
            uvicorn_args.append(option)
        elif name in OPTION_ENV:
            env[OPTION_ENV[name]] = value or "1"  # a switch (`--debug`) has no value
        else:
            raise ValueError(f"no uvicorn equivalent for {option}")
    port = free_port()
    argv = [sys.executable, "-m", transport, "--factory", f"--port={port}", "--log-level=warning"]
    if transport == "granian":
        argv.append("--interface=asgi")
    argv += [*uvicorn_args, "takeout.asgi:from_env"]
    return Served(argv, env, port=port, **kw)


@pytest.fixture(scope="session", name="bundles")
def bundles_fixture(
    tmp_path_factory: pytest.TempPathFactory, seed: dict[str, Any]
) -> dict[str, Path]:
    """The seed's two predictors and the probe, packed once per session."""
    root = tmp_path_factory.mktemp("bundles")
    ns = run_cells(PROBE)
    out = {}
    for name, fn, examples in [
        ("km_predict_one", seed["km_predict_one"], [([0.5, 0.5],)]),
        ("km_predict_two", seed["km_predict_two"], [([0.5, 0.5],)]),
        ("probe", ns["probe"], [(1.5,)]),
    ]:
        out[name] = takeout.pack(fn, root / f"{name}.takeout", examples=examples).path
    return out


@pytest.fixture(scope="module", params=TRANSPORTS)
def probe_server(request: pytest.FixtureRequest, bundles: dict[str, Path]) -> Iterator[Served]:
    server = serve(
        request.param,
        bundles["probe"],
        "--timeout=1",
        "--max-concurrency=4",
        "--max-body=64KiB",
        "--body-timeout=1",
    )
    yield server
    assert server.stop() == 0, server.log


@pytest.fixture(scope="module", params=TRANSPORTS)
def km_servers(
    request: pytest.FixtureRequest, bundles: dict[str, Path]
) -> Iterator[dict[str, Served]]:
    servers = {
        name: serve(request.param, bundles[name]) for name in ("km_predict_one", "km_predict_two")
    }
    yield servers
    for server in servers.values():
        assert server.stop() == 0, server.log


def post(url: str, body: Any, **kw: Any) -> httpx.Response:
    return httpx.post(url, json=body, timeout=30, **kw)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"type", "message", "details"}, body
    return dict(body["error"])


# ── the seed's functions ────────────────────────────────────────────────────────────────────


def test_seed_predictions(km_servers: dict[str, Served], seed: dict[str, Any]) -> None:
    samples = [[0.5, 0.5], [0.1, 0.9], [0.95, 0.05]]
    for name, server in km_servers.items():
        fn = seed[name]
        expected = [int(fn(s)) for s in samples]
        # km_predict_one returns a numpy integer: it must arrive as a JSON integer.
        for sample, want in zip(samples, expected):
            r = post(server.url + "/call", {"sample": sample})
            assert r.status_code == 200, r.text
            assert r.json() == {"result": want}
            assert isinstance(r.json()["result"], int)
            assert post(server.url + "/call", [sample]).json() == {"result": want}
        r = post(server.url + f"/v1/models/{name}:predict", {"instances": samples})
        assert r.status_code == 200, r.text
        assert r.json() == {"predictions": expected}


# ── routes ──────────────────────────────────────────────────────────────────────────────────


def test_probes_and_model_metadata(probe_server: Served) -> None:
    url = probe_server.url
    assert httpx.get(url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(url + "/readyz").json() == {"status": "ready"}
    assert httpx.get(url + "/v1/models/probe").json() == {"name": "probe", "ready": True}


def test_call_binds_objects_arrays_and_defaults(probe_server: Served) -> None:
    url = probe_server.url + "/call"
    assert post(url, {"x": 1.5}).json() == {"result": 3.0}
    assert post(url, [2]).json() == {"result": 4}
    assert post(url, {"x": 2, "mode": "ok"}).json() == {"result": 4}
    r = post(probe_server.url + "/v1/models/probe:predict", {"instances": [[1], {"x": 2}]})
    assert r.json() == {"predictions": [2, 4]}


def test_metrics_count_requests_latency_in_flight_and_errors(probe_server: Served) -> None:
    url = probe_server.url
    post(url + "/call", {"x": 1})
    post(url + "/call", {"x": 1, "mode": "raise"})
    r = httpx.get(url + "/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert re.search(r'^takeout_requests_total\{route="/call",status="200"\} \d+$', text, re.M)
    assert re.search(r'^takeout_requests_total\{route="/call",status="500"\} \d+$', text, re.M)
    assert 'takeout_request_duration_seconds_bucket{route="/call",le="+Inf"}' in text
    assert "# TYPE takeout_request_duration_seconds histogram" in text
    assert re.search(r"^takeout_requests_in_flight \d+$", text, re.M)
    assert re.search(r'^takeout_function_errors_total\{type="ValueError"\} \d+$', text, re.M)


def test_openapi_is_built_from_the_manifest(probe_server: Served) -> None:
    doc = httpx.get(probe_server.url + "/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "probe"
    assert "Double x" in doc["info"]["description"]
    args = doc["components"]["schemas"]["Arguments"]
    assert args["properties"]["x"]["type"] == "number"
    assert args["required"] == ["x"]
    assert set(doc["paths"]) >= {
        "/call",
        "/v1/models/probe:predict",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/",
    }
    call = doc["paths"]["/call"]["post"]
    assert call["requestBody"]["content"]["application/json"]["examples"]["example1"] == {
        "value": {"x": 1.5},
        "summary": "returns 3.0",
    }
    assert {"200", "400", "413", "415", "422", "500", "503", "504"} <= set(call["responses"])


def test_index_page_is_self_contained(probe_server: Served) -> None:
    r = httpx.get(probe_server.url + "/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "probe(x: float, mode: str = &#39;ok&#39;) -&gt; float" in html
    assert "fetch(" in html  # the page can make a call
    # No CDN or any other origin: nothing to load from elsewhere.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "@import" not in html


# ── errors ──────────────────────────────────────────────────────────────────────────────────


def test_400_malformed_and_too_deep(probe_server: Served) -> None:
    url = probe_server.url + "/call"
    headers = {"content-type": "application/json"}
    r = httpx.post(url, content=b'{"x": ', headers=headers)
    assert r.status_code == 400
    assert error_of(r)["type"] == "malformed_json"
    assert "line 1 column" in error_of(r)["message"]
    deep = "[" * 10_000 + "]" * 10_000
    r = httpx.post(url, content=deep, headers=headers)
    assert r.status_code == 400
    assert error_of(r)["type"] == "too_deep"


def test_404_and_405(probe_server: Served) -> None:
    r = httpx.get(probe_server.url + "/nope")
    assert r.status_code == 404 and error_of(r)["type"] == "not_found"
    r = httpx.get(probe_server.url + "/call")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = post(probe_server.url + "/v1/models/other:predict", {"instances": []})
    assert r.status_code == 404


def test_413_by_declared_and_by_actual_length(probe_server: Served) -> None:
    url = probe_server.url + "/call"
    big = json.dumps({"x": 1, "pad": "a" * (70 << 10)})
    r = httpx.post(url, content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "64 KiB" in error_of(r)["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: only counting can tell
        yield b'{"pad": "'
        for _ in range(80):
            yield b"a" * 1024
        yield b'"}'

    r = httpx.post(url, content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_415_not_json(probe_server: Served) -> None:
    r = httpx.post(probe_server.url + "/call", content=b"x=1")
    assert r.status_code == 415
    assert error_of(r)["type"] == "unsupported_media_type"
    r = httpx.post(
        probe_server.url + "/call", content=b"x=1", headers={"content-type": "text/plain"}
    )
    assert r.status_code == 415


def test_422_says_which_field(probe_server: Served) -> None:
    url = probe_server.url + "/call"
    r = post(url, {"x": "one"})
    assert r.status_code == 422
    err = error_of(r)
    assert err["type"] == "invalid_arguments"
    assert err["details"] == [
        {"loc": ["body", "x"], "msg": '"one" is not of type "number"', "type": "schema.type"}
    ]
    r = post(url, {"mode": "ok", "y": 1})
    locs = sorted(tuple(d["loc"]) for d in error_of(r)["details"])
    assert locs == [("body", "x"), ("body", "y")]
    r = post(url, [1, "ok", 3])
    assert error_of(r)["details"][0]["loc"] == ["body", 2]
    r = post(probe_server.url + "/v1/models/probe:predict", {"instances": [{"x": 1}, {"x": []}]})
    assert error_of(r)["details"][0]["loc"] == ["body", "instances", 1, "x"]


def test_500_says_type_and_message_without_traceback(probe_server: Served) -> None:
    r = post(probe_server.url + "/call", {"x": 3, "mode": "raise"})
    assert r.status_code == 500
    assert error_of(r) == {"type": "ValueError", "message": "bad x 3", "details": []}
    r = post(probe_server.url + "/call", {"x": 3, "mode": "object"})
    assert r.status_code == 500
    err = error_of(r)
    assert err["type"] == "unserializable_result"
    assert "`object` at `result`" in err["message"]


def test_503_over_max_concurrency_with_retry_after(probe_server: Served) -> None:
    url = probe_server.url + "/call"
    results: list[httpx.Response] = []
    # Sent together, so that on a loaded machine the calls still overlap.
    together = threading.Barrier(10)

    def slow() -> None:
        together.wait()
        results.append(post(url, {"x": 0.8, "mode": "sleep"}))

    threads = [threading.Thread(target=slow) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(200) >= 4, statuses
    refused = [r for r in results if r.status_code == 503]
    assert refused, statuses
    assert refused[0].headers["retry-after"] == "1"
    assert error_of(refused[0])["type"] == "overloaded"


def test_504_past_the_timeout(probe_server: Served) -> None:
    t0 = time.monotonic()
    r = post(probe_server.url + "/call", {"x": 2.5, "mode": "sleep"})
    assert r.status_code == 504
    assert error_of(r)["type"] == "timeout"
    assert time.monotonic() - t0 < 2.4


def test_a_body_that_never_ends_is_cut_off(probe_server: Served) -> None:
    host, port = probe_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            b"POST /call HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"x":'
        )
        t0 = time.monotonic()
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 408"), data
    assert time.monotonic() - t0 < 5


def test_the_server_survives_garbage(probe_server: Served) -> None:
    host, port = probe_server.url.removeprefix("http://").split(":")
    for garbage in [b"\x00\xff" * 100, b"GET / HTTP/9.9\r\n\r\n", b"POST /call HTTP/1.1\r\n" * 50]:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(garbage)
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):
                pass
    assert post(probe_server.url + "/call", {"x": 1}).json() == {"result": 2}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_401_token(transport: str, bundles: dict[str, Path]) -> None:
    server = serve(transport, bundles["probe"], token="s3cret")
    try:
        url = server.url
        r = post(url + "/call", {"x": 1})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert error_of(r)["type"] == "unauthorized"
        wrong = {"authorization": "Bearer nope"}
        assert post(url + "/call", {"x": 1}, headers=wrong).status_code == 401
        right = {"authorization": "Bearer s3cret"}
        assert post(url + "/call", {"x": 1}, headers=right).json() == {"result": 2}
        assert httpx.get(url + "/metrics").status_code == 401
        assert httpx.get(url + "/metrics", headers=right).status_code == 200
        # Probes stay open for the orchestrator.
        assert httpx.get(url + "/healthz").status_code == 200
        assert httpx.get(url + "/readyz").status_code == 200
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_debug_adds_the_traceback(transport: str, bundles: dict[str, Path]) -> None:
    server = serve(transport, bundles["probe"], "--debug")
    try:
        r = post(server.url + "/call", {"x": 3, "mode": "raise"})
        assert r.status_code == 500
        (detail,) = error_of(r)["details"]
        assert "Traceback" in detail["traceback"]
        assert "in probe\nValueError: bad x 3" in detail["traceback"]
    finally:
        assert server.stop() == 0


def test_cli_refuses_a_bad_port_in_one_line(bundles: dict[str, Path]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "takeout.cli", "serve", str(bundles["probe"]), f"--port={port}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 1
    assert r.stderr.startswith(f"takeout: error: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "takeout.cli", "serve", str(bundles["probe"]), "--max-body=lots"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "`lots` is not a size" in r.stderr


def test_the_asgi_adapter_under_granian(bundles: dict[str, Path], seed: dict[str, Any]) -> None:
    server = serve("granian", bundles["km_predict_two"], "--timeout=5")
    try:
        url = server.url
        want = int(seed["km_predict_two"]([0.5, 0.5]))
        assert post(url + "/call", {"sample": [0.5, 0.5]}).json() == {"result": want}
        r = post(url + "/v1/models/km_predict_two:predict", {"instances": [[0.5, 0.5]]})
        assert r.json() == {"predictions": [want]}
        r = httpx.post(url + "/call", content=b"{", headers={"content-type": "application/json"})
        assert r.status_code == 400
        assert httpx.post(url + "/call", content=b"x=1").status_code == 415
        assert post(url + "/call", {"other": 1}).status_code == 422
        assert 'route="/call",status="200"' in httpx.get(url + "/metrics").text
    finally:
        assert server.stop() == 0, server.log
