"""The wheels an image installs: exactly the bundle's lock, for the bundle's Python and the
image's platform, each checked against the sha256 that `pylock.toml` records; and takeout's
own wheel.

Wheels are fetched once into takeout's cache (`wheels/<sha256>/<file>`), so a second export
of the same lock reads no network. Which wheel fits the target is decided with `packaging`'s
tag rules (the ones pip and uv follow), for CPython of the bundle's minor on glibc Linux
(manylinux up to glibc 2.36, Debian 12's, what `python:3.X-slim` and our base use).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import BundleError, UsageError

#: The newest glibc the target images have (Debian 12 bookworm).
GLIBC_MINOR = 36
_MANYLINUX_LEGACY = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


@dataclass(frozen=True)
class Wheel:
    name: str  # as the lock spells it
    version: str
    filename: str
    sha256: str
    url: Optional[str] = None  # None: from a wheelhouse or built here
    source: str = "pylock.toml"

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Target:
    """The interpreter and platform an image runs: CPython `minor` on glibc Linux `machine`."""

    minor: str
    machine: str

    @property
    def label(self) -> str:
        return f"CPython {self.minor} on manylinux {self.machine}"

    def tags(self) -> list[Any]:
        """Every wheel tag the target accepts, best first (packaging's order)."""
        from packaging import tags

        major, minor = (int(p) for p in self.minor.split("."))
        platforms = []
        for glibc in range(GLIBC_MINOR, 4, -1):
            platforms.append(f"manylinux_2_{glibc}_{self.machine}")
            if glibc in _MANYLINUX_LEGACY:
                platforms.append(f"{_MANYLINUX_LEGACY[glibc]}_{self.machine}")
        interpreter = f"cp{major}{minor}"
        found = list(
            tags.cpython_tags(
                (major, minor), abis=[interpreter, "abi3", "none"], platforms=platforms
            )
        )
        found += list(tags.compatible_tags((major, minor), interpreter, platforms))
        return found


def target_of(manifest: dict[str, Any]) -> Target:
    python = manifest.get("python") or {}
    implementation = python.get("implementation")
    if implementation != "cpython":
        raise UsageError(
            f"bundle `{manifest.get('name')}` was packed with `{implementation}`; container "
            "images are built for CPython, so pack it with CPython"
        )
    markers = python.get("markers") or {}
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(
        markers.get("platform_machine", "x86_64"), markers.get("platform_machine", "x86_64")
    )
    if markers.get("sys_platform", "linux") != "linux":
        machine = "x86_64"  # packed on macOS or Windows: the image is Linux all the same
    return Target(minor=str(python.get("minor")), machine=machine)


def read_pylock(path: Path) -> list[dict[str, Any]]:
    """The `[[packages]]` of a PEP 751 lock."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - 3.9/3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BundleError(
            f"`{path}` cannot be read as TOML ({err}); pack the bundle again"
        ) from None
    packages = data.get("packages", [])
    return packages if isinstance(packages, list) else []


def lock_wheels(
    bundle: Path, manifest: dict[str, Any], target: Target, wheelhouse: Optional[Path] = None
) -> list[Wheel]:
    """One wheel per pin of the lock, the best the target accepts: from `pylock.toml` (URL and
    sha256), or from `wheelhouse` for a pin the lock has no fitting wheel for."""
    from packaging.utils import canonicalize_name

    pins = list(dict.fromkeys([*manifest.get("lock", ()), *manifest.get("runtime", ())]))
    locked = {
        (canonicalize_name(str(p.get("name", ""))), str(p.get("version", ""))): p
        for p in read_pylock(bundle / "pylock.toml")
    }
    accepted = {tag: rank for rank, tag in enumerate(target.tags())}
    chosen: list[Wheel] = []
    for pin in sorted(pins, key=str.lower):
        name, _, version = pin.partition("==")
        entry = locked.get((canonicalize_name(name), version))
        wheels = (entry or {}).get("wheels") or []
        if entry is not None and not wheels and not entry.get("sdist"):
            raise BundleError(
                f"`{bundle}/pylock.toml` has no files for `{pin}` (the index was not reachable "
                "when it was packed); pack the bundle again with the index reachable"
            )
        best = best_wheel(wheels, accepted)
        if best is not None:
            chosen.append(
                Wheel(name, version, best["filename"], best["sha256"], url=best.get("url"))
            )
            continue
        local = _from_wheelhouse(wheelhouse, name, version, accepted)
        if local is not None:
            chosen.append(local)
            continue
        kinds = "only an sdist" if entry and entry.get("sdist") else "no wheel for it"
        raise BundleError(
            f"`{pin}` has no wheel for {target.label} (pylock.toml lists {kinds}); pass "
            "--wheelhouse DIR holding one you built (`pip wheel` on such a machine), or a "
            "--base-image with a compiler and build it there"
        )
    return chosen


def best_wheel(wheels: list[dict[str, Any]], accepted: dict[Any, int]) -> Optional[dict[str, Any]]:
    """The pylock.toml wheel entry the target ranks best (`accepted`: tag -> rank), if any."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    best: Optional[dict[str, Any]] = None
    best_rank = len(accepted)
    for wheel in wheels:
        url = str(wheel.get("url") or "")
        filename = str(wheel.get("name") or url.rsplit("/", 1)[-1])
        digest = (wheel.get("hashes") or {}).get("sha256")
        if not digest or not filename.endswith(".whl"):
            continue
        try:
            _, _, _, tags = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            continue
        rank = min((accepted[t] for t in tags if t in accepted), default=len(accepted))
        if rank < best_rank:
            best_rank = rank
            best = {"filename": filename, "sha256": digest, "url": url or None}
    return best


def _from_wheelhouse(
    wheelhouse: Optional[Path], name: str, version: str, accepted: dict[Any, int]
) -> Optional[Wheel]:
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    if wheelhouse is None:
        return None
    candidates = []
    for path in sorted(wheelhouse.glob("*.whl")):
        try:
            from packaging.utils import parse_wheel_filename

            wname, wversion, _, tags = parse_wheel_filename(path.name)
        except ValueError:
            continue
        if canonicalize_name(wname) != canonicalize_name(name) or wversion != Version(version):
            continue
        rank = min((accepted[t] for t in tags if t in accepted), default=None)
        if rank is not None:
            candidates.append((rank, path))
    if not candidates:
        return None
    path = min(candidates)[1]
    return Wheel(name, version, path.name, _sha256(path), url=None, source=str(path))


def fetch(wheels: list[Wheel], dest: Path, wheelhouse: Optional[Path] = None) -> None:
    """Put every wheel in `dest`: from the cache, the wheelhouse or its URL, its sha256
    checked each time it is copied in."""
    from ..bundle import cache_root

    cache = cache_root() / "wheels"
    dest.mkdir(parents=True, exist_ok=True)
    for wheel in wheels:
        out = dest / wheel.filename
        if wheel.url is None:  # wheelhouse or built here: hashed when chosen
            shutil.copyfile(wheel.source, out)
        else:
            cached = cache / wheel.sha256 / wheel.filename
            if not cached.is_file() or _sha256(cached) != wheel.sha256:
                local = wheelhouse / wheel.filename if wheelhouse else None
                if local is not None and local.is_file() and _sha256(local) == wheel.sha256:
                    _store(local.read_bytes(), cached)
                else:
                    _download(wheel, cached)
            shutil.copyfile(cached, out)
        os.chmod(out, 0o644)
        if _sha256(out) != wheel.sha256:
            raise BundleError(
                f"`{wheel.filename}` does not match its sha256 in pylock.toml after copying; "
                "check the disk, then export again"
            )


def _download(wheel: Wheel, cached: Path) -> None:
    import urllib.error
    import urllib.request

    assert wheel.url is not None
    digest = hashlib.sha256()
    cached.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", dir=cached.parent)
    try:
        with os.fdopen(fd, "wb") as fh, urllib.request.urlopen(wheel.url, timeout=120) as resp:
            for block in iter(lambda: resp.read(1 << 20), b""):
                digest.update(block)
                fh.write(block)
        if digest.hexdigest() != wheel.sha256:
            raise BundleError(
                f"`{wheel.url}` does not match the sha256 pylock.toml records for `{wheel.pin}`; "
                "the index served other bytes: check it, or pack the bundle again"
            )
        os.replace(tmp_name, cached)
    except (OSError, urllib.error.URLError) as err:
        reason = getattr(err, "reason", None) or err
        raise BundleError(
            f"could not download `{wheel.filename}` ({reason}); check the network, or pass "
            "--wheelhouse DIR holding it"
        ) from None
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _store(data: bytes, cached: Path) -> None:
    cached.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".copy-", dir=cached.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp_name, cached)


def _sha256(path: Any) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ── takeout's own wheel ─────────────────────────────────────────────────────────────────────

TAKEOUT_WHEEL_ENV = "TAKEOUT_WHEEL"


def takeout_wheel(target: Target, explicit: Optional[str] = None) -> Wheel:
    """takeout's own wheel for the image: `--takeout-wheel`, `$TAKEOUT_WHEEL`, or built with
    maturin from the source checkout this takeout runs from.

    A built wheel is cached under a key made of the installed extension and Python sources, so
    the same checkout builds once; with a warm `target/` (CI runs `make install` first) even
    the first build is only maturin packing what cargo already compiled, a few seconds."""
    from .. import _core

    path_text = explicit or os.environ.get(TAKEOUT_WHEEL_ENV)
    version = _core.__version__
    if path_text:
        path = Path(path_text)
        if not path.is_file() or not path.name.endswith(".whl"):
            raise UsageError(
                f"takeout wheel `{path}` is not a wheel file; build one with "
                "`maturin build --release` or leave --takeout-wheel out"
            )
    else:
        path = _built_wheel()
    _check_fits(path, target)
    return Wheel("takeout", version, path.name, _sha256(path), url=None, source=str(path))


def _check_fits(path: Path, target: Target) -> None:
    from packaging.utils import parse_wheel_filename

    _, _, _, tags = parse_wheel_filename(path.name)
    if not set(tags) & set(target.tags()):
        raise UsageError(
            f"takeout wheel `{path.name}` does not install on {target.label}; build it for "
            "that platform (`maturin build --release`) and pass --takeout-wheel"
        )


def _source_root() -> Optional[Path]:
    import takeout

    root = Path(takeout.__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    try:
        if "[tool.maturin]" in pyproject.read_text(encoding="utf-8") and (root / "crates").is_dir():
            return root
    except OSError:
        pass
    return None


def _built_wheel() -> Path:
    from .. import _core
    from ..bundle import cache_root

    root = _source_root()
    if root is None:
        raise UsageError(
            "takeout's own wheel is needed in the image and this takeout was not installed "
            "from a source checkout; pass --takeout-wheel FILE (or set $TAKEOUT_WHEEL)"
        )
    key = hashlib.sha256()
    package = root / "python" / "takeout"
    for path in sorted([*package.rglob("*.py"), *package.rglob("*.pyi"), Path(_core.__file__)]):
        key.update(
            str(path.relative_to(package.parent) if package in path.parents else path.name).encode()
        )
        key.update(_sha256(path).encode())
    key.update((root / "pyproject.toml").read_bytes())
    cache = cache_root() / "wheels" / f"takeout-{key.hexdigest()[:16]}"
    found = sorted(cache.glob("takeout-*.whl"))
    if found:
        return found[0]
    maturin = shutil.which("maturin", path=str(Path(sys.executable).parent)) or shutil.which(
        "maturin"
    )
    if maturin is None:
        raise UsageError(
            "building takeout's own wheel needs maturin (`pip install maturin`); or pass "
            "--takeout-wheel FILE"
        )
    with tempfile.TemporaryDirectory(prefix="takeout-wheel-") as tmp:
        out = subprocess.run(
            [maturin, "build", "--release", "--quiet", "-o", tmp, "-i", sys.executable],
            cwd=root,
            capture_output=True,
            text=True,
        )
        built = sorted(Path(tmp).glob("takeout-*.whl"))
        if out.returncode != 0 or not built:
            tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
            raise BundleError(f"building takeout's wheel with maturin failed: {tail}")
        cache.mkdir(parents=True, exist_ok=True)
        final = cache / built[0].name
        shutil.copyfile(built[0], final.with_suffix(".part"))
        os.replace(final.with_suffix(".part"), final)
    return final
