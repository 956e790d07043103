"""`takeout.verify`: prove a bundle runs in a clean virtual environment.

The check builds a fresh venv with `uv` for the bundle's Python, installs exactly the
bundle's lock (and the cloudpickle pin the stream needs), then loads the bundle there with
copies of `takeout._runtime` and its type table `takeout._types` (standard library only), run
in isolated mode from an empty directory, and replays every recorded example. Nothing of the
packing environment leaks in: no site-packages, no `PYTHONPATH`, not the notebook's folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from . import _runtime, _uv
from ._names import clip, normalize
from .bundle import PathLike, bundle_dir, read_manifest

Progress = Callable[[str], None]


@dataclass
class ExampleCheck:
    index: int
    ok: bool
    expected: Any = None
    output: Any = None
    error: Optional[str] = None
    #: How the output was compared (see `_runtime.EXAMPLE_CHECKS`).
    check: str = "exact"


@dataclass
class VerifyResult:
    """What `takeout.verify` found; `ok` is True only when the bundle loaded and every
    recorded example gave its recorded output."""

    bundle: str
    ok: bool
    python: str
    installed: list[str]
    examples: list[ExampleCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __bool__(self) -> bool:
        return self.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "ok": self.ok,
            "python": self.python,
            "installed": self.installed,
            "examples": [vars(e) for e in self.examples],
            "problems": self.problems,
            "seconds": round(self.seconds, 3),
        }

    def __str__(self) -> str:
        head = "ok" if self.ok else "FAILED"
        lines = [
            f"takeout verify · {self.bundle} · {head} in {self.seconds:.1f} s",
            f"  clean venv: {self.python}, {len(self.installed)} distributions: "
            + (", ".join(self.installed) or "(none)"),
        ]
        if not self.examples and self.ok:
            lines.append("  loaded; no examples recorded, so no call was checked")
        for check in self.examples:
            if check.ok:
                by = "" if check.check == "exact" else f" (same {check.check}: its result varies)"
                lines.append(f"  example {check.index + 1}: ok{by} → {_short_json(check.output)}")
            elif check.error:
                lines.append(f"  example {check.index + 1}: raised {check.error}")
            else:
                lines.append(
                    f"  example {check.index + 1}: returned {_short_json(check.output)}, "
                    f"expected {_short_json(check.expected)}"
                )
        lines.extend(f"  problem: {p}" for p in self.problems)
        return "\n".join(lines)


def verify(
    path: PathLike,
    *,
    find_links: Sequence[Union[str, os.PathLike[str]]] = (),
    offline: bool = False,
    progress: Union[bool, Progress] = False,
    keep: bool = False,
    signing_key: Union[str, bytes, None] = None,
) -> VerifyResult:
    """Check `path` in a fresh venv; see the module docstring. `progress=True` prints each
    step (and uv's install progress) to stderr; `keep=True` leaves the venv for inspection."""
    started = time.perf_counter()
    root = bundle_dir(path).resolve()
    manifest = read_manifest(root, signing_key=signing_key)
    say = _progress(progress)
    pins = list(dict.fromkeys([*manifest.get("lock", ()), *manifest.get("runtime", ())]))
    work = Path(tempfile.mkdtemp(prefix="takeout-verify-"))
    try:
        python = _make_venv(work / "venv", manifest, say)
        if pins:
            say(f"installing {len(pins)} distributions: {', '.join(pins)}")
            flags = _uv.index_flags(find_links, offline)
            _uv.run(
                ["pip", "install", "--python", str(python), *flags, *pins],
                show=progress is not False,
                what="installing the lock",
            )
        say("loading the bundle and running its examples in the clean venv")
        run_dir = work / "run"  # empty: nothing importable but the runtime itself
        run_dir.mkdir()
        runtime = run_dir / _runtime.RUNTIME_FILE
        shutil.copyfile(_runtime.__file__, runtime)
        shutil.copyfile(_runtime._types.__file__, run_dir / _runtime.TYPES_FILE)
        result_file = work / "result.json"
        out = subprocess.run(
            [str(python), "-I", str(runtime), str(root), str(result_file)],
            capture_output=True,
            text=True,
            cwd=run_dir,
            env=_clean_env(),
        )
        facts = _parse(out, result_file)
        result = _judge(manifest, facts, pins, _python_label(python))
    finally:
        if keep:
            say(f"kept the clean venv in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    result.seconds = time.perf_counter() - started
    return result


def _progress(progress: Union[bool, Progress]) -> Progress:
    if callable(progress):
        return progress
    if progress:
        return lambda message: print(f"takeout: {message}", file=sys.stderr, flush=True)
    return lambda message: None


def _make_venv(venv: Path, manifest: dict[str, Any], say: Progress) -> Path:
    want = manifest.get("python") or {}
    have = _runtime.python_facts()
    # The running interpreter is the fastest source when it is the bundle's kind and minor;
    # the venv never sees its site-packages either way.
    if (want.get("implementation"), want.get("minor")) == (have["implementation"], have["minor"]):
        interpreter = sys.executable  # uv starts from its base interpreter if it is a venv
    else:
        interpreter = f"{want.get('implementation', 'cpython')}{want.get('minor', '')}"
    say(f"creating a clean venv for {want.get('implementation')} {want.get('minor')}")
    _uv.run(["venv", "--python", interpreter, str(venv)], show=False, what="creating the venv")
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    return python


def _clean_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _python_label(python: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
    )
    return f"Python {out.stdout.strip() or '?'}"


def _parse(out: subprocess.CompletedProcess[str], result_file: Path) -> dict[str, Any]:
    try:
        parsed = json.loads(result_file.read_text(encoding="utf-8"))
        if isinstance(parsed, dict) and "loaded" in parsed:
            return parsed
    except (OSError, ValueError):
        pass  # the loader died before writing it (a crash in a C extension, say)
    tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
    return {
        "loaded": False,
        "error": {"type": "Crash", "message": f"the loader exited with {out.returncode}: {tail}"},
    }


def _judge(
    manifest: dict[str, Any], facts: dict[str, Any], pins: list[str], python: str
) -> VerifyResult:
    result = VerifyResult(bundle=str(manifest.get("name")), ok=False, python=python, installed=pins)
    if not facts.get("loaded"):
        result.problems.append("loading failed: " + _explain(facts.get("error") or {}))
        return result
    expected = manifest.get("examples", ())
    for raw in facts.get("examples", ()):
        index = raw["index"]
        want = expected[index]
        check = ExampleCheck(index=index, ok=bool(raw["ok"]), expected=want["output"])
        check.output = raw.get("output")
        check.check = want.get("check", "exact")
        if raw.get("error"):
            check.error = _explain(raw["error"])
            result.problems.append(f"example {index + 1} raised {check.error}")
        elif not check.ok:
            differs = "" if check.check == "exact" else f", whose {check.check} differs,"
            result.problems.append(
                f"example {index + 1} returned {_short_json(check.output)} but "
                f"{_short_json(check.expected)}{differs} was recorded at pack time"
            )
        result.examples.append(check)
    result.ok = not result.problems
    return result


def _explain(error: dict[str, Any]) -> str:
    """The error, and for a missing module the requirement that would bring it."""
    text = f"{error.get('type', 'Error')}: {error.get('message', '')}"
    module = error.get("module")
    if error.get("type") in ("ModuleNotFoundError", "ImportError") and module:
        dist = _distribution_of(module)
        if dist:
            return f"No module named {module!r} — add --require {dist}"
        return (
            f"No module named {module!r} — install the distribution that provides it and add "
            "--require NAME"
        )
    return text


def _distribution_of(module: str) -> Optional[str]:
    from . import _env

    env = _env.current()
    top = module.split(".")[0]
    resolution = env.resolve(top)
    if resolution.dist_id is None:
        return None
    name = env.distribution(resolution.dist_id).name
    return normalize(name)


def _short_json(value: Any) -> str:
    """A JSON value (an example's output) as one short line."""
    return clip(json.dumps(value, default=str), 80)
