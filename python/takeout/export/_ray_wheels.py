"""`--with-ray`: `ray[serve]` and what it needs, added to an image for KubeRay.

uv resolves the requirement for the image's Python and platform with the bundle's pins held
fixed (the model's numpy stays the model's numpy), writes a PEP 751 lock with each file's
sha256, and the wheels are then chosen and fetched exactly as the bundle's own lock is.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .. import _uv
from ..errors import BundleError, UsageError
from . import _wheels


def resolve(
    manifest: dict[str, Any], target: _wheels.Target, requirement: str, chosen: list[_wheels.Wheel]
) -> list[_wheels.Wheel]:
    """The wheels `requirement` adds to `chosen` (the bundle's lock) on `target`."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        parsed = Requirement(requirement)
    except InvalidRequirement:
        raise UsageError(
            f"--with-ray `{requirement}` is not a requirement; write e.g. `ray[serve]==2.60.0`"
        ) from None
    if canonicalize_name(parsed.name) != "ray":
        raise UsageError(f"--with-ray `{requirement}` does not name ray; write `ray[serve]`")
    if not parsed.specifier:  # the Ray this machine runs, so the same export is the same bytes
        from importlib import metadata

        try:
            requirement = f"{requirement}=={metadata.version('ray')}"
        except metadata.PackageNotFoundError:
            pass
    pins = [w.pin for w in chosen]
    with tempfile.TemporaryDirectory(prefix="takeout-ray-") as tmp:
        lock = Path(tmp) / "pylock.toml"
        out = subprocess.run(
            [
                _uv.uv_bin(), "pip", "compile", "-", "-q", "--no-header",
                "--format", "pylock.toml", "-o", str(lock),
                "--python-version", target.minor,
                "--python-platform", f"{target.machine}-manylinux_2_28",
            ],
            input="\n".join([requirement, *pins]),
            capture_output=True,
            text=True,
            timeout=600,
        )  # fmt: skip
        if out.returncode != 0:
            why = _uv.reason(out.stderr.strip().splitlines(), out.returncode)
            raise BundleError(
                f"`{requirement}` cannot be installed beside the bundle's lock ({why}); pin "
                "another Ray version with --with-ray"
            )
        packages = _wheels.read_pylock(lock)
    have = {canonicalize_name(w.name) for w in chosen}
    accepted = {tag: rank for rank, tag in enumerate(target.tags())}
    added = []
    for package in sorted(packages, key=lambda p: str(p.get("name", "")).lower()):
        name, version = str(package.get("name", "")), str(package.get("version", ""))
        if canonicalize_name(name) in have:
            continue
        best = _wheels.best_wheel(package.get("wheels") or [], accepted)
        if best is None:
            raise BundleError(
                f"`{name}=={version}`, needed by `{requirement}`, has no wheel for "
                f"{target.label}; pin another Ray version with --with-ray"
            )
        added.append(
            _wheels.Wheel(
                name, version, best["filename"], best["sha256"], url=best["url"], source="ray"
            )
        )
    return added
