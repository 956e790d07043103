"""Serving a function over HTTP: `takeout.serve` and `takeout serve`.

Everything on the request path is Rust (`takeout._core.App`, `takeout._core.Server`); this
module loads the bundle, hands the function and its manifest to Rust, and runs the process:

- one worker: serve until SIGTERM/SIGINT, drain in-flight calls, exit 0;
- `workers=N`: load the bundle once, then fork N worker processes that each serve the same
  port (SO_REUSEPORT, so the kernel spreads connections), supervised: a worker that dies —
  even of a segfault in a C extension — is replaced with backoff while the others serve on;
- `background=True`: a `Handle` with `.url` and `.stop()`, for notebooks and tests.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .errors import ServeError, UsageError

__all__ = ["Handle", "parse_size", "resolve_port", "serve", "serve_function"]

TOKEN_ENV = "TAKEOUT_TOKEN"
# Knative, KServe serverless, Cloud Run and Heroku-style platforms say where to listen here.
PORT_ENV = "PORT"
DEFAULT_PORT = 8000
DEFAULT_MAX_BODY = 10 << 20
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Handle:
    """A server running in the background. `stop()` drains it; also a context manager."""

    def __init__(self, name: str, url: str, stop: Callable[[float], None]) -> None:
        self.name = name
        self.url = url
        self._stop = stop
        self._stopped = False

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1].rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting, let in-flight calls finish (at most `timeout` seconds), return."""
        if not self._stopped:
            self._stopped = True
            self._stop(timeout)

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "serving"
        return f"<takeout.serving.Handle {self.name!r} {state} at {self.url}>"


def serve(
    path: Union[str, os.PathLike[str], Callable[..., Any]],
    host: str = "127.0.0.1",
    port: Optional[int] = None,
    workers: int = 1,
    background: bool = False,
    *,
    token: Optional[str] = None,
    max_body: Union[int, str] = DEFAULT_MAX_BODY,
    timeout: float = 60.0,
    max_concurrency: int = 1024,
    threads: int = 8,
    io_threads: int = 1,
    grace: float = 30.0,
    body_timeout: float = 30.0,
    log_format: str = "text",
    access_log: bool = False,
    debug: bool = False,
    signing_key: Union[str, bytes, None] = None,
    blas_threads: Optional[int] = None,
) -> Optional[Handle]:
    """Serve the bundle at `path` (or, in a notebook, a function directly) over HTTP.

    Blocks until SIGTERM/SIGINT unless `background=True`, which returns a `Handle` with
    `.url` and `.stop()`. `port` defaults to `$PORT`, else 8000. `token` (default
    `$TAKEOUT_TOKEN`) requires `Authorization: Bearer`. Routes and errors are those of
    DESIGN.md's HTTP contract. `blas_threads` (default `$TAKEOUT_BLAS_THREADS`, else each
    worker's share of the CPUs) limits BLAS/OpenMP threads per worker; 0 leaves them alone.
    """
    port = resolve_port(port)
    options = _options(
        token, max_body, timeout, max_concurrency, threads, log_format, access_log, debug
    )
    server_options = {"io_threads": io_threads, "grace": grace, "body_timeout": body_timeout}
    blas = _blas_threads(blas_threads, workers)
    if background and workers > 1 and not callable(path):
        return _background_processes(
            Path(path), host, port, workers, signing_key, options, server_options, blas
        )
    if not (background and callable(path)):
        # Not in a notebook's own process: limiting its BLAS would slow the user's kernel.
        _apply_blas_threads(blas, workers, _Log(options["log_format"]))
    if callable(path):
        fn, manifest = _describe(path)
    else:
        from .bundle import load_with_manifest

        fn, manifest = load_with_manifest(path, signing_key=signing_key)
    return _serve(fn, manifest, host, port, workers, background, options, server_options)


def serve_function(
    fn: Callable[..., Any],
    manifest: dict[str, Any],
    host: str = "127.0.0.1",
    port: Optional[int] = None,
    workers: int = 1,
    background: bool = False,
    *,
    token: Optional[str] = None,
    max_body: Union[int, str] = DEFAULT_MAX_BODY,
    timeout: float = 60.0,
    max_concurrency: int = 1024,
    threads: int = 8,
    io_threads: int = 1,
    grace: float = 30.0,
    body_timeout: float = 30.0,
    log_format: str = "text",
    access_log: bool = False,
    debug: bool = False,
) -> Optional[Handle]:
    """`serve` for a callable and a manifest dict (`name`, `function`, `examples` as a bundle's
    manifest has them); `fn` receives plain JSON-derived arguments."""
    port = resolve_port(port)
    options = _options(
        token, max_body, timeout, max_concurrency, threads, log_format, access_log, debug
    )
    server_options = {"io_threads": io_threads, "grace": grace, "body_timeout": body_timeout}
    return _serve(fn, manifest, host, port, workers, background, options, server_options)


def _blas_threads(value: Optional[int], workers: int) -> tuple[int, str]:
    """BLAS threads per worker and where the number came from."""
    from . import _threads

    source = "--blas-threads"
    if value is None:
        text = os.environ.get(_threads.ENV, "").strip()
        if not text:
            return _threads.default_threads(workers), "default"
        source = f"${_threads.ENV}"
        try:
            value = int(text)
        except ValueError:
            value = -1
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(
            f"{source} `{value if source == '--blas-threads' else text}` must be a whole "
            "number of threads (0 leaves the libraries' own default)"
        )
    return value, source


def _apply_blas_threads(blas: tuple[int, str], workers: int, log: _Log) -> None:
    from . import _threads

    threads, source = blas
    if threads == 0:
        log.info("blas threads left to the libraries", source=source)
        return
    how = _threads.limit(threads)
    log.info(
        "blas threads",
        per_worker=threads,
        cpus=_threads.available_cpus(),
        workers=workers,
        source=source,
        applied=how,
    )


def resolve_port(port: Optional[int]) -> int:
    """`port` itself when given, else `$PORT`, else 8000."""
    if port is None:
        text = os.environ.get(PORT_ENV, "").strip()
        if not text:
            return DEFAULT_PORT
        try:
            port = int(text)
        except ValueError:
            port = -1
        if not 0 <= port <= 65535:
            raise UsageError(
                f"`$PORT` is `{text}`, not a port number; set it to an integer from 0 to 65535 "
                "or pass `--port`"
            )
        return port
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise UsageError(f"port `{port}` is not a port number; use an integer from 0 to 65535")
    return port


def parse_size(value: Union[int, str]) -> int:
    """`10MiB`, `512k`, `1MB`, `1048576` → bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value > 0:
            return value
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?)(i?)b?\s*", str(value), re.I)
        if match:
            number, unit, binary = match.groups()
            base = 1024 if binary or not unit else 1000
            power = " kmg".index(unit.lower() or " ")
            size = int(float(number) * base**power)
            if size > 0:
                return size
    raise UsageError(f"`{value}` is not a size; write it like `10MiB`, `512KiB` or `1048576`")


# ── one process ─────────────────────────────────────────────────────────────────────────────


def _options(
    token: Optional[str],
    max_body: Union[int, str],
    timeout: float,
    max_concurrency: int,
    threads: int,
    log_format: str,
    access_log: bool,
    debug: bool,
) -> dict[str, Any]:
    if log_format not in ("text", "json"):
        raise UsageError(f"log format `{log_format}` is unknown; use `text` or `json`")
    if not timeout > 0:
        raise UsageError(f"timeout `{timeout}` must be a positive number of seconds")
    for name, value in (("max_concurrency", max_concurrency), ("threads", threads)):
        if value < 1:
            raise UsageError(f"{name} `{value}` must be at least 1")
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    return {
        "token": token,
        "max_body": parse_size(max_body),
        "timeout": float(timeout),
        "max_concurrency": max_concurrency,
        "threads": threads,
        "log_format": log_format,
        "access_log": access_log,
        "debug": debug,
    }


def _serve(
    fn: Callable[..., Any],
    manifest: dict[str, Any],
    host: str,
    port: int,
    workers: int,
    background: bool,
    options: dict[str, Any],
    server_options: dict[str, Any],
) -> Optional[Handle]:
    from . import _core

    if workers < 1:
        raise UsageError(f"workers `{workers}` must be at least 1")
    app = _core.App(fn, json.dumps(manifest), workers=workers, **options)
    log = _Log(options["log_format"])
    if background:
        if workers != 1:
            raise UsageError(
                "background=True with a function runs one worker in this process; "
                "pack it and serve the bundle path to run several"
            )
        server = _core.Server(app, host, port, **server_options)

        def stop(timeout: float) -> None:
            server.stop(timeout)
            app.close()

        return Handle(app.name, server.url, stop)
    if workers == 1:
        # Handlers first: a SIGTERM that lands while the server starts still drains it.
        started: list[Any] = []
        stopping: list[bool] = []

        def stop() -> None:
            stopping.append(True)
            for server in started:
                server.shutdown()

        with _signals(stop):
            server = _core.Server(app, host, port, **server_options)
            started.append(server)
            if stopping:
                server.shutdown()
            log.info("serving", name=app.name, url=server.url, workers=1, pid=os.getpid())
            server.wait()
        log.info("stopped", name=app.name)
        return None
    _Supervisor(app, host, port, workers, server_options, log).run()
    return None


class _signals:
    """SIGTERM/SIGINT call `stop()` once; a second signal exits at once."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self.stop = stop
        self.seen = 0
        self.previous: dict[int, Any] = {}

    def handle(self, signum: int, frame: Any) -> None:
        self.seen += 1
        if self.seen > 1:
            os._exit(128 + signum)
        self.stop()

    def __enter__(self) -> _signals:
        for sig in _SIGNALS:
            self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self.previous.items():
            signal.signal(sig, previous)


def _describe(fn: Callable[..., Any]) -> tuple[Callable[..., Any], dict[str, Any]]:
    """A manifest for a live function, as `takeout.pack` would write it, without packing."""
    from . import _runtime, schema

    name = getattr(fn, "__name__", None) or type(fn).__name__
    function = {"qualname": getattr(fn, "__qualname__", name), **schema.describe(fn)}
    manifest = {"name": re.sub(r"[^A-Za-z0-9_.-]", "_", name), "function": function}
    return (_runtime.converter(fn) or fn), manifest


# ── several processes ───────────────────────────────────────────────────────────────────────


class _Supervisor:
    """Forks `workers` processes after the function is loaded; each binds the port with
    SO_REUSEPORT and serves. A dead worker is replaced (at once the first time, then with
    backoff while it keeps dying young); SIGTERM/SIGINT are forwarded and the supervisor
    exits 0 once every worker has drained."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        workers: int,
        server_options: dict[str, Any],
        log: _Log,
    ) -> None:
        self.app = app
        self.host = host
        self.workers = workers
        self.server_options = server_options
        self.log = log
        self.children: dict[int, int] = {}
        self.born: dict[int, float] = {}
        self.failures = [0] * workers
        self.due: dict[int, float] = {}
        self.stopping = False
        self.deadline = 0.0
        # Bound but never listening: it holds the port (and resolves port 0) without taking
        # any connection, which only listening sockets of the group receive.
        self.reserve = _reserve(host, port)
        self.port = self.reserve.getsockname()[1]

    def run(self) -> None:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _SIGNALS}
        try:
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.log.info(
                "serving",
                name=self.app.name,
                url=f"http://{host}:{self.port}",
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
        self.log.info("stopped", name=self.app.name)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.stopping:
            for pid in self.children:
                _kill(pid, signal.SIGKILL)
            os._exit(128 + signum)
        self.stopping = True
        self.deadline = time.monotonic() + self.server_options["grace"] + 5.0
        for pid in self.children:
            _kill(pid, signal.SIGTERM)

    def _spawn(self, slot: int) -> None:
        # Blocked across fork: a signal landing before the child installs its own handlers
        # would otherwise run the supervisor's, which signals every sibling.
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                self.reserve.close()
                _worker(self.app, slot, self.host, self.port, self.server_options, os.getppid())
            self.children[pid] = slot
            self.born[pid] = time.monotonic()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)

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
                for slot, when in list(self.due.items()):
                    if now >= when and not self.stopping:
                        del self.due[slot]
                        self._spawn(slot)
                time.sleep(0.02)
                continue
            slot = self.children.pop(pid, None)
            lived = now - self.born.pop(pid, now)
            if slot is None or self.stopping:
                continue
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


def _worker(
    app: Any, slot: int, host: str, port: int, server_options: dict[str, Any], parent: int
) -> None:
    """The body of a forked worker; never returns."""
    code = 1
    try:
        _die_with_parent(parent)
        app.set_worker(slot)
        from . import _core

        server = _core.Server(app, host, port, reuse_port=True, **server_options)
        with _signals(server.shutdown):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
            server.wait()
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


def _background_processes(
    path: Path,
    host: str,
    port: int,
    workers: int,
    signing_key: Union[str, bytes, None],
    options: dict[str, Any],
    server_options: dict[str, Any],
    blas: tuple[int, str],
) -> Handle:
    """Several workers in the background: `takeout serve` in a child process of its own."""
    import subprocess
    import urllib.request

    if port == 0:
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
    argv = [
        sys.executable,
        "-m",
        "takeout.cli",
        "serve",
        str(path),
        f"--host={host}",
        f"--port={port}",
        f"--workers={workers}",
        f"--max-body={options['max_body']}",
        f"--timeout={options['timeout']}",
        f"--max-concurrency={options['max_concurrency']}",
        f"--threads={options['threads']}",
        f"--io-threads={server_options['io_threads']}",
        f"--grace={server_options['grace']}",
        f"--body-timeout={server_options['body_timeout']}",
        f"--log-format={options['log_format']}",
        f"--blas-threads={blas[0]}",
    ]
    if options["access_log"]:
        argv.append("--access-log")
    if options["debug"]:
        argv.append("--debug")
    env = dict(os.environ)
    if options["token"]:
        env[TOKEN_ENV] = options["token"]  # not on the command line, where `ps` shows it
    if signing_key is not None:
        key = signing_key.decode() if isinstance(signing_key, bytes) else signing_key
        env["TAKEOUT_SIGNING_KEY"] = key
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise ServeError(f"`takeout serve {path}` exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise ServeError(f"`takeout serve {path}` did not become ready within 120 s")
        time.sleep(0.05)

    def stop(timeout: float) -> None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    name = path.name[: -len(".takeout")] if path.name.endswith(".takeout") else path.name
    return Handle(name, url, stop)


class _Log:
    """The supervisor's lines, in the same two formats as the Rust server's."""

    def __init__(self, format: str) -> None:
        self.format = format

    def info(self, msg: str, **fields: Any) -> None:
        self._emit("info", msg, fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self._emit("warning", msg, fields)

    def _emit(self, level: str, msg: str, fields: dict[str, Any]) -> None:
        now = time.time()
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        if self.format == "json":
            line = json.dumps(
                {"ts": ts, "level": level, "logger": "takeout.serve", "msg": msg, **fields}
            )
        else:
            parts = [f"{ts} {level.upper():<7} takeout.serve: {msg}"]
            for k, v in fields.items():
                text = str(v)
                parts.append(f"{k}={json.dumps(text) if (' ' in text or not text) else text}")
            line = " ".join(parts)
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
