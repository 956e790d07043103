"""The container engines an export drives: podman, docker or buildah, found on `PATH`.

Each is a thin layer over the engine's own command line (no SDK: podman's and docker's CLIs
take the same flags for what we do, and buildah builds without any OCI runtime).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import BundleError, UsageError

ENGINES = ("podman", "docker", "buildah")
_INSTALL = "install podman (`apt-get install podman`) or docker, or pass --engine"


@dataclass(frozen=True)
class Engine:
    name: str
    path: str

    @property
    def can_run(self) -> bool:
        return self.name in ("podman", "docker")

    def command(self, *args: str) -> list[str]:
        return [self.path, *args]

    def run(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout)

    def image_exists(self, image: str) -> bool:
        if self.name == "docker":
            return self.run("image", "inspect", image).returncode == 0
        if self.name == "buildah":
            return self.run("inspect", "--type", "image", image).returncode == 0
        return self.run("image", "exists", image).returncode == 0

    def build(self, context: Path, tag: str, *, quiet_log: Optional[Path] = None) -> None:
        """Build `context` as `tag`; a failure is the one sentence the build printed (the
        Containerfile's own checks start with `takeout:`), else the build's last line."""
        if self.name == "buildah":
            args = ["bud", "--isolation", "chroot", "--layers", "-f", "Containerfile"]
        else:
            args = ["build", "-f", "Containerfile"]
        if self.name != "docker":
            args.append("--pull=missing")  # a local base never sends a registry request
        args += ["-t", tag, str(context)]
        with subprocess.Popen(
            self.command(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            cwd=context,
        ) as proc:
            assert proc.stdout is not None
            lines = [line.rstrip() for line in proc.stdout]
        if quiet_log is not None:
            quiet_log.write_text("\n".join(lines) + "\n", encoding="utf-8")
        if proc.returncode != 0:
            raise BundleError(f"{self.name} build failed: {_reason(lines)}")

    def size(self, image: str) -> int:
        """Bytes of the image as the engine counts them (uncompressed layers)."""
        if self.name == "buildah":  # buildah prints no byte count; its storage is podman's
            return 0
        out = self.run("image", "inspect", "--format", "{{.Size}}", image)
        try:
            return int(out.stdout.strip().splitlines()[0])
        except (ValueError, IndexError):
            return 0

    def save(self, image: str, archive: Path) -> None:
        """An archive for a registry-less hand-over (`podman load`, `docker load`,
        `ctr import`)."""
        archive.parent.mkdir(parents=True, exist_ok=True)
        if self.name == "podman":
            args = ["save", "--format", "oci-archive", "-o", str(archive), image]
        elif self.name == "docker":
            args = ["save", "-o", str(archive), image]
        else:
            args = ["push", image, f"oci-archive:{archive}"]
        out = self.run(*args)
        if out.returncode != 0:
            raise BundleError(
                f"{self.name} could not save `{image}` to `{archive}`: "
                f"{_reason(out.stderr.splitlines())}"
            )


def find(name: Optional[str] = None) -> Engine:
    """`name`, or the first of podman, docker, buildah on PATH; one sentence when none is."""
    if name is not None:
        if name not in ENGINES:
            raise UsageError(f"engine `{name}` is unknown; use podman, docker or buildah")
        path = shutil.which(name)
        if path is None:
            raise UsageError(f"engine `{name}` is not installed; install it or {_INSTALL}")
        return Engine(name, path)
    for candidate in ENGINES:
        path = shutil.which(candidate)
        if path is not None:
            return Engine(candidate, path)
    raise UsageError(f"no container engine found (podman, docker or buildah); {_INSTALL}")


def _reason(lines: list[str]) -> str:
    for line in lines:
        text = line.strip()
        if text.startswith("takeout:"):  # the Containerfile's own checks (not its echo)
            return text[len("takeout:") :].strip()
    meaningful = [line.strip() for line in lines if line.strip()]
    for line in reversed(meaningful):
        if line.lower().startswith(("error", "erro")):
            return line
    return meaningful[-1] if meaningful else "no output"
