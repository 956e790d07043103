"""The server under pressure: each test reproduces an attack or a fault of issue 13's "server
under pressure" against a real `takeout serve` process on loopback, and checks that it holds.
Every test is bounded in time (a few seconds each)."""

from __future__ import annotations

import base64
import hashlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import takeout

from .support import run_cells
from .test_serve import (  # noqa: F401  (a fixture)
    ROOT,
    Served,
    _answers,
    bundles_fixture,
    free_port,
    serve,
)

pytestmark = pytest.mark.slow

FORKS = """
import os

def forks() -> int:
    '''Fork; the child returns too, as a careless function would.'''
    pid = os.fork()
    return pid
"""

MISBEHAVES = """
import os

def misbehaves(text: str = "", times: int = 1, close_stderr: bool = False) -> int:
    '''Raise `text` repeated `times` times; first close fd 2 if asked.'''
    if close_stderr:
        os.close(2)
        return 0
    raise ValueError(text * times)
"""


def takeout_serve(bundle: Path, *options: str) -> Served:
    return serve("takeout", bundle, *options)


def sleepers(url: str, n: int, seconds: float) -> tuple[list[threading.Thread], list[Any]]:
    """`n` calls of `probe` sleeping `seconds`, started at once; their responses (or errors)."""
    results: list[Any] = []
    started = threading.Barrier(n + 1)

    def call() -> None:
        with httpx.Client(timeout=30) as http:
            started.wait()
            try:
                results.append(
                    http.post(url + "/call", json={"x": seconds, "mode": "sleep"}).status_code
                )
            except httpx.HTTPError as err:
                results.append(type(err).__name__)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.4)  # every call is in the function now
    return threads, results


# ── 10. the `Host` header and the page's headers ────────────────────────────────────────────


def test_a_loopback_server_refuses_foreign_hosts(bundles: dict[str, Path]) -> None:
    """DNS rebinding: a page at evil.example whose name resolves to 127.0.0.1 sends
    `Host: evil.example`; the server must not answer it, nor run the function for it."""
    server = takeout_serve(bundles["probe"], "--allow-host=api.example")
    try:
        port = server.url.rsplit(":", 1)[1]
        with httpx.Client(base_url=server.url, timeout=5) as http:
            for host in ["evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}"]:
                r = http.post("/call", json={"x": 1.0}, headers={"Host": host})
                assert r.status_code == 403, (host, r.text)
                error = r.json()["error"]
                assert error["type"] == "host_not_allowed"
                assert f"`{host}`" in error["message"] and "--allow-host" in error["message"]
                assert http.get("/", headers={"Host": host}).status_code == 403
            for host in [f"127.0.0.1:{port}", f"localhost:{port}", "api.example", "[::1]"]:
                r = http.post("/call", json={"x": 1.0}, headers={"Host": host})
                assert r.status_code == 200, (host, r.text)
                assert r.json() == {"result": 2.0}
            metrics = http.get("/metrics").text
        # The refused calls never reached the function.
        assert re.search(r"^takeout_function_calls_total(\{[^}]*\})? 4$", metrics, re.M), metrics
    finally:
        assert server.stop() == 0, server.log


def test_a_wildcard_bind_answers_any_host(bundles: dict[str, Path]) -> None:
    server = takeout_serve(bundles["probe"], "--host=0.0.0.0")
    try:
        r = httpx.get(server.url + "/healthz", headers={"Host": "service.example"}, timeout=5)
        assert r.status_code == 200
    finally:
        assert server.stop() == 0, server.log


def test_the_index_page_has_a_policy_that_lets_only_its_own_script_run(
    bundles: dict[str, Path],
) -> None:
    server = takeout_serve(bundles["probe"])
    try:
        r = httpx.get(server.url + "/", timeout=5)
    finally:
        assert server.stop() == 0, server.log
    assert r.headers["x-content-type-options"] == "nosniff"
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and "connect-src 'self'" in csp
    # What a browser does: run an inline element only if its hash is in the policy.
    for open_tag, close_tag in [("<script>", "</script>"), ("<style>", "</style>")]:
        text = r.text.split(open_tag, 1)[1].split(close_tag, 1)[0]
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp, open_tag


# ── 7. logging ───────────────────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def misbehaves(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ns = run_cells(MISBEHAVES)
    root = tmp_path_factory.mktemp("misbehaves")
    return takeout.pack(ns["misbehaves"], root / "misbehaves.takeout").path


def test_a_stderr_nobody_reads_never_stops_serving(bundles: dict[str, Path]) -> None:
    """With `--access-log` and a pipe nobody reads, every request is still answered, probes
    included, and the lines that could not be written are counted."""
    port = free_port()
    argv = [sys.executable, "-m", "takeout.cli", "serve", str(bundles["probe"])]
    proc = subprocess.Popen(
        [*argv, f"--port={port}", "--access-log"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,  # never read
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _answers(url):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        with httpx.Client(base_url=url, timeout=5) as http:
            # ~110 bytes a line: 6,000 overflow a 64 KiB pipe and the 4,096 lines of the queue.
            for i in range(6000):
                assert http.post("/call", json={"x": float(i)}).json() == {"result": 2.0 * i}
            assert http.get("/readyz").status_code == 200
            metrics = http.get("/metrics").text
        dropped = re.search(r"^takeout_log_lines_dropped_total (\d+)$", metrics, re.M)
        assert dropped and int(dropped.group(1)) > 0, metrics
    finally:
        proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def test_logged_text_cannot_forge_lines_and_is_capped(misbehaves: Path) -> None:
    server = takeout_serve(misbehaves)
    forged = "boom\n2026-01-01T00:00:00.000Z ERROR   takeout.serve: forged admin login\r"
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            assert http.post("/call", json={"text": forged}).status_code == 500
            r = http.post("/call", json={"text": "x", "times": 20_000_000})
            assert r.status_code == 500
            assert http.get("/healthz").status_code == 200
    finally:
        assert server.stop() == 0, server.log
    assert not any(line.startswith("2026-01-01T00:00:00.000Z") for line in server.lines)
    raised = [line for line in server.lines if "the function raised" in line]
    assert len(raised) == 2, server.log[-2000:]
    assert "forged admin login" in raised[0] and "\\n" in raised[0]
    assert len(raised[1]) < 10_000 and "more bytes)" in raised[1]


def test_a_function_closing_stderr_sends_no_log_line_to_a_client(misbehaves: Path) -> None:
    server = takeout_serve(misbehaves, "--access-log")
    port = int(server.url.rsplit(":", 1)[1])
    try:
        assert httpx.post(server.url + "/call", json={"close_stderr": True}).status_code == 200
        body = b'{"text": "raised after fd 2 closed"}'
        request = (
            b"POST /call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        for _ in range(5):
            # Each new connection may get fd 2; what it receives must be its response only.
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(request)
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            assert data.startswith(b"HTTP/1.1 500"), data[:200]
            assert b"takeout.serve" not in data, data
    finally:
        assert server.stop() == 0, server.log
    # Once stopped: the lines are written by a thread of their own, the last ones at shutdown.
    assert server.log.count("raised after fd 2 closed") == 5, server.log


# ── 9. signals ───────────────────────────────────────────────────────────────────────────────


def test_sighup_drains_like_sigterm(bundles: dict[str, Path]) -> None:
    server = takeout_serve(bundles["probe"], "--threads=8")
    threads, results = sleepers(server.url, 8, 1.0)
    code = server.stop(signal.SIGHUP)
    for t in threads:
        t.join()
    assert code == 0, server.log
    assert results == [200] * 8, server.log


@pytest.mark.parametrize("workers", [1, 2])
def test_calls_cut_off_by_the_grace_period_make_the_exit_status_1(
    bundles: dict[str, Path], workers: int
) -> None:
    server = takeout_serve(bundles["probe"], f"--workers={workers}", "--threads=4", "--grace=0.5")
    threads, results = sleepers(server.url, 2, 20.0)
    t0 = time.monotonic()
    code = server.stop(signal.SIGTERM, timeout=15)
    for t in threads:
        t.join()
    assert time.monotonic() - t0 < 10
    assert code == 1, server.log  # not 0, and not 134 (SIGABRT) either
    assert "calls_dropped=" in server.log
    dropped = sum(
        int(line.split("calls_dropped=")[1].split()[0])
        for line in server.lines
        if "they were dropped" in line
    )
    assert dropped == 2, server.log
    assert all(r != 200 for r in results)


@pytest.mark.parametrize("delay", [0.2, 0.5])
def test_sigterm_while_starting_stops_cleanly(bundles: dict[str, Path], delay: float) -> None:
    argv = [sys.executable, "-m", "takeout.cli", "serve", str(bundles["probe"]), "--port=0"]
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT
    )
    # From the moment takeout catches SIGTERM (its first act in `main`; before that the
    # interpreter is still starting and the default action applies), then `delay` into start-up.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _catches(proc.pid, signal.SIGTERM):
        time.sleep(0.005)
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()


def _catches(pid: int, sig: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def test_a_function_that_forks_leaves_no_child_holding_the_port(tmp_path: Path) -> None:
    ns = run_cells(FORKS)
    bundle = takeout.pack(ns["forks"], tmp_path / "forks.takeout").path
    server = takeout_serve(bundle)
    port = int(server.url.rsplit(":", 1)[1])
    try:
        r = httpx.post(server.url + "/call", json={}, timeout=10)
        assert r.status_code == 200, r.text
        child = r.json()["result"]
        assert child > 0
        # The child came back into the server's code and must be gone, not serving.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(child):
            time.sleep(0.05)
        assert not _alive(child), f"the forked child {child} still runs"
        assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
    finally:
        assert server.stop() == 0, server.log
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))  # EADDRINUSE if any process still listens there
        s.listen()


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for its parent."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
