"""`takeout export --verify`: the built image, run the way a hardened cluster runs it.

Read-only root filesystem (only `/tmp` writable), every capability dropped, no privilege
escalation, as the image's non-root user, published on 127.0.0.1 only. Then: wait for
`/readyz`; replay the bundle's recorded examples over HTTP against `POST /call`, judged by the
same comparison `takeout verify` makes; a short bounded load; SIGTERM, expecting exit 0.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import BundleError
from . import container
from ._engine import Engine

#: The short load after the examples: bounded in count and in time.
LOAD_REQUESTS = 400
LOAD_SECONDS = 5.0
LOAD_CONNECTIONS = 4


@dataclass
class Running:
    """A container serving on 127.0.0.1:`port`."""

    engine: Engine
    name: str
    port: int
    started: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inspect(self, template: str) -> str:
        return self.engine.run("inspect", "--format", template, self.name).stdout.strip()

    @property
    def pids(self) -> list[int]:
        """The container's processes as the host sees them: PID 1 and its descendants."""
        try:
            root = int(self.inspect("{{.State.Pid}}"))
        except ValueError:
            return []
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
        found, todo = [], [root]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, ()))
        return found

    def status(self, field_name: str) -> list[str]:
        """A line of /proc/PID/status for every process of the container."""
        values = []
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/status") as fh:
                    for line in fh:
                        if line.startswith(field_name + ":"):
                            values.append(line.split(":", 1)[1].strip())
            except OSError:
                continue
        return values

    def rss(self) -> int:
        return sum(int(v.split()[0]) * 1024 for v in self.status("VmRSS"))

    def logs(self) -> str:
        out = self.engine.run("logs", self.name)
        return (out.stdout + out.stderr).strip()

    def running(self) -> bool:
        return self.inspect("{{.State.Running}}") == "true"

    def stop(self, timeout: float = 60) -> Optional[int]:
        """SIGTERM, as a kubelet sends it; the exit status, None if it did not exit."""
        self.engine.run("kill", "--signal", "TERM", self.name)
        out = self.engine.run("wait", self.name, timeout=timeout)
        try:
            return int(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def run(
    engine: Engine,
    image: str,
    *,
    env: Optional[dict[str, str]] = None,
    memory: Optional[str] = None,
    extra: tuple[str, ...] = (),
) -> Iterator[Running]:
    """The image running hardened in the background; removed when the block ends. Environment
    values pass through the engine's own environment (`-e NAME`), never on a command line."""
    if not engine.can_run:
        raise BundleError(
            f"`{engine.name}` builds images but cannot run them; install podman or docker "
            "to --verify"
        )
    name = f"takeout-verify-{uuid.uuid4().hex[:12]}"
    port = free_port()
    args = [
        "run",
        "--detach",
        "--name",
        name,
        "--read-only",
        "--tmpfs",
        "/tmp:rw,nosuid,nodev,size=256m",
        "--cap-drop=ALL",
        "--security-opt",
        "no-new-privileges",
        "-p",
        f"127.0.0.1:{port}:{container.PORT}",
    ]
    if memory:
        args += ["--memory", memory]
    child_env = dict(os.environ)
    for key, value in (env or {}).items():
        child_env[key] = value
        args += ["-e", key]
    args += [*extra, image]
    started = time.perf_counter()
    out = subprocess.run(
        engine.command(*args), capture_output=True, text=True, env=child_env, timeout=300
    )
    if out.returncode != 0:
        raise BundleError(
            f"{engine.name} could not start `{image}`: "
            f"{(out.stderr.strip().splitlines() or ['no output'])[-1]}"
        )
    running = Running(engine, name, port, started)
    try:
        yield running
    finally:
        engine.run("rm", "--force", name)


def wait_ready(running: Running, timeout: float = 120) -> float:
    """Seconds from `run` to the first 200 on /readyz."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _ = request(running.port, "GET", "/readyz", timeout=2)
            if status == 200:
                return time.perf_counter() - running.started
        except OSError:
            pass
        if not running.running():
            raise BundleError(
                "the container exited before it was ready: "
                f"{_last(running.logs())}; run the image by hand to see its log"
            )
        time.sleep(0.05)
    raise BundleError(
        f"the container was not ready within {timeout:.0f} s: {_last(running.logs())}"
    )


def request(
    port: int, method: str, path: str, body: Any = None, timeout: float = 30
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw.decode("utf-8", "replace")


def call_body(example: dict[str, Any]) -> Any:
    """The body of `POST /call` for a recorded example: positional or keyword arguments."""
    return example.get("args") if example.get("args") else example.get("kwargs", {})


@dataclass
class ImageCheck:
    """What `--verify` found; `ok` only when every check passed."""

    image: str
    ok: bool = False
    examples: Any = None  # takeout.verification.VerifyResult
    size: int = 0
    ready_seconds: float = 0.0
    rss: int = 0
    rss_peak: int = 0
    load_requests: int = 0
    load_rps: float = 0.0
    cpu_per_second: float = 0.0
    exit_status: Optional[int] = None
    user: str = ""
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "ok": self.ok,
            "examples": self.examples.to_dict() if self.examples is not None else None,
            "size": self.size,
            "ready_seconds": round(self.ready_seconds, 3),
            "rss": self.rss,
            "rss_peak": self.rss_peak,
            "load_requests": self.load_requests,
            "load_rps": round(self.load_rps, 1),
            "cpu_per_second": round(self.cpu_per_second, 3),
            "exit_status": self.exit_status,
            "user": self.user,
            "problems": self.problems,
        }

    def __str__(self) -> str:
        head = "ok" if self.ok else "FAILED"
        lines = [
            f"takeout export --verify · {self.image} · {head}",
            f"  image {self.size / 1e6:.0f} MB; read-only root, no capabilities, "
            f"user {self.user or '?'}; ready {self.ready_seconds:.2f} s after run",
        ]
        if self.examples is not None:
            for check in self.examples.examples:
                state = "ok" if check.ok else "FAILED"
                lines.append(f"  example {check.index + 1} over POST /call: {state}")
            if not self.examples.examples:
                lines.append("  no examples recorded, so no call was checked")
        if self.load_requests:
            lines.append(
                f"  short load: {self.load_requests} requests, {self.load_rps:.0f} req/s, "
                f"RSS {self.rss / 2**20:.0f} MiB (peak {self.rss_peak / 2**20:.0f} MiB)"
            )
        if self.exit_status is not None:
            lines.append(f"  SIGTERM: exit status {self.exit_status}")
        lines.extend(f"  problem: {p}" for p in self.problems)
        return "\n".join(lines)


def verify_image(
    engine: Engine, image: str, manifest: dict[str, Any], *, signing_key: Optional[str] = None
) -> ImageCheck:
    from .. import _runtime
    from ..verification import _judge

    check = ImageCheck(image=image, size=engine.size(image))
    env = {"TAKEOUT_SIGNING_KEY": signing_key} if signing_key else None
    try:
        with run(engine, image, env=env) as running:
            check.ready_seconds = wait_ready(running)
            uids = {v.split()[0] for v in running.status("Uid")}
            check.user = ",".join(sorted(uids))
            if not uids or "0" in uids:
                check.problems.append(
                    f"the server runs as uid {check.user or '?'}, not a non-root user; "
                    "keep the image's USER"
                )
            results = []
            for index, example in enumerate(manifest.get("examples", ())):
                status, body = request(running.port, "POST", "/call", call_body(example))
                if status == 200 and isinstance(body, dict) and "result" in body:
                    got = body["result"]
                    ok = _runtime.same(got, example.get("output"))
                    results.append({"index": index, "ok": ok, "output": got})
                else:
                    error = body.get("error", {}) if isinstance(body, dict) else {}
                    results.append(
                        {
                            "index": index,
                            "ok": False,
                            "error": {
                                "type": error.get("type", f"HTTP {status}"),
                                "message": error.get("message", str(body)[:200]),
                            },
                        }
                    )
            pins = list(dict.fromkeys([*manifest.get("lock", ()), *manifest.get("runtime", ())]))
            check.examples = _judge(
                manifest, {"loaded": True, "examples": results}, pins, f"image {image}"
            )
            check.problems.extend(check.examples.problems)
            examples = manifest.get("examples") or []
            if examples:
                _load(check, running, call_body(examples[0]))
            else:  # no example to send: the load is the readiness probe
                _load(check, running, None)
            check.exit_status = running.stop()
            if check.exit_status != 0:
                check.problems.append(
                    f"on SIGTERM the container exited with {check.exit_status}, not 0: "
                    f"{_last(running.logs())}"
                )
    except BundleError as err:
        check.problems.append(str(err))
    check.ok = not check.problems
    return check


def _load(check: ImageCheck, running: Running, body: Any) -> None:
    """LOAD_REQUESTS over LOAD_CONNECTIONS keep-alive connections, at most LOAD_SECONDS."""
    method, path = ("POST", "/call") if body is not None else ("GET", "/readyz")
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    count = [0]
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + LOAD_SECONDS
    peak = [0]

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=30)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if count[0] >= LOAD_REQUESTS:
                        return
                    count[0] += 1
                conn.request(method, path, body=data, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    failures.append(f"HTTP {response.status}")
        except OSError as err:
            failures.append(str(err))
        finally:
            conn.close()

    cpu_before = _cpu_seconds(running)
    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(LOAD_CONNECTIONS)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        peak[0] = max(peak[0], running.rss())
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    check.cpu_per_second = (_cpu_seconds(running) - cpu_before) / elapsed if elapsed else 0.0
    check.load_requests = count[0]
    check.load_rps = count[0] / elapsed if elapsed else 0.0
    check.rss = running.rss()
    check.rss_peak = max(peak[0], check.rss)
    if failures:
        check.problems.append(
            f"{len(failures)} of {count[0]} requests under load failed ({failures[0]})"
        )


def _cpu_seconds(running: Running) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in running.pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total / ticks


def _last(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def record(manifest_path: Path, check: ImageCheck) -> None:
    """Remember what was measured for this bundle, so `--to kubernetes` can size its requests."""
    from ..bundle import cache_root
    from ._wheels import _sha256

    where = cache_root() / "measured" / f"{_sha256(manifest_path)}.json"
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_text(json.dumps(check.to_dict(), indent=2), encoding="utf-8")
    except OSError:
        pass  # only the manifests' sizing loses it


def measured(manifest_path: Path) -> Optional[dict[str, Any]]:
    from ..bundle import cache_root
    from ._wheels import _sha256

    where = cache_root() / "measured" / f"{_sha256(manifest_path)}.json"
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("ok") else None
