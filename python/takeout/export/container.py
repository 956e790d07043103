"""`takeout export BUNDLE --to container`: a build context that needs no network.

    Containerfile        two stages: a venv built from the wheels, then the base with that
                         venv and the bundle (its own layer, last) and nothing else
    wheels/              exactly the bundle's lock for its Python and platform, each checked
                         against pylock.toml's sha256, plus takeout's own wheel
    wheels/requirements.txt   the same pins with their sha256 (pip installs with --require-hashes)
    bundle/              the bundle's files as its manifest lists them
    takeout-export.json  what was exported, with which options (no time stamps)

The same bundle and options write the same bytes: nothing depends on the time, the user or
the order a directory lists its files in.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from . import _wheels
from ._writer import write_text

#: Where things live in the image.
VENV = "/opt/venv"
BUNDLE = "/srv/bundle"
PORT = 8080
UID = 10001


@dataclass(frozen=True)
class ContainerOptions:
    base_image: Optional[str] = None  # default: python:3.X-slim for the bundle's minor
    blas_threads: Optional[int] = None  # default: takeout serve's own choice at start
    workers: int = 1
    with_ray: Optional[str] = None  # a `ray[serve]` requirement, for KubeRay
    wheelhouse: Optional[Path] = None
    takeout_wheel: Optional[str] = None

    def base_for(self, minor: str) -> str:
        return self.base_image or f"docker.io/library/python:{minor}-slim"

    def to_marker(self, minor: str) -> dict[str, Any]:
        return {
            "base_image": self.base_for(minor),
            "blas_threads": self.blas_threads,
            "workers": self.workers,
            "with_ray": self.with_ray,
        }


def write_context(
    bundle: Path, manifest: dict[str, Any], out: Path, options: ContainerOptions
) -> dict[str, Any]:
    """Fill the empty directory `out` with the build context; the marker's content."""
    target = _wheels.target_of(manifest)
    wheels = _wheels.lock_wheels(bundle, manifest, target, options.wheelhouse)
    if options.with_ray:
        from . import _ray_wheels

        wheels += _ray_wheels.resolve(manifest, target, options.with_ray, wheels)
    wheels.append(_wheels.takeout_wheel(target, options.takeout_wheel))
    _wheels.fetch(wheels, out / "wheels", options.wheelhouse)
    write_text(out / "wheels" / "requirements.txt", _requirements(wheels))
    copy_bundle(bundle, manifest, out / "bundle")
    base = options.base_for(target.minor)
    write_text(out / "Containerfile", containerfile(manifest, base, options))
    return {
        "target": "container",
        "bundle": manifest["name"],
        "bundle_sha256": _wheels._sha256(bundle / "manifest.json"),
        "python": target.label,
        "options": options.to_marker(target.minor),
        "wheels": [
            {"file": w.filename, "sha256": w.sha256, "from": w.url or "local"} for w in wheels
        ],
    }


def copy_bundle(bundle: Path, manifest: dict[str, Any], dest: Path) -> None:
    """The manifest and every file it lists (and nothing else: no stray editor files), with
    fixed modes; hashes were checked by `read_manifest` before."""
    for rel in sorted(["manifest.json", *manifest.get("files", {})]):
        to = dest / rel
        to.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle / rel, to)
        os.chmod(to, 0o644)
    for directory in sorted({p for p in dest.rglob("*") if p.is_dir()} | {dest}):
        os.chmod(directory, 0o755)


def _requirements(wheels: list[_wheels.Wheel]) -> str:
    lines = ["# exactly these files: pip install --no-index --require-hashes --no-deps"]
    for wheel in sorted(wheels, key=lambda w: w.name.lower()):
        lines.append(f"{wheel.pin} --hash=sha256:{wheel.sha256}")
    return "\n".join(lines) + "\n"


def containerfile(manifest: dict[str, Any], base: str, options: ContainerOptions) -> str:
    minor = str(manifest["python"]["minor"])
    name = str(manifest["name"])
    check = (
        "import sys; have = '%d.%d' % sys.version_info[:2]; "
        f"sys.exit(0 if have == '{minor}' else 'takeout: the base image has Python ' + have "
        f"+ ' but bundle `{name}` needs {minor}; pass --base-image with Python {minor}')"
    )
    env = [
        f"PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        # the root filesystem is read-only: no .pyc writes (the venv is compiled at build),
        # every cache under /tmp
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
        "HOME=/tmp",
        "TAKEOUT_CACHE_DIR=/tmp/takeout",
        f"PORT={PORT}",  # `takeout serve` listens on $PORT; platforms may set another
    ]
    if options.blas_threads is not None:
        env.append(f"TAKEOUT_BLAS_THREADS={options.blas_threads}")
    serve = [f"{VENV}/bin/takeout", "serve", BUNDLE, "--host", "0.0.0.0"]
    if options.workers != 1:
        serve += ["--workers", str(options.workers)]
    env_lines = " \\\n    ".join(env)
    return f"""\
# Written by `takeout export --to container` for bundle `{name}`; build offline:
#   podman build -t IMAGE .      (or docker build, or buildah bud)
# Stage 1 makes the venv from the wheels in this directory, nothing from the network.
FROM {base} AS venv
RUN ["python3", "-c", {json.dumps(check)}]
COPY wheels/ /tmp/wheels/
RUN python3 -m venv {VENV} \\
 && {VENV}/bin/python -m pip install --quiet --no-index --no-deps --require-hashes \\
      --no-cache-dir --disable-pip-version-check -r /tmp/wheels/requirements.txt \\
      --find-links /tmp/wheels \\
 && {VENV}/bin/python -m pip uninstall --quiet --yes pip setuptools

# Stage 2: the base, the venv and the bundle. No compiler, no pip, no wheels, no caches.
FROM {base}
COPY --from=venv {VENV} {VENV}
RUN echo 'takeout:x:{UID}:{UID}:takeout:/tmp:/usr/sbin/nologin' >> /etc/passwd \\
 && echo 'takeout:x:{UID}:' >> /etc/group
ENV {env_lines}
USER {UID}:{UID}
WORKDIR /tmp
EXPOSE {PORT}
STOPSIGNAL SIGTERM
LABEL org.opencontainers.image.title={json.dumps(name)} \\
      io.takeout.bundle={json.dumps(name)} \\
      io.takeout.python={json.dumps(minor)}
# The bundle last: a new model rebuilds this one layer.
COPY bundle/ {BUNDLE}/
ENTRYPOINT {json.dumps(serve)}
"""
