"""One serving configuration: every option of `takeout serve`, `takeout.serve`, the ASGI
factories, `%takeout serve` and the background launcher, declared once.

Each field of `ServeConfig` carries its default, its check (which also turns the text of a flag
or an environment variable into the value), its `TAKEOUT_*` environment variable and its
`--flag`. Adding an option is one field here (and, if Rust reads it, one field of the Rust
struct in `crates/takeout-py/src/config.rs`, which receives the object whole).

Where the values come from:
- the Python API (`takeout.serve`, `serve_function`, `takeout.asgi.app`/`from_function`):
  its arguments, then the defaults; secrets (`token`, `signing_key`) not given come from their
  environment variable, so that they need not be written in a notebook;
- the process entry points (`takeout serve`, `%takeout serve`, `takeout.asgi:from_env`): the
  flags, then the `TAKEOUT_*` environment, then the defaults.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Optional, Union

from ..errors import UsageError

__all__ = ["DEFAULTS", "OPTIONS", "Option", "ServeConfig", "parse_size"]

ENV_PREFIX = "TAKEOUT_"

# ── how a value is given: (value from Python or text from a flag/env, its label) → value ────


def parse_size(value: Union[int, str]) -> int:
    """`10MiB`, `512k`, `1MB`, `1048576` → bytes."""
    return _size(value, "")


def _size(value: Any, label: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value > 0:
            return value
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?)(i?)b?\s*", value, re.I)
        if match:
            number, unit, binary = match.groups()
            base = 1024 if binary or not unit else 1000
            power = " kmg".index(unit.lower() or " ")
            size = int(float(number) * base**power)
            if size > 0:
                return size
    raise UsageError(
        f"{label} `{value}` is not a size; write it like `10MiB`, `512KiB` or `1048576`".lstrip()
    )


def _size_or_none(value: Any, label: str) -> Optional[int]:
    # None: a default worked out from `max_body` (it must hold at least one such body).
    return None if value is None else _size(value, label)


def _whole(value: Any, label: str, low: int, high: Optional[int], rule: str) -> int:
    number: Optional[int] = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        number = int(value)
    if number is None or number < low or (high is not None and number > high):
        raise UsageError(f"{label} `{value}` must be {rule}")
    return number


def _threads_or_share(value: Any, label: str) -> Optional[int]:
    # None: each worker's share of the CPUs, worked out at start (it depends on `workers`).
    if value is None:
        return None
    return _whole(value, label, 0, None, "a whole number of threads, 0 or more")


def _count(value: Any, label: str) -> int:
    return _whole(value, label, 1, None, "a whole number, at least 1")


def _port(value: Any, label: str) -> int:
    if value is None:
        # Knative, KServe serverless, Cloud Run and Heroku-style platforms say where to listen
        # in `$PORT`; read when the configuration is made, so a notebook's `takeout.serve`
        # sees what the process has now.
        text = os.environ.get("PORT", "").strip()
        if not text:
            return 8000
        value, label = text, "`$PORT`"
    return _whole(value, label, 0, 65535, "a port number from 0 to 65535 (0 picks a free one)")


def _number(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _seconds(value: Any, label: str) -> float:
    number = _number(value)
    if number is None or not (math.isfinite(number) and number > 0):
        raise UsageError(f"{label} `{value}` must be a positive number of seconds")
    return number


def _seconds_or_zero(value: Any, label: str) -> float:
    number = _number(value)
    if number is None or not (math.isfinite(number) and number >= 0):
        raise UsageError(f"{label} `{value}` must be a number of seconds, 0 or more")
    return number


_YES = ("1", "true", "yes", "on")
_NO = ("0", "false", "no", "off", "")


def _switch(value: Any, label: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _YES + _NO:
        return value.strip().lower() in _YES
    raise UsageError(f"{label} `{value}` is not a yes or no; use `1` or `0`")


def _host(value: Any, label: str) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise UsageError(f"{label} `{value}` is not an address; use e.g. `127.0.0.1` or `0.0.0.0`")


def _host_names(value: Any, label: str) -> str:
    # Comma-separated, so that it is one flag and one environment variable like the others.
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    if isinstance(value, str):
        names = [n.strip() for n in value.split(",") if n.strip()]
        bad = [
            n for n in names if not re.fullmatch(r"[A-Za-z0-9._\-]+(:\d+)?|\[[0-9A-Fa-f:.]+\]", n)
        ]
        if not bad:
            return ",".join(names)
        value = bad[0]
    raise UsageError(
        f"{label} `{value}` is not a host name; give names like `api.example` or "
        "`api.example,10.0.0.5`, separated by commas"
    )


def _log_format(value: Any, label: str) -> str:
    if value in ("text", "json"):
        return str(value)
    raise UsageError(f"{label} `{value}` is unknown; use `text` or `json`")


def _secret(value: Any, label: str) -> Union[str, bytes, None]:
    # An empty secret is no secret: `TAKEOUT_TOKEN=` turns the token off.
    if value is None or isinstance(value, (str, bytes)):
        return value or None
    raise UsageError(f"{label} must be text, not a `{type(value).__name__}`")


# ── the fields ──────────────────────────────────────────────────────────────────────────────


def _option(
    default: Any,
    convert: Callable[[Any, str], Any],
    help: str,
    *,
    metavar: Optional[str] = None,
    secret: bool = False,
    shown: Optional[str] = None,
) -> Any:
    spec = {
        "convert": convert,
        "help": help,
        "metavar": metavar,
        "secret": secret,
        "shown": shown or ("none" if default is None else str(default)),
    }
    return field(default=default, repr=not secret, metadata={"takeout": spec})


@dataclass(frozen=True)
class ServeConfig:
    """Every serving option, checked on construction; `dataclasses.replace` checks again."""

    host: str = _option("127.0.0.1", _host, "address to bind", metavar="ADDRESS")
    port: int = _option(
        None, _port, "port; 0 picks a free one", metavar="PORT", shown="$PORT, else 8000"
    )
    workers: int = _option(
        1, _count, "worker processes sharing the port, restarted when they die", metavar="N"
    )
    token: Optional[str] = _option(
        None,
        _secret,
        "require `Authorization: Bearer TOKEN` on calls and metrics",
        metavar="TOKEN",
        secret=True,
    )
    max_body: int = _option(10 << 20, _size, "largest request body", metavar="SIZE", shown="10MiB")
    timeout: float = _option(60.0, _seconds, "a call running longer gets a 504", metavar="SECONDS")
    max_concurrency: int = _option(
        1024,
        _count,
        "calls queued or running per worker; past it, 503 with Retry-After",
        metavar="N",
    )
    max_connections: int = _option(
        4096,
        _count,
        "open connections per worker; past it the longest-idle keep-alive one is closed, and "
        "with none idle a new one gets 503 with Retry-After (lowered to fit the open-file limit)",
        metavar="N",
    )
    body_budget: Optional[int] = _option(
        None,
        _size_or_none,
        "bytes of request bodies being received at once per worker, over all connections; "
        "past it, 503 with Retry-After",
        metavar="SIZE",
        shown="128MiB, or --max-body if larger",
    )
    threads: int = _option(8, _count, "threads running the function per worker", metavar="N")
    io_threads: int = _option(1, _count, "threads doing HTTP and JSON per worker", metavar="N")
    grace: float = _option(
        30.0,
        _seconds_or_zero,
        "on SIGTERM, how long in-flight calls may still run",
        metavar="SECONDS",
    )
    stuck_restart: float = _option(
        30.0,
        _seconds_or_zero,
        "once every call thread has been in a call past --timeout this much longer, /healthz "
        "answers 503 and the supervisor replaces the worker; 0 never",
        metavar="SECONDS",
    )
    body_timeout: float = _option(
        30.0,
        _seconds,
        "a request body must arrive within this; slower clients get a 408",
        metavar="SECONDS",
    )
    allow_host: str = _option(
        "",
        _host_names,
        "on a loopback bind, `Host` names answered beside the loopback ones (comma-separated); "
        "other binds answer any `Host`",
        metavar="NAMES",
        shown="loopback names only",
    )
    log_format: str = _option("text", _log_format, "`text` or `json`", metavar="FORMAT")
    access_log: bool = _option(False, _switch, "log one line per request")
    debug: bool = _option(False, _switch, "include the traceback in 500 responses")
    signing_key: Union[str, bytes, None] = _option(
        None, _secret, "key for a signed bundle", metavar="KEY", secret=True
    )
    blas_threads: Optional[int] = _option(
        None,
        _threads_or_share,
        "BLAS/OpenMP threads per worker; 0 leaves the libraries' own default",
        metavar="N",
        shown="the CPUs this process may use // workers",
    )

    def __post_init__(self) -> None:
        for option in OPTIONS:
            value = option.convert(getattr(self, option.name), option.name)
            object.__setattr__(self, option.name, value)
        if self.body_budget is not None and self.body_budget < self.max_body:
            raise UsageError(
                f"body_budget `{self.body_budget}` (`--body-budget`) is smaller than max_body "
                f"`{self.max_body}`, so a body of the largest size could never be received; "
                "raise the budget or lower `--max-body`"
            )

    @classmethod
    def create(cls, **given: Any) -> ServeConfig:
        """The Python API's configuration: `given`, then the defaults; secrets not given come
        from their environment variable."""
        return cls._gather(given, os.environ, lambda option: option.name, secrets_only=True)

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None, **given: Any) -> ServeConfig:
        """`given`, then the `TAKEOUT_*` variables of `environ` (default `os.environ`), then the
        defaults."""
        environ = os.environ if environ is None else environ
        return cls._gather(given, environ, lambda option: option.name)

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, environ: Optional[Mapping[str, str]] = None
    ) -> ServeConfig:
        """The flags `add_arguments` declared, then the environment, then the defaults."""
        given = {o.name: getattr(args, o.dest) for o in OPTIONS if hasattr(args, o.dest)}
        environ = os.environ if environ is None else environ
        return cls._gather(given, environ, lambda option: option.flag)

    @classmethod
    def resolve(cls, config: Optional[ServeConfig], **given: Any) -> ServeConfig:
        """The Python API's `config=` or its separate options, never both."""
        if config is None:
            return cls.create(**given)
        if not isinstance(config, ServeConfig):
            raise UsageError(
                f"`config` must be a `takeout.serving.ServeConfig`, not a `{type(config).__name__}`"
            )
        for name, value in given.items():
            if name not in _BY_NAME or value != getattr(DEFAULTS, name):
                raise UsageError(
                    f"`{name}` is given beside `config`; set it in the config instead "
                    f"(`dataclasses.replace(config, {name}=...)`)"
                )
        return config

    @classmethod
    def _gather(
        cls,
        given: Mapping[str, Any],
        environ: Mapping[str, str],
        label: Callable[[Option], str],
        *,
        secrets_only: bool = False,
    ) -> ServeConfig:
        for name in given:
            if name not in _BY_NAME:
                close = difflib.get_close_matches(name, _BY_NAME, n=1)
                hint = f"did you mean `{close[0]}`?" if close else "see `takeout serve --help`"
                raise UsageError(f"`{name}` is not a serving option; {hint}")
        values: dict[str, Any] = {}
        for option in OPTIONS:
            if option.name in given:
                values[option.name] = option.convert(given[option.name], label(option))
            elif option.env in environ and (option.secret or not secrets_only):
                values[option.name] = option.convert(environ[option.env], option.env)
        return cls(**values)

    @staticmethod
    def add_arguments(
        parser: argparse.ArgumentParser, names: Optional[Collection[str]] = None
    ) -> None:
        """One flag per option (of those in `names`, default all); a flag not given leaves
        the option to the environment."""
        for option in OPTIONS:
            if names is not None and option.name not in names:
                continue
            help = f"{option.help} (default: {option.shown}; ${option.env})"
            if option.metavar is None:
                help += f"; `--no-{option.flag[2:]}` turns it off"
            if option.metavar is None:
                # A switch and its `--no-` form (argparse's BooleanOptionalAction prints a
                # suppressed default into the help on Python 3.9).
                for flag, value, text in (
                    (option.flag, True, help),
                    ("--no-" + option.flag[2:], False, argparse.SUPPRESS),
                ):
                    parser.add_argument(
                        flag,
                        dest=option.dest,
                        action="store_const",
                        const=value,
                        default=argparse.SUPPRESS,
                        help=text,
                    )
            else:
                parser.add_argument(
                    option.flag,
                    dest=option.dest,
                    metavar=option.metavar,
                    default=argparse.SUPPRESS,
                    help=help,
                )

    def to_argv(self) -> list[str]:
        """`takeout serve` flags for every option but the secrets, which `child_env` carries
        (the command line of a process is visible to every user of the machine)."""
        argv = []
        for option in OPTIONS:
            value = getattr(self, option.name)
            if option.secret or value is None:
                continue
            if isinstance(value, bool):
                argv.append(option.flag if value else "--no-" + option.flag[2:])
            else:
                argv.append(f"{option.flag}={value}")
        return argv

    def child_env(self, environ: Mapping[str, str]) -> dict[str, str]:
        """`environ` with the secrets of this config, for a `takeout serve` started with
        `to_argv()`."""
        env = dict(environ)
        for option in OPTIONS:
            if option.secret:
                value = getattr(self, option.name)
                env.pop(option.env, None)
                if value is not None:
                    env[option.env] = value.decode() if isinstance(value, bytes) else value
        return env


@dataclass(frozen=True)
class Option:
    """How one field of `ServeConfig` is given."""

    name: str
    help: str
    convert: Callable[[Any, str], Any]
    metavar: Optional[str]
    secret: bool
    shown: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def dest(self) -> str:
        # Prefixed: a subcommand's option must not overwrite the namespace's own (`--debug`).
        return "serve_" + self.name


OPTIONS: tuple[Option, ...] = tuple(
    Option(name=f.name, **f.metadata["takeout"]) for f in fields(ServeConfig)
)
_BY_NAME = {option.name: option for option in OPTIONS}
# The port given: the defaults must not depend on `$PORT`, which is read (and can be wrong)
# only when a configuration is made to serve with.
DEFAULTS = ServeConfig(port=8000)
