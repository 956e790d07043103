"""A soak run of `takeout serve`: keep-alive clients on loopback for a time budget, then the
figures the README quotes — requests, errors, and the slope of the server's memory.

    .venv/bin/python soak/run.py [--seconds 60] [--clients 8] [--workers 1] [--json]

The mix is what a long-lived service sees: calls that succeed (checked against the expected
result), calls that raise (500), malformed bodies (400) and probes. An error is any response
other than the expected one, or a transport failure. Memory is the resident set of the server
and its workers, sampled every second; the slope is a least-squares fit over the samples after
the first fifth of the run (allocators and caches grow at first), in MiB per minute. The run
fails (exit 1) on any error, and, for runs of a minute or more, on a slope above
`--max-slope`; shorter runs (CI's) report the slope without judging it, since a few seconds of
samples cannot tell growth from noise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

import takeout

ROOT = Path(__file__).resolve().parent.parent


def soak_target(x: list, mode: str = "ok") -> float:
    """Sum `x`, or raise when asked."""
    if mode == "raise":
        raise ValueError(f"asked to raise on {len(x)} values")
    return float(sum(x))


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and of its children (the workers)."""
    total = 0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        pids += [int(p) for p in task.read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
    return total


def slope_mib_per_min(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, bytes), in MiB per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mb = sum(b for _, b in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    cov = sum((t - mt) * (b - mb) for t, b in samples)
    return cov / var * 60 / (1 << 20)


def client(url: str, stop: threading.Event, seed: int, counts: dict[str, int], lock: Any) -> None:
    rng = random.Random(seed)
    mine = {"requests": 0, "errors": 0}
    with httpx.Client(base_url=url, timeout=10) as http:
        while not stop.is_set():
            roll = rng.random()
            x = [rng.random() for _ in range(rng.randint(1, 64))]
            try:
                if roll < 0.85:
                    r = http.post("/call", json={"x": x})
                    ok = r.status_code == 200 and abs(r.json()["result"] - sum(x)) < 1e-9
                elif roll < 0.92:
                    r = http.post("/call", json={"x": x, "mode": "raise"})
                    ok = r.status_code == 500 and r.json()["error"]["type"] == "ValueError"
                elif roll < 0.97:
                    r = http.post(
                        "/call", content=b'{"x": [1,', headers={"content-type": "application/json"}
                    )
                    ok = r.status_code == 400
                else:
                    ok = http.get("/readyz").status_code == 200
            except httpx.HTTPError:
                ok = False
            mine["requests"] += 1
            mine["errors"] += not ok
    with lock:
        for k, v in mine.items():
            counts[k] += v


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-slope", type=float, default=5.0, help="MiB per minute")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        bundle = takeout.pack(soak_target, Path(tmp) / "soak.takeout", examples=[([1.0],)]).path
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log_file:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "takeout.cli",
                    "serve",
                    str(bundle),
                    f"--port={port}",
                    f"--workers={args.workers}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                cwd=ROOT,
            )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    print(log_path.read_text(), file=sys.stderr)
                    return 1
                time.sleep(0.05)
            counts = {"requests": 0, "errors": 0}
            lock = threading.Lock()
            stop = threading.Event()
            threads = [
                threading.Thread(target=client, args=(url, stop, i, counts, lock))
                for i in range(args.clients)
            ]
            start = time.monotonic()
            for t in threads:
                t.start()
            samples: list[tuple[float, int]] = []
            while (now := time.monotonic() - start) < args.seconds:
                samples.append((now, rss_bytes(server.pid)))
                time.sleep(min(1.0, max(0.0, args.seconds - now)))
            stop.set()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - start
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                code = server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
                code = server.wait()
    steady = [s for s in samples if s[0] >= args.seconds / 5]
    figures = {
        "seconds": round(elapsed, 1),
        "clients": args.clients,
        "workers": args.workers,
        "requests": counts["requests"],
        "errors": counts["errors"],
        "requests_per_s": round(counts["requests"] / elapsed),
        "rss_start_mib": round(steady[0][1] / (1 << 20), 1) if steady else None,
        "rss_end_mib": round(samples[-1][1] / (1 << 20), 1) if samples else None,
        "rss_slope_mib_per_min": round(slope_mib_per_min(steady), 2),
        "exit_status": code,
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for k, v in figures.items():
            print(f"{k:>22}: {v}")
    judged = args.seconds >= 60
    failed = (
        counts["errors"] > 0
        or code != 0
        or (judged and figures["rss_slope_mib_per_min"] > args.max_slope)
    )
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
