"""How `takeout serve` compares with the servers people hand-write, measured in one run.

    .venv/bin/python bench/serve.py [--duration 5] [--json] [--quick] [--takeout-only]

For the seed's `km_predict_two` (numpy) and `km_predict_one` (scikit-learn), each packed into a
bundle, requests per second and p50/p99 latency at 1, 8 and 64 concurrent keep-alive
connections (wrk, or oha when wrk is missing), against:

- `takeout serve` with 1 and 2 workers;
- a hand-written FastAPI app (pydantic body, `async def`) on uvicorn, 1 and 2 workers;
- a raw ASGI callable (json.loads, call, json.dumps) on uvicorn, 1 and 2 workers;
- a raw RSGI callable on Granian, 1 and 2 workers;
- the bundle through `takeout.asgi` on uvicorn, 1 worker;
- the bare in-process call, the floor.

Every server calls the very same function, loaded with `takeout.load`, and each answer is
checked before the clock starts. Also measured: the overhead `takeout serve` adds per request
at concurrency 1 (the server's own time per `POST /call`, from its latency histogram, minus
the bare call), and its cold start (process start to the first 200 of `POST /call`)
against the function's own import time (a process that only unpickles function.pkl).

`--blas` measures only the BLAS thread limit instead: a function doing three 100×100 matrix
products on a ~5 KB JSON input (300 floats), served with the libraries' own thread count
(`--blas-threads 0`: one BLAS thread per core, what every server but Ray gets) against
takeout's default (each worker's share of the CPUs) and one thread, at c=1/8/64.

Tables go to stdout, progress to stderr; `--json` prints the raw figures instead. The load
generator runs on the same machine, as in ANCHORS.md: on two cores it takes one of them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOOLS = ROOT / ".bench-tools"
sys.path.insert(0, str(ROOT))

from _util import log, verdicts, wall  # noqa: E402  (after the path is set)

SAMPLE = [0.5, 0.5]
BODY = json.dumps({"sample": SAMPLE})
CONCURRENCY = (1, 8, 64)
FUNCTIONS = ("km_predict_two", "km_predict_one")

# Each competitor calls the same function, loaded from the same bundle.
FASTAPI_APP = """
import os
import takeout
from fastapi import FastAPI
from pydantic import BaseModel

fn = takeout.load(os.environ["BENCH_BUNDLE"])
app = FastAPI()


class Body(BaseModel):
    sample: list[float]


@app.post("/call")
async def call(body: Body) -> dict:
    return {"result": int(fn(body.sample))}
"""

RAW_ASGI_APP = """
import json
import os
import takeout

fn = takeout.load(os.environ["BENCH_BUNDLE"])
HEADERS = [(b"content-type", b"application/json")]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    args = json.loads(body)
    payload = json.dumps({"result": int(fn(args["sample"]))}).encode()
    headers = [*HEADERS, (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
"""

RSGI_APP = """
import json
import os
import takeout

fn = takeout.load(os.environ["BENCH_BUNDLE"])
HEADERS = [("content-type", "application/json")]


async def app(scope, protocol):
    body = await protocol()
    args = json.loads(body)
    payload = json.dumps({"result": int(fn(args["sample"]))})
    protocol.response_str(200, HEADERS, payload)
"""

UNPICKLE = "import pickle, sys\nwith open(sys.argv[1], 'rb') as fh: pickle.load(fh)"


# ── the load generator ──────────────────────────────────────────────────────────────────────


class LoadGenerator:
    """wrk when it is installed (as in ANCHORS.md); else oha, built from crates.io into
    `.bench-tools/` on first use."""

    def __init__(self, work: Path, body: str = BODY, script: str = "post.lua") -> None:
        self.wrk = shutil.which("wrk")
        self.oha: Optional[str] = None
        # Seconds a request may take before it counts as an error (None: the tool's default,
        # 2 s for wrk); the Ray benchmark's proxy needs more at c=64.
        self.request_timeout: Optional[float] = None
        if self.wrk is None:
            self.oha = _ensure_oha()
        self.body = body
        self.script = work / script
        self.script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = '{body}'\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )

    @property
    def name(self) -> str:
        return "wrk" if self.wrk else "oha"

    def run(self, url: str, connections: int, seconds: float, post: bool = True) -> dict[str, Any]:
        if self.wrk:
            return self._wrk(url, connections, seconds, post)
        return self._oha(url, connections, seconds, post)

    def _wrk(self, url: str, connections: int, seconds: float, post: bool) -> dict[str, Any]:
        # wrk takes whole seconds.
        cmd = [self.wrk or "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
        cmd.append("--latency")
        if self.request_timeout:
            cmd.append(f"--timeout={self.request_timeout:g}s")
        if post:
            cmd += ["-s", str(self.script)]
        done = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60)
        out = done.stdout
        found = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if found is None:
            raise RuntimeError(f"wrk failed: {done.stderr or out}")
        rps = float(found.group(1))
        lat = {p: _seconds(v, u) for p, v, u in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)", out)}
        bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        errors = re.search(
            r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
        )
        return {
            "rps": rps,
            "p50_ms": lat["50"] * 1e3,
            "p99_ms": lat["99"] * 1e3,
            "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": sum(map(int, errors.groups())) if errors else 0,
        }

    def _oha(self, url: str, connections: int, seconds: float, post: bool) -> dict[str, Any]:
        cmd = [self.oha or "oha", "-z", f"{seconds}s", "-c", str(connections), "--no-tui"]
        cmd += ["--output-format", "json"]
        if self.request_timeout:
            cmd += ["-t", f"{self.request_timeout:g}s"]
        if post:
            cmd += ["-m", "POST", "-H", "content-type: application/json", "-d", self.body]
        out = subprocess.run(
            [*cmd, url], capture_output=True, text=True, timeout=seconds + 60, check=True
        ).stdout
        report = json.loads(out)
        codes = report.get("statusCodeDistribution", {})
        return {
            "rps": report["summary"]["requestsPerSec"],
            "p50_ms": report["latencyPercentiles"]["p50"] * 1e3,
            "p99_ms": report["latencyPercentiles"]["p99"] * 1e3,
            "non_2xx": sum(n for code, n in codes.items() if not code.startswith("2")),
            # Requests still in flight when the time is up count as "aborted due to deadline".
            "socket_errors": sum(
                n for e, n in report.get("errorDistribution", {}).items() if "deadline" not in e
            ),
        }


def _seconds(value: str, unit: str) -> float:
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


def _ensure_oha() -> str:
    binary = TOOLS / "bin" / "oha"
    if not binary.exists():
        cargo = shutil.which("cargo")
        if cargo is None:
            sys.exit(
                "bench/serve.py needs wrk or oha; install wrk, or Rust for `cargo install oha`"
            )
        log("wrk is not installed: building oha from crates.io into .bench-tools/ (minutes)")
        env = {**os.environ, "CARGO_TARGET_DIR": str(TOOLS / "target")}
        subprocess.run(
            [cargo, "install", "oha", "--locked", "--root", str(TOOLS)], check=True, env=env
        )
    return str(binary)


# ── servers ─────────────────────────────────────────────────────────────────────────────────


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One server process on a free port, stopped with SIGTERM; ready at its first 200 to
    `probe` (path, body)."""

    def __init__(
        self,
        label: str,
        argv: list[str],
        port: int,
        env: dict[str, str],
        cwd: Path,
        probe: tuple[str, str] = ("/call", BODY),
    ):
        self.label = label
        self.url = f"http://127.0.0.1:{port}"
        self.probe = probe
        self.proc = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.started = time.perf_counter()
        self.ready_s = self._wait_for_first_200()

    def _wait_for_first_200(self) -> float:
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"{self.label} exited {self.proc.returncode}: {err[-2000:]}")
            status, _ = post(self.url + self.probe[0], self.probe[1])
            if status == 200:
                return time.perf_counter() - self.started
            time.sleep(0.001)
        self.stop()
        raise RuntimeError(f"{self.label} did not answer within 120 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()


def post(url: str, body: str) -> tuple[int, Any]:
    """One POST on a fresh connection, without an HTTP library in the way."""
    host, _, rest = url.removeprefix("http://").partition(":")
    port, _, path = rest.partition("/")
    request = (
        f"POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
    ).encode()
    try:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(request)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return 0, None
    head, _, payload = data.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        chunks = b""
        while payload:
            size, _, rest = payload.partition(b"\r\n")
            n = int(size, 16)
            chunks, payload = chunks + rest[:n], rest[n + 2 :]
            if n == 0:
                break
        payload = chunks
    try:
        status = int(head.split(b" ", 2)[1])
        return status, json.loads(payload) if payload else None
    except (IndexError, ValueError):
        return 0, None


def servers(bundle: Path, work: Path) -> list[tuple[str, int, Any]]:
    """(label, workers, start) for every server measured, in table order."""
    py = sys.executable
    env = {"BENCH_BUNDLE": str(bundle), "TAKEOUT_BUNDLE": str(bundle)}

    def takeout(workers: int) -> Any:
        def start() -> Server:
            port = free_port()
            argv = [py, "-m", "takeout.cli", "serve", str(bundle), f"--port={port}"]
            return Server(
                f"takeout serve ×{workers}", [*argv, f"--workers={workers}"], port, env, work
            )

        return start

    def uvicorn(app: str, workers: int, factory: bool = False) -> Any:
        def start() -> Server:
            port = free_port()
            argv = [py, "-m", "uvicorn", app, f"--port={port}", f"--workers={workers}"]
            argv += ["--log-level=warning", "--no-access-log"]
            if factory:
                argv.append("--factory")
            return Server(f"{app} ×{workers}", argv, port, env, work)

        return start

    def granian(workers: int) -> Any:
        def start() -> Server:
            port = free_port()
            argv = [py, "-m", "granian", "--interface=rsgi", f"--port={port}"]
            argv += [f"--workers={workers}", "--no-ws", "--log-level=warning", "rsgi_app:app"]
            return Server(f"granian ×{workers}", argv, port, env, work)

        return start

    rows = []
    for workers in (1, 2):
        rows += [
            ("takeout serve", workers, takeout(workers)),
            ("FastAPI + uvicorn", workers, uvicorn("fastapi_app:app", workers)),
            ("raw ASGI + uvicorn", workers, uvicorn("raw_asgi:app", workers)),
            ("Granian (RSGI)", workers, granian(workers)),
        ]
    rows.append(("takeout.asgi + uvicorn", 1, uvicorn("takeout.asgi:from_env", 1, factory=True)))
    return rows


# ── measurements ────────────────────────────────────────────────────────────────────────────


def server_time(url: str) -> tuple[float, int]:
    """(seconds, requests) of `POST /call` so far, from the server's own latency histogram:
    the time from a request's head to its response, which leaves out the client and the
    kernel."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    total = re.search(r'^takeout_request_duration_seconds_sum\{route="/call"\} (\S+)$', text, re.M)
    count = re.search(
        r'^takeout_request_duration_seconds_count\{route="/call"\} (\d+)$', text, re.M
    )
    if not (total and count):
        return 0.0, 0
    return float(total.group(1)), int(count.group(1))


def bare_call(bundle: Path, repeat: int = 20000, clock: Any = time.perf_counter) -> float:
    """Seconds per in-process call of the loaded function (median of 5 runs); `clock` may be
    `time.thread_time`, whose CPU seconds leave out what other processes take on a busy
    machine."""
    import takeout

    fn = takeout.load(bundle)
    fn(SAMPLE)
    times = []
    for _ in range(5):
        start = clock()
        for _ in range(repeat):
            fn(SAMPLE)
        times.append((clock() - start) / repeat)
    return statistics.median(times)


def cold_start(bundle: Path, work: Path, repeat: int) -> dict[str, float]:
    """Process start to the first 200 of `POST /call`, against the function's own imports."""
    imports = wall([sys.executable, "-c", UNPICKLE, str(bundle / "function.pkl")], repeat)
    out = {"deps_import_ms": imports * 1e3}
    for workers in (1, 2):
        times = []
        for _ in range(repeat):
            port = free_port()
            argv = [sys.executable, "-m", "takeout.cli", "serve", str(bundle), f"--port={port}"]
            server = Server("cold", [*argv, f"--workers={workers}"], port, {}, work)
            times.append(server.ready_s)
            server.stop()
        out[f"serve_{workers}w_ms"] = statistics.median(times) * 1e3
    out["overhead_1w_ms"] = out["serve_1w_ms"] - out["deps_import_ms"]
    out["overhead_2w_ms"] = out["serve_2w_ms"] - out["deps_import_ms"]
    return out


BLAS_CELL = """
import numpy as np

W = np.random.default_rng(0).standard_normal((100, 100))

def blas_heavy(sample):
    a = np.resize(np.asarray(sample, dtype=float), (100, 100))
    b = a @ W
    c = b @ W.T
    return float(np.trace(c @ a))
"""


def measure_blas(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support import run_cells

    import takeout

    work = Path(tempfile.mkdtemp(prefix="takeout-bench-blas-"))
    sample = [round(0.001 * i + 0.123456789012, 12) for i in range(300)]
    body = json.dumps({"sample": sample})
    script = work / "blas.lua"
    script.write_text(
        f"wrk.method = \"POST\"\nwrk.body = '{body}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("bench/serve.py --blas needs wrk: apt-get install -y wrk")
    result: dict[str, Any] = {"body_bytes": len(body), "duration_s": args.duration, "runs": []}
    try:
        fn = run_cells(BLAS_CELL)["blas_heavy"]
        bundle = takeout.pack(fn, work / "blas_heavy.takeout", overwrite=True).path
        for workers, blas in [(1, "0"), (1, "default"), (1, "1"), (2, "0"), (2, "default")]:
            port = free_port()
            argv = [sys.executable, "-m", "takeout.cli", "serve", str(bundle), f"--port={port}"]
            argv.append(f"--workers={workers}")
            if blas != "default":
                argv.append(f"--blas-threads={blas}")
            server = Server(f"blas {blas} ×{workers}", argv, port, {}, work)
            try:
                for c in CONCURRENCY:
                    cmd = [wrk, "-t1", f"-c{c}", "--latency", "-s", str(script)]
                    subprocess.run([*cmd, "-d1s", server.url + "/call"], capture_output=True)
                    seconds = max(1, round(args.duration))
                    done = subprocess.run(
                        [*cmd, f"-d{seconds}s", server.url + "/call"],
                        capture_output=True,
                        text=True,
                        timeout=seconds + 60,
                    )
                    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
                    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", done.stdout)
                    rps = float(found.group(1)) if found else 0.0
                    log(f"blas_heavy · --blas-threads {blas} ×{workers} · c={c}: {rps:,.0f} req/s")
                    result["runs"].append(
                        {"workers": workers, "blas": blas, "c": c, "rps": rps, "non_2xx": bool(bad)}
                    )
            finally:
                server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def report_blas(result: dict[str, Any]) -> str:
    lines = [
        f"BLAS threads · blas_heavy, {result['body_bytes']} B body, "
        f"{result['duration_s']} s per run, wrk on the same cores · req/s",
        f"| workers | --blas-threads | {' | '.join(f'c={c}' for c in CONCURRENCY)} |",
        "|---|---|" + "---:|" * len(CONCURRENCY),
    ]
    for workers, blas in [(1, "0"), (1, "default"), (1, "1"), (2, "0"), (2, "default")]:
        cells = []
        for c in CONCURRENCY:
            run = next(
                r
                for r in result["runs"]
                if r["workers"] == workers and r["blas"] == blas and r["c"] == c
            )
            cells.append(f"{run['rps']:,.0f}{'!' if run['non_2xx'] else ''}")
        name = {"0": "0 (libraries' default)", "default": "default (share)"}.get(blas, blas)
        lines.append(f"| {workers} | {name} | {' | '.join(cells)} |")
    return "\n".join(lines)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support import EXAMPLES, notebook_cells, run_cells

    import takeout

    work = Path(tempfile.mkdtemp(prefix="takeout-bench-serve-"))
    for name, source in [
        ("fastapi_app.py", FASTAPI_APP),
        ("raw_asgi.py", RAW_ASGI_APP),
        ("rsgi_app.py", RSGI_APP),
    ]:
        (work / name).write_text(source)
    load = LoadGenerator(work)
    log(f"load generator: {load.name}; {args.duration} s per run after a 1 s warm-up")
    seed = run_cells(*notebook_cells(EXAMPLES / "kmeans.ipynb"))
    result: dict[str, Any] = {"load_generator": load.name, "duration_s": args.duration}
    result["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    try:
        for fname in FUNCTIONS:
            bundle = takeout.pack(seed[fname], work / f"{fname}.takeout", overwrite=True).path
            expected = int(seed[fname](SAMPLE))
            per_call = bare_call(bundle)
            log(f"{fname}: bare call {per_call * 1e6:.1f} µs")
            runs = []
            for label, workers, start in servers(bundle, work):
                if args.quick and workers == 2 and label != "takeout serve":
                    continue
                if args.takeout_only and label != "takeout serve":
                    continue
                server = start()
                try:
                    status, answer = post(server.url + "/call", BODY)
                    if status != 200 or answer.get("result") != expected:
                        raise RuntimeError(f"{label}: wrong answer {status} {answer}")
                    for c in CONCURRENCY:
                        load.run(server.url + "/call", c, 1)
                        # One worker only: with two, /metrics answers from either process.
                        own = label == "takeout serve" and workers == 1
                        before = server_time(server.url) if own else None
                        figures = load.run(server.url + "/call", c, args.duration)
                        if before is not None:
                            after = server_time(server.url)
                            n = after[1] - before[1]
                            figures["server_us"] = (after[0] - before[0]) / n * 1e6 if n else 0.0
                        log(
                            f"{fname} · {label} ×{workers} · c={c}: {figures['rps']:,.0f} req/s, "
                            f"p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms"
                        )
                        runs.append({"server": label, "workers": workers, "c": c, **figures})
                    if label == "takeout serve" and workers == 1:
                        load.run(server.url + "/healthz", 1, 1, post=False)
                        health = load.run(server.url + "/healthz", 1, args.duration, post=False)
                        call_rps = next(
                            r["rps"] for r in runs if r["server"] == label and r["c"] == 1
                        )
                        server_us = next(
                            r["server_us"] for r in runs if r["server"] == label and r["c"] == 1
                        )
                        result.setdefault("overhead", {})[fname] = {
                            "call_us": 1e6 / call_rps,
                            "healthz_us": 1e6 / health["rps"],
                            "bare_us": per_call * 1e6,
                            "server_us": server_us,
                            "overhead_us": server_us - per_call * 1e6,
                        }
                finally:
                    server.stop()
            result[fname] = {"bare_call_us": per_call * 1e6, "runs": runs}
            log(f"{fname}: cold start")
            result.setdefault("cold_start", {})[fname] = cold_start(bundle, work, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


# ── report ──────────────────────────────────────────────────────────────────────────────────


def figure(
    runs: list[dict[str, Any]], server: str, workers: int, c: int
) -> Optional[dict[str, Any]]:
    for r in runs:
        if r["server"] == server and r["workers"] == workers and r["c"] == c:
            return r
    return None


def report(result: dict[str, Any]) -> str:
    lines = [
        f"takeout serve benchmark · {result['load_generator']}, {result['duration_s']} s per run · "
        f"{result['machine']['cpus']} CPUs · CPython {result['machine']['python']}",
    ]
    targets = []
    for fname in FUNCTIONS:
        data = result[fname]
        runs = data["runs"]
        floor = 1e6 / data["bare_call_us"]
        lines += [
            "",
            f"{fname}: bare call {data['bare_call_us']:.1f} µs ⇒ {floor:,.0f} calls/s on one core",
            f"  {'server':<24} {'w':>2} "
            + " ".join(
                f"{'c=' + str(c) + ' req/s':>13} {'p50':>7} {'p99':>7}" for c in CONCURRENCY
            ),
        ]
        seen = []
        for r in runs:
            key = (r["server"], r["workers"])
            if key in seen:
                continue
            seen.append(key)
            cells = []
            for c in CONCURRENCY:
                f = figure(runs, r["server"], r["workers"], c)
                if f is None:
                    cells.append(f"{'-':>13} {'-':>7} {'-':>7}")
                    continue
                flag = "!" if f["non_2xx"] or f["socket_errors"] else " "
                cells.append(f"{f['rps']:>12,.0f}{flag} {f['p50_ms']:>6.2f}m {f['p99_ms']:>6.2f}m")
            lines.append(f"  {r['server']:<24} {r['workers']:>2} " + " ".join(cells))
        lines.append("  ratios (takeout serve ÷ other, same workers; req/s):")
        for other in ("FastAPI + uvicorn", "raw ASGI + uvicorn", "Granian (RSGI)"):
            parts = []
            for workers in (1, 2):
                for c in CONCURRENCY:
                    mine = figure(runs, "takeout serve", workers, c)
                    theirs = figure(runs, other, workers, c)
                    if mine and theirs:
                        parts.append(f"{workers}w c={c} {mine['rps'] / theirs['rps']:.2f}×")
            if parts:
                lines.append(f"    vs {other:<20} " + "  ".join(parts))
        for workers in (1, 2):
            for other, need in (("FastAPI + uvicorn", 2.0), ("Granian (RSGI)", 1.0)):
                ratios = []
                for c in CONCURRENCY:
                    mine = figure(runs, "takeout serve", workers, c)
                    theirs = figure(runs, other, workers, c)
                    if mine and theirs:
                        ratios.append(mine["rps"] / theirs["rps"])
                if ratios:
                    targets.append(
                        (
                            f"{fname} ×{workers}: req/s ≥ {need:g}× {other} at c=1, 8, 64",
                            ", ".join(f"{x:.2f}×" for x in ratios),
                            min(ratios) >= need,
                        )
                    )
            mine = figure(runs, "takeout serve", workers, 64)
            if mine and workers == 1:
                # wrk takes the other core, so one worker's ceiling is the bare call's rate on one.
                share = mine["rps"] * data["bare_call_us"] / 1e6
                targets.append(
                    (
                        f"{fname} ×1: c=64 req/s ≥ 0.85 of the bare call's one-core rate",
                        f"{share:.2f} ({mine['rps']:,.0f} of {floor:,.0f})",
                        share >= 0.85,
                    )
                )
            others = [figure(runs, o, workers, 64) for o in ("FastAPI + uvicorn", "Granian (RSGI)")]
            if mine and all(others):
                worst = min(o["p99_ms"] for o in others if o)
                targets.append(
                    (
                        f"{fname} ×{workers}: p99 at c=64 below FastAPI's and Granian's",
                        f"{mine['p99_ms']:.2f} ms vs {worst:.2f} ms",
                        mine["p99_ms"] < worst,
                    )
                )
    lines += [
        "",
        "overhead of takeout serve at c=1: time per request in the server (its latency histogram:",
        "request head to response) minus the bare call; and, end to end, time per request of",
        "POST /call and GET /healthz (the client and the kernel included):",
    ]
    for fname, o in result.get("overhead", {}).items():
        lines.append(
            f"  {fname:<16} in the server {o['server_us']:.1f} µs − bare {o['bare_us']:.1f} µs"
            f" = {o['overhead_us']:.1f} µs · end to end: /call {o['call_us']:.1f} µs,"
            f" /healthz {o['healthz_us']:.1f} µs"
        )
        targets.append(
            (
                f"{fname}: overhead over the bare call at c=1 ≤ 30 µs",
                f"{o['overhead_us']:.1f} µs",
                o["overhead_us"] <= 30,
            )
        )
    lines += ["", "cold start (process start to the first 200 of POST /call; medians):"]
    for fname, cs in result.get("cold_start", {}).items():
        lines.append(
            f"  {fname:<16} function's own imports {cs['deps_import_ms']:.0f} ms · "
            f"takeout serve {cs['serve_1w_ms']:.0f} ms ({cs['overhead_1w_ms']:+.0f}) · "
            f"--workers 2 {cs['serve_2w_ms']:.0f} ms ({cs['overhead_2w_ms']:+.0f})"
        )
        targets.append(
            (
                f"{fname}: cold start within 100 ms of the function's import time",
                f"{cs['overhead_1w_ms']:+.0f} ms (2 workers: {cs['overhead_2w_ms']:+.0f} ms)",
                cs["overhead_1w_ms"] <= 100,
            )
        )
    lines += verdicts(targets)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--repeat", type=int, default=5, help="cold starts per figure")
    parser.add_argument("--quick", action="store_true", help="one worker only for the others")
    parser.add_argument(
        "--takeout-only", action="store_true", help="only takeout serve (the one-core ratio)"
    )
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    parser.add_argument("--blas", action="store_true", help="only the BLAS thread-limit runs")
    args = parser.parse_args()
    if args.blas:
        blas = measure_blas(args)
        print(json.dumps(blas, indent=2) if args.json else report_blas(blas))
        return
    result = measure(args)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print(report(result))


if __name__ == "__main__":
    main()
