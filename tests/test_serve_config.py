"""`takeout.serving.ServeConfig`: every serving option declared once, with its default, its
check, its `TAKEOUT_*` variable and its flag, and the same answers from every entry point (the
Python API, `takeout serve`, `takeout.asgi:from_env`, the background launcher)."""

from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import takeout
import takeout.asgi
from takeout.bundle import SIGNING_KEY_ENV
from takeout.errors import UsageError
from takeout.serving import ServeConfig, parse_size
from takeout.serving.config import DEFAULTS, OPTIONS

from .test_serve import bundles_fixture, post  # noqa: F401  (a fixture)


def parse(*argv: str, environ: dict[str, str]) -> ServeConfig:
    parser = argparse.ArgumentParser()
    ServeConfig.add_arguments(parser)
    return ServeConfig.from_args(parser.parse_args(argv), environ)


def test_every_option_has_a_flag_and_a_variable_of_its_own_name() -> None:
    names = [f.name for f in dataclasses.fields(ServeConfig)]
    assert [o.name for o in OPTIONS] == names
    for option in OPTIONS:
        assert option.flag == "--" + option.name.replace("_", "-")
        assert option.env == "TAKEOUT_" + option.name.upper()
    # The loader reads the same variable for the signing key.
    assert {o.env for o in OPTIONS if o.secret} == {"TAKEOUT_TOKEN", SIGNING_KEY_ENV}


def test_a_flag_wins_over_the_environment_which_wins_over_the_default() -> None:
    environ = {"TAKEOUT_TIMEOUT": "5", "TAKEOUT_MAX_BODY": "1KiB", "TAKEOUT_ACCESS_LOG": "yes"}
    config = parse("--timeout=7", "--threads", "3", environ=environ)
    assert config.timeout == 7.0  # flag
    assert config.threads == 3
    assert config.max_body == 1024  # environment
    assert config.access_log is True
    assert config.port == DEFAULTS.port == 8000  # default
    assert parse("--no-access-log", environ=environ).access_log is False


def test_the_python_api_reads_only_the_secrets_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TAKEOUT_TOKEN", "from-env")
    monkeypatch.setenv("TAKEOUT_TIMEOUT", "not a number")
    config = ServeConfig.create(threads=2)
    assert config.token == "from-env"
    assert config.timeout == 60.0
    assert ServeConfig.create(token="given").token == "given"
    # An empty token is none at all, from anywhere.
    assert ServeConfig.create(token="").token is None


def test_round_trip_through_the_command_line() -> None:
    config = ServeConfig(
        host="0.0.0.0",
        port=0,
        workers=3,
        token="t",
        max_body="2MiB",
        timeout=1.5,
        grace=0,
        log_format="json",
        debug=True,
        signing_key="k",
    )
    argv = config.to_argv()
    assert not any("t" == a.split("=")[-1] or "k" == a.split("=")[-1] for a in argv), argv
    env = config.child_env({"TAKEOUT_TOKEN": "stale", "PATH": "/bin"})
    assert env == {"TAKEOUT_TOKEN": "t", "TAKEOUT_SIGNING_KEY": "k", "PATH": "/bin"}
    assert parse(*argv, environ=env) == config
    # A secret that is not set must not come back from the parent's environment.
    bare = dataclasses.replace(config, token=None)
    assert "TAKEOUT_TOKEN" not in bare.child_env({"TAKEOUT_TOKEN": "stale"})


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"timeout": 0}, "timeout `0` must be a positive number of seconds"),
        ({"grace": -1}, "grace `-1` must be a number of seconds, 0 or more"),
        ({"threads": 0}, "threads `0` must be a whole number, at least 1"),
        ({"workers": 1.5}, "workers `1.5` must be a whole number, at least 1"),
        ({"port": 70000}, "port `70000` must be a port number from 0 to 65535"),
        ({"max_body": "lots"}, "max_body `lots` is not a size"),
        ({"log_format": "xml"}, "log_format `xml` is unknown; use `text` or `json`"),
        ({"debug": "maybe"}, "debug `maybe` is not a yes or no"),
        ({"max_concurency": 3}, "`max_concurency` is not a serving option; did you mean"),
        ({"max_connections": 0}, "max_connections `0` must be a whole number, at least 1"),
        ({"stuck_restart": "soon"}, "stuck_restart `soon` must be a number of seconds, 0 or more"),
        (
            {"body_budget": "1MiB"},
            "body_budget `1048576` (`--body-budget`) is smaller than max_body `10485760`, so a "
            "body of the largest size could never be received",
        ),
    ],
)
def test_a_bad_option_is_one_sentence(given: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match="^" + re.escape(message)):
        ServeConfig.create(**given)
    with pytest.raises(UsageError):
        takeout.serve(lambda x: x, background=True, **given)


def test_bad_values_name_the_flag_or_the_variable(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^TAKEOUT_TIMEOUT `soon` must be a positive number"):
        ServeConfig.from_env({"TAKEOUT_TIMEOUT": "soon"})
    with pytest.raises(UsageError, match=r"^--workers `two` must be a whole number"):
        parse("--workers=two", environ={})
    r = subprocess.run(
        [sys.executable, "-m", "takeout.cli", "serve", str(tmp_path), "--io-threads=0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr == "takeout: error: --io-threads `0` must be a whole number, at least 1\n"


def test_a_config_is_given_whole_or_not_at_all() -> None:
    config = ServeConfig(timeout=5)
    assert ServeConfig.resolve(config, port=DEFAULTS.port) is config
    with pytest.raises(UsageError, match=r"^`threads` is given beside `config`"):
        takeout.serve(lambda x: x, config=config, threads=2)
    with pytest.raises(UsageError, match=r"^`config` must be a `takeout\.serving\.ServeConfig`"):
        takeout.serve(lambda x: x, config={"timeout": 5})  # type: ignore[arg-type]


def test_sizes() -> None:
    assert parse_size("10MiB") == 10 << 20
    assert parse_size("512k") == 512_000
    assert parse_size("1MB") == 1_000_000
    assert parse_size(1048576) == 1048576
    with pytest.raises(UsageError, match=r"^`0` is not a size"):
        parse_size(0)


def test_the_asgi_factory_reads_every_variable(
    bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAKEOUT_BUNDLE", str(bundles["probe"]))
    monkeypatch.setenv("TAKEOUT_TIMEOUT", "4.5")
    monkeypatch.setenv("TAKEOUT_MAX_BODY", "64KiB")
    monkeypatch.setenv("TAKEOUT_BODY_TIMEOUT", "7")
    app = takeout.asgi.from_env()
    assert (app.core.timeout, app.core.max_body, app.body_timeout) == (4.5, 65536, 7.0)
    monkeypatch.setenv("TAKEOUT_THREADS", "none")
    with pytest.raises(UsageError, match=r"^TAKEOUT_THREADS `none`"):
        takeout.asgi.from_env()


@pytest.mark.slow
def test_the_background_launcher_passes_the_config_whole(
    bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The child `takeout serve` inherits this environment; its flags must win over it.
    monkeypatch.setenv("TAKEOUT_TIMEOUT", "garbage")
    monkeypatch.delenv("TAKEOUT_TOKEN", raising=False)
    with takeout.serve(
        bundles["probe"], port=0, workers=2, background=True, token="s3cret", timeout=1
    ) as handle:
        assert handle is not None
        url = handle.url + "/call"
        assert post(url, {"x": 1}).status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        assert httpx.post(url, json={"x": 2}, headers=auth).json() == {"result": 4}
        slow = httpx.post(url, json={"x": 2.5, "mode": "sleep"}, headers=auth, timeout=30)
        assert slow.status_code == 504
