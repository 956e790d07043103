"""A real local Ray cluster for the Ray tests and `bench/ray.py`: `ray start --head` in a
temp dir of its own (removed again with Ray's session logs), Serve's proxy on a free port, token
authentication on, and more nodes on the same machine on demand."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

import psutil

from .test_serve import free_port


class Cluster:
    """`ray start --head` in a temp dir of its own, with Serve's proxy on a free port."""

    def __init__(self) -> None:
        # Ray's socket paths must stay under 108 bytes: a short directory, not pytest's.
        self.temp = Path(tempfile.mkdtemp(prefix="tkray-"))
        self.gcs_port = free_port()
        self.dashboard_port = free_port()
        self.http_port = free_port()
        self.address = f"127.0.0.1:{self.gcs_port}"
        self.env = {
            # `import ray` sets RAY_CLIENT_MODE in its process: not for the cluster's.
            **{k: v for k, v in os.environ.items() if k != "RAY_CLIENT_MODE"},
            # Token authentication, as Ray 2.60 turns on, with a token of this cluster's own.
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "TAKEOUT_RAY_DIR": str(self.temp / "copies"),
            # What `--ray auto` finds (this cluster's temp dir is not Ray's default one).
            "RAY_ADDRESS": f"127.0.0.1:{self.gcs_port}",
            "RAY_USAGE_STATS_ENABLED": "0",
            # Two cores shared with compiles: the default 10 s for a raylet to register is short.
            "RAY_raylet_start_wait_time_s": "120",
        }
        self.ray = str(Path(sys.executable).parent / "ray")
        for attempt in range(3):
            try:
                self._start()
                return
            except AssertionError as err:
                # The head waits a fixed 30 s for its raylet to register, which a machine busy
                # with compiles can exceed: that start alone is tried again.
                if attempt == 2 or "timed out during startup" not in str(err):
                    self.stop()
                    raise
                self._end_processes()
            except BaseException:
                self.stop()
                raise

    def _start(self) -> None:
        self.run(
            "start",
            "--head",
            "--num-cpus=4",
            "--disable-usage-stats",
            "--node-ip-address=127.0.0.1",
            f"--port={self.gcs_port}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            f"--temp-dir={self.temp}",
            f"--ray-client-server-port={free_port()}",
            *self.agent_ports(),
        )
        serve_cli = str(Path(sys.executable).parent / "serve")
        self.check([serve_cli, "start", f"--address={self.address}",
                    "--http-host=127.0.0.1", f"--http-port={self.http_port}"])  # fmt: skip

    def join(self) -> None:
        """Make this process a client of the cluster, with its token."""
        import takeout.ray

        for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "TAKEOUT_RAY_DIR", "RAY_ADDRESS"):
            os.environ[var] = self.env[var]
        takeout.ray.connect(self.address)

    def agent_ports(self) -> list[str]:
        # Every node of this machine needs ports of its own for its agents.
        return [
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
        ]

    def run(self, *args: str) -> str:
        return self.check([self.ray, *args])

    def check(self, argv: list[str]) -> str:
        r = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, f"{argv}: {r.stdout}\n{r.stderr}"
        return r.stdout

    def takeout(
        self, *args: str, timeout: float = 300, env: Optional[dict[str, str]] = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "takeout.cli", *args],
            env=self.env if env is None else env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def add_node(self, resource: str) -> None:
        self.run(
            "start",
            f"--address={self.address}",
            "--num-cpus=1",
            f"--resources={json.dumps({resource: 1})}",
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={self.temp}",
            *self.agent_ports(),
        )

    def processes(self) -> list[psutil.Process]:
        """This cluster's processes and no other cluster's: those whose command line names its
        temp dir or its GCS port (every node's daemons do), and all their descendants (workers
        and agents, whose titles Ray rewrites to `ray::...`)."""
        port = re.compile(rf":{self.gcs_port}\b")
        me = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
        roots = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            line = " ".join(proc.info["cmdline"] or ())
            if proc.info["pid"] not in me and (str(self.temp) in line or port.search(line)):
                roots.append(proc)
        found = {}
        for proc in roots:
            try:
                found.update({p.pid: p for p in [proc, *proc.children(recursive=True)]})
            except psutil.NoSuchProcess:
                continue
        return [p for p in found.values() if p.pid not in me and _running(p)]

    def stop(self) -> None:
        """Stop this cluster's processes, and only them: `ray stop` would stop every Ray
        cluster of the machine, other people's too."""
        try:
            self._end_processes()
        finally:
            # Ray leaves its session logs (hundreds of MB) behind.
            shutil.rmtree(self.temp, ignore_errors=True)

    def _end_processes(self) -> None:
        for _ in range(3):
            procs = self.processes()
            if not procs:
                break
            for proc in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.terminate()
            _, alive = psutil.wait_procs(procs, timeout=5)
            for proc in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
            psutil.wait_procs(alive, timeout=5)
        left = self.processes()
        assert not left, f"the Ray cluster in {self.temp} left processes behind: {left}"


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
