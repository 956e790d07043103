"""Run the core test suites on every CPython takeout supports, from the one abi3 wheel.

The whole suite runs on the interpreter of `.venv`; this builds the wheel once, makes a venv per
other minor with uv (holding the wheel and the core suites' test dependencies only) and runs
the scanner, analysis, bundle, schema and slicer suites there. The opcode tables, the pickle
stream and the type annotations differ per minor, so these are the suites a minor can break.

An interpreter is found on PATH as `python3.N`, else under `pyenv root`. A missing one is
skipped with a line saying so, except under CI, where it fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MINORS = ("3.9", "3.10", "3.11", "3.12", "3.13")
SUITES = (
    "tests/test_pickle_scan.py",
    "tests/test_bytecode_scan.py",
    "tests/test_env_index.py",
    "tests/test_deps_seed.py",
    "tests/test_deps_patterns.py",
    "tests/test_deps_errors.py",
    "tests/test_report.py",
    "tests/test_names.py",
    "tests/test_tuples.py",
    "tests/test_schema.py",
    "tests/test_runtime.py",
    "tests/test_bundle.py",
    "tests/test_bundle_integrity.py",
    "tests/test_bundle_attacks.py",
    "tests/test_notebook_slice.py",
)
# What those suites import beyond the wheel's own dependencies.
TEST_DEPS = (
    "pytest>=8",
    "hypothesis>=6",
    "numpy",
    "scikit-learn",
    "pandas",
    "pyyaml",
    "jsonschema>=4.18",
    "pydantic>=2",
    "httpx",
    "nbformat",
    "polars",
    "importlib_metadata; python_version < '3.11'",
)


def log(message: str) -> None:
    print(f"[pythons] {message}", file=sys.stderr, flush=True)


def works(python: str) -> bool:
    # A pyenv shim exists for every installed minor but only runs the selected ones.
    try:
        return subprocess.run([python, "-c", ""], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find(minor: str) -> str | None:
    on_path = shutil.which(f"python{minor}")
    if on_path and works(on_path):
        return on_path
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
        versions = sorted(Path(root, "versions").glob(f"{minor}.*"), reverse=True)
        for version in versions:
            candidate = version / "bin" / f"python{minor}"
            if version.name.split(".")[:2] == minor.split(".") and works(str(candidate)):
                return str(candidate)
    return None


def run(*args: str, **kwargs: object) -> None:
    subprocess.run(args, check=True, **kwargs)  # type: ignore[call-overload]


def build_wheel(venv: Path, out: Path) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    log("building the abi3 wheel (release; cargo reuses the build `make install` made)")
    run(str(venv / "bin" / "maturin"), "build", "--release", "-q", "--out", str(out), cwd=ROOT)
    (wheel,) = out.glob("takeout-*.whl")
    return wheel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default=".venv", help="the project venv (maturin, uv)")
    parser.add_argument("minors", nargs="*", help="default: every supported one but this one's")
    args = parser.parse_args()
    # The whole suite already runs on this interpreter's minor.
    this = f"{sys.version_info.major}.{sys.version_info.minor}"
    args.minors = args.minors or [minor for minor in MINORS if minor != this]
    venv = (ROOT / args.venv).resolve()
    uv = str(venv / "bin" / "uv")
    found = {minor: find(minor) for minor in args.minors}
    missing = [minor for minor, python in found.items() if python is None]
    if missing and os.environ.get("CI"):
        log(f"no interpreter for CPython {', '.join(missing)}: CI must test every minor")
        return 1
    for minor in missing:
        log(f"skipping CPython {minor}: no python{minor} on PATH or under pyenv")
    wheel = build_wheel(venv, ROOT / "target" / "wheels-abi3")
    failed = []
    for minor, python in found.items():
        if python is None:
            continue
        env_dir = ROOT / ".venvs" / f"py{minor}"
        log(f"CPython {minor}: {python}")
        run(uv, "venv", "-q", "--allow-existing", "--python", python, str(env_dir))
        target = str(env_dir / "bin" / "python")
        run(uv, "pip", "install", "-q", "--python", target, "--reinstall-package", "takeout",
            str(wheel), *TEST_DEPS)  # fmt: skip
        # From a folder of its own so `import takeout` is the wheel, not the source tree.
        tests = subprocess.run(
            [target, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT),
             "-c", str(ROOT / "pyproject.toml"), *(str(ROOT / s) for s in SUITES)],
            cwd=env_dir,
            env={**os.environ, "VIRTUAL_ENV": str(env_dir)},
        )  # fmt: skip
        if tests.returncode != 0:
            failed.append(minor)
    if failed:
        log(f"the core suites failed on CPython {', '.join(failed)}")
        return 1
    log(f"the core suites pass on CPython {', '.join(m for m, p in found.items() if p)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
