"""Several worker processes on one port: fork after loading, SO_REUSEPORT, replace the dead."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import sys
import time
from typing import Any

from ..errors import ServeError
from .config import ServeConfig
from .log import Log
from .signals import SIGNALS, on_signals, take_early

__all__ = ["Supervisor"]


class Supervisor:
    """Forks `config.workers` processes after the function is loaded; each binds the port with
    SO_REUSEPORT and serves. A dead worker is replaced (at once the first time, then with
    backoff while it keeps dying young), and so is a wedged one: every call thread stuck past
    `--timeout` for `--stuck-restart` more, as it writes in the shared metrics. SIGTERM/SIGINT
    are forwarded and the supervisor exits 0 once every worker has drained."""

    def __init__(self, app: Any, config: ServeConfig, log: Log) -> None:
        self.app = app
        self.workers = config.workers
        self.grace = config.grace
        self.log = log
        self.children: dict[int, int] = {}
        self.born: dict[int, float] = {}
        self.failures = [0] * config.workers
        self.due: dict[int, float] = {}
        self.stopping = False
        self.deadline = 0.0
        # Workers that exited other than cleanly once asked to stop (dropped calls, killed).
        self.unclean = 0
        # Wedged workers told to stop: pid → when to kill it if it has not.
        self.wedged: dict[int, float] = {}
        self.next_check = 0.0
        # Bound but never listening: it holds the port (and resolves port 0) without taking
        # any connection, which only listening sockets of the group receive.
        self.reserve = _reserve(config.host, config.port)
        self.config = dataclasses.replace(config, port=self.reserve.getsockname()[1])

    def run(self) -> None:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in SIGNALS}
        for early in take_early()[:1]:
            self._on_signal(early, None)
        try:
            host = self.config.host
            host = f"[{host}]" if ":" in host else host
            self.log.info(
                "serving",
                name=self.app.name,
                url=f"http://{host}:{self.config.port}",
                workers=self.workers,
                pid=os.getpid(),
            )
            for slot in range(self.workers):
                self._spawn(slot)
            self._watch()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.reserve.close()
        if self.unclean:
            raise ServeError(
                f"`{self.unclean}` worker(s) did not stop cleanly within the grace period of "
                f"{self.grace:g} s, so calls were lost; raise `--grace` if calls take that long"
            )
        self.log.info("stopped", name=self.app.name)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.stopping:
            for pid in self.children:
                _kill(pid, signal.SIGKILL)
            os._exit(128 + signum)
        self.stopping = True
        self.deadline = time.monotonic() + self.grace + 5.0
        for pid in self.children:
            _kill(pid, signal.SIGTERM)

    def _spawn(self, slot: int) -> None:
        # Blocked across fork: a signal landing before the child installs its own handlers
        # would otherwise run the supervisor's, which signals every sibling.
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                self.reserve.close()
                _worker(self.app, slot, self.config, os.getppid())
            self.children[pid] = slot
            self.born[pid] = time.monotonic()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)

    def _watch(self) -> None:
        while self.children or (self.due and not self.stopping):
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid, status = 0, 0
            now = time.monotonic()
            if pid == 0:
                if self.stopping and now > self.deadline:
                    for child in self.children:
                        _kill(child, signal.SIGKILL)
                if not self.stopping and now >= self.next_check:
                    self.next_check = now + 0.5
                    self._replace_wedged(now)
                for slot, when in list(self.due.items()):
                    if now >= when and not self.stopping:
                        del self.due[slot]
                        self._spawn(slot)
                time.sleep(0.02)
                continue
            dead = self.children.pop(pid, -1)
            lived = now - self.born.pop(pid, now)
            self.wedged.pop(pid, None)
            if dead >= 0 and self.stopping and status != 0:
                self.unclean += 1
            if dead < 0 or self.stopping:
                continue
            slot = dead
            # Dying young again and again (a crash on import, a bad port) backs off up to 10 s.
            self.failures[slot] = self.failures[slot] + 1 if lived < 10.0 else 0
            delay = 0.0 if self.failures[slot] <= 1 else min(0.1 * 2 ** self.failures[slot], 10.0)
            self.log.warning(
                "worker died; replacing it",
                pid=pid,
                worker=slot,
                cause=_exit_cause(status),
                restart_in_s=round(delay, 2),
            )
            self.due[slot] = now + delay

    def _replace_wedged(self, now: float) -> None:
        """Stop each worker whose every call thread is stuck (its calls could only time out;
        `/healthz` says so to an orchestrator too), killing it if it has not gone within the
        grace period; it is replaced when it exits, as a dead one is."""
        for slot, pid in self.app.wedged_workers():
            if self.children.get(pid) != slot:
                continue  # a slot's previous worker, or one not yet counting
            if pid not in self.wedged:
                self.log.warning(
                    "every call thread of a worker is stuck; replacing it",
                    pid=pid,
                    worker=slot,
                    timeout_s=self.config.timeout,
                    stuck_restart_s=self.config.stuck_restart,
                )
                self.wedged[pid] = now + self.grace + 5.0
                _kill(pid, signal.SIGTERM)
        for pid, kill_at in self.wedged.items():
            if now > kill_at:
                _kill(pid, signal.SIGKILL)


def _worker(app: Any, slot: int, config: ServeConfig, parent: int) -> None:
    """The body of a forked worker; never returns."""
    code = 1
    try:
        _die_with_parent(parent)
        # Its metrics go to its own block of the mapping all workers share, so a scrape of
        # any worker shows the whole server.
        app.set_worker(slot)
        from .. import _core

        server = _core.Server(app, config, reuse_port=True)
        stopping: list[float] = []

        def shutdown() -> None:
            stopping.append(time.monotonic())
            server.shutdown()

        with on_signals(shutdown):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
            server.wait()
        from .process import exit_if_calls_left

        since = stopping[0] if stopping else None
        exit_if_calls_left(Log(config.log_format), app, server, config, since)
        code = 0
    except BaseException as err:
        print(f"takeout: worker {os.getpid()} failed: {err}", file=sys.stderr)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    """Ask Linux to send SIGTERM if the supervisor dies (SIGKILL cannot be forwarded)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(0)


def _reserve(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except AttributeError:
        sock.close()
        raise ServeError(
            "several workers need SO_REUSEPORT, which this platform lacks; use --workers 1"
        ) from None
    except OSError as err:
        sock.close()
        raise ServeError(
            f"cannot listen on {host}:{port}: {err.strerror}; pick another `--port` or stop "
            "what uses it"
        ) from None
    return sock


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _exit_cause(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return signal.Signals(sig).name
        except ValueError:
            return f"signal {sig}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
