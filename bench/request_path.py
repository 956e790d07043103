"""Where the time of a request goes in `takeout serve`, beyond the bare call: a perf profile.

    .venv/bin/python bench/request_path.py [--seconds 5] [--takeout-path DIR] [--json]

The seed's `km_predict_two` is packed and served by `takeout serve --workers 1`; wrk keeps 64
keep-alive connections busy while `perf record` samples the server's threads (software
cpu-clock, DWARF call chains, so it runs on virtual machines without hardware counters).
Every sample is put in one bucket by its call chain: on the call thread, the function itself
(everything under the interpreter's call, the loader's wrapper included), argument building,
result encoding, the reply that wakes the HTTP thread, the pool's queue, the fork check, waits
for the GIL; on the HTTP thread, TCP reads and writes (the kernel's loopback path included),
epoll and wake-ups, hyper, tokio's scheduling, JSON parsing, binding and validation, and the
rest of the request core. Each bucket is shown as CPU microseconds per request (samples ÷
rate ÷ requests answered meanwhile, from the server's own counter), next to the bare call's
time and the throughput's share of the bare call's one-core rate.

`--takeout-path DIR` serves with the takeout package found in DIR instead (a copy of
`python/` with an older extension, say), so two builds are profiled the same way in one
sitting. Needs perf (Debian's linux-perf) and wrk; the load generator shares the machine's
two cores with the server, as in every serving benchmark here.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from _util import log, table  # noqa: E402  (after the path is set)
from serve import BODY, Server, bare_call, free_port, server_time  # noqa: E402

Frames = list[str]

# First match wins; a sample's frames are its call chain, leaf first.
CALL_THREAD: list[tuple[str, Callable[[Frames], bool]]] = [
    ("GIL wait (take_gil)", lambda f: any("take_gil" in x for x in f)),
    ("the function (bare call)", lambda f: any(x.startswith("_PyObject_Call") for x in f)),
    (
        "reply: waking the HTTP thread",
        lambda f: any(k in x for x in f for k in ("Waker::wake", "wake_by_ref", "oneshot")),
    ),
    (
        "argument building",
        lambda f: any(
            k in x
            for x in f
            for k in ("json_to_py", "PyTuple", "PyDict", "dict_dealloc", "unicode_decode")
        ),
    ),
    ("result encoding", lambda f: any("encode" in x or "convert::" in x for x in f)),
    ("fork check (getpid)", lambda f: any("getpid" in x for x in f)),
    (
        "pool: queue, spin, park",
        lambda f: any(
            k in x for x in f for k in ("pool::", "sched_yield", "detach", "futex", "Timespec")
        ),
    ),
]
HTTP_THREAD: list[tuple[str, Callable[[Frames], bool]]] = [
    ("epoll wait, park and wake-ups", lambda f: any("epoll_wait" in x or "park" in x for x in f)),
    (
        "TCP write (kernel loopback included)",
        lambda f: any(k in x for x in f for k in ("writev", "sys_write", "sendmsg")),
    ),
    (
        "TCP read",
        lambda f: any(k in x for x in f for k in ("recvfrom", "sys_read", "sys_recv")),
    ),
    ("JSON parse", lambda f: any("server::json::" in x or "serde_json::de" in x for x in f)),
    (
        "binding and validation",
        lambda f: any(k in x for x in f for k in ("server::bind", "jsonschema", "server::params")),
    ),
    ("malloc/free", lambda f: "malloc" in f[0] or "free" in f[0] or "unlink_chunk" in f[0]),
    ("clock reads (timeouts, metrics)", lambda f: "clock_gettime" in f[0] or "read_tsc" in f[0]),
    # The request core's `handle` is an async fn, inlined with hyper's connection future into
    # one task: the two cannot be told apart by symbol.
    (
        "HTTP/1 parse, dispatch and the request core",
        lambda f: any(k in x for x in f for k in ("hyper::", "httparse", "takeout_core::server")),
    ),
    ("tokio: task scheduling", lambda f: any("tokio::" in x for x in f)),
]


def read_samples(script: str) -> list[tuple[str, Frames]]:
    """`perf script -F comm,ip,sym` output as (thread name, frames leaf first)."""
    samples: list[tuple[str, Frames]] = []
    for line in script.splitlines():
        if not line.strip():
            continue
        if not line.startswith("\t"):
            samples.append((line.split()[0], []))
            continue
        found = re.match(r"\s*[0-9a-f]+ (.*?)(?:\+0x[0-9a-f]+)?(?: \(.*\))?\s*$", line)
        if found and samples:
            samples[-1][1].append(found.group(1))
    return samples


def bucket(frames: Frames, rules: list[tuple[str, Callable[[Frames], bool]]]) -> str:
    for label, rule in rules:
        if rule(frames):
            return label
    return "other"


def profile(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support import EXAMPLES, notebook_cells, run_cells

    import takeout

    perf, wrk = shutil.which("perf"), shutil.which("wrk")
    if perf is None or wrk is None:
        raise SystemExit("bench/request_path.py needs perf and wrk: apt-get install linux-perf wrk")
    work = Path(tempfile.mkdtemp(prefix="takeout-bench-path-"))
    try:
        seed = run_cells(*notebook_cells(EXAMPLES / "kmeans.ipynb"))
        bundle = takeout.pack(seed["km_predict_two"], work / "km_predict_two.takeout").path
        script = work / "post.lua"
        script.write_text(
            f"wrk.method = \"POST\"\nwrk.body = '{BODY}'\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        env = {}
        if args.takeout_path:
            env["PYTHONPATH"] = str(Path(args.takeout_path).resolve())
        port = free_port()
        argv = [sys.executable, "-m", "takeout.cli", "serve", str(bundle), f"--port={port}"]
        server = Server("takeout serve", [*argv, "--workers=1"], port, env, work)
        try:
            url = server.url + "/call"
            load = [wrk, "-t1", "-c64", "-s", str(script)]
            subprocess.run([*load, "-d2s", url], capture_output=True, check=True)
            # The load runs past both ends of the recording, so every sample is under load.
            seconds = max(2, round(args.seconds))
            loading = subprocess.Popen(
                [*load, f"-d{seconds + 3}s", url], stdout=subprocess.PIPE, text=True
            )
            time.sleep(1)
            before = server_time(server.url)
            start = time.perf_counter()
            data = work / "perf.data"
            record = [perf, "record", "-q", "-F", str(args.rate), "--call-graph", "dwarf,16384"]
            record += ["-p", str(server.proc.pid), "-o", str(data), "--", "sleep", str(seconds)]
            subprocess.run(record, check=True, capture_output=True)
            elapsed = time.perf_counter() - start
            after = server_time(server.url)
            out, _ = loading.communicate(timeout=seconds + 60)
        finally:
            server.stop()
        requests = after[1] - before[1]
        found = re.search(r"Requests/sec:\s+([\d.]+)", out)
        rps = float(found.group(1)) if found else requests / elapsed
        text = subprocess.run(
            [perf, "script", "-i", str(data), "-F", "comm,ip,sym"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        log("bare call")
        bare_us = bare_call(bundle) * 1e6
        bare_cpu_us = bare_call(bundle, clock=time.thread_time) * 1e6
    finally:
        shutil.rmtree(work, ignore_errors=True)
    counts: dict[str, collections.Counter[str]] = {
        "call thread": collections.Counter(),
        "HTTP thread": collections.Counter(),
        "other threads": collections.Counter(),
    }
    for comm, frames in read_samples(text):
        if comm.startswith("takeout-call"):
            counts["call thread"][bucket(frames, CALL_THREAD)] += 1
        elif comm.startswith("takeout-http"):
            counts["HTTP thread"][bucket(frames, HTTP_THREAD)] += 1
        else:
            counts["other threads"][comm] += 1
    per_request = 1e6 / args.rate / max(1, requests)
    return {
        "seconds": elapsed,
        "rate_hz": args.rate,
        "requests": requests,
        "rps": rps,
        "us_per_request": {
            thread: {k: n * per_request for k, n in c.most_common()} for thread, c in counts.items()
        },
        "bare_us": bare_us,
        "bare_cpu_us": bare_cpu_us,
        "takeout_path": args.takeout_path,
    }


def report(result: dict[str, Any]) -> str:
    bare, cpu = result["bare_us"], result["bare_cpu_us"]
    call = sum(result["us_per_request"]["call thread"].values())
    lines = [
        f"takeout serve ×1, km_predict_two, wrk c=64: {result['rps']:,.0f} req/s under perf "
        f"({result['requests']:,} requests in {result['seconds']:.1f} s sampled at "
        f"{result['rate_hz']} Hz) · bare call {bare:.1f} µs wall, {cpu:.1f} µs CPU ⇒ "
        f"throughput {result['rps'] * bare / 1e6:.2f} of its one-core rate; the call thread "
        f"spends {call:.1f} CPU µs per request, {cpu / call:.2f} of it in a bare call's worth",
        "",
    ]
    for thread, buckets in result["us_per_request"].items():
        if not buckets:
            continue
        total = sum(buckets.values())
        rows = [[k, f"{v:.2f}", f"{100 * v / total:.0f}%"] for k, v in buckets.items()]
        rows.append(["total", f"{total:.2f}", "100%"])
        lines += [thread, table(["bucket", "CPU µs/request", "share"], rows, frozenset({1, 2}))]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds recorded")
    parser.add_argument("--rate", type=int, default=999, help="samples per second per thread")
    parser.add_argument("--takeout-path", help="serve with the takeout package in this folder")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    result = profile(args)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
