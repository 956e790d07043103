"""Build the Debian base image the container tests and benchmarks use, once per machine.

No image registry is reachable from CI, so `python:3.X-slim` cannot be pulled: the base is a
bookworm root filesystem made with mmdebstrap from the machine's own Debian mirrors (the ones
its apt sources name) and imported into podman's storage. Bookworm's python3 is 3.11. The image
is kept between runs (`podman image exists`), so only the first run pays the ~60 s.

    python3 containers/base_image.py [--tag localhost/bookworm-python:3.11]

Standard library only: it runs before the project's venv exists.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TAG = "localhost/bookworm-python:3.11"
SUITE = "bookworm"
HERE = Path(__file__).resolve().parent


def mirrors(apt_dir: Path = Path("/etc/apt")) -> tuple[str, str]:
    """The main and security mirror URIs of the machine's apt sources (one-line `deb` lines
    and deb822 `.sources` files), falling back to deb.debian.org."""
    main = security = None
    entries: list[tuple[str, list[str]]] = []
    lists = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in lists:
        for line in _read(path).splitlines():
            parts = line.split("#", 1)[0].split()
            if len(parts) >= 3 and parts[0] == "deb":
                rest = [p for p in parts[1:] if not p.startswith("[")]
                if len(rest) >= 2:
                    entries.append((rest[0], [rest[1]]))
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", _read(path)):
            fields = dict(
                (k.strip().lower(), v.strip())
                for k, _, v in (line.partition(":") for line in stanza.splitlines() if ":" in line)
                if not k.startswith("#")
            )
            if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
                for uri in fields.get("uris", "").split():
                    entries.append((uri, fields.get("suites", "").split()))
    for uri, suites in entries:
        if f"{SUITE}-security" in suites and security is None:
            security = uri
        elif SUITE in suites and main is None:
            main = uri
    return (
        main or "http://deb.debian.org/debian",
        security or "http://deb.debian.org/debian-security",
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def exists(tag: str) -> bool:
    return subprocess.run(["podman", "image", "exists", tag]).returncode == 0


def build(tag: str) -> None:
    for tool in ("podman", "mmdebstrap"):
        if shutil.which(tool) is None:
            sys.exit(f"base_image: `{tool}` is not installed; run `apt-get install {tool}`")
    main, security = mirrors()
    with tempfile.TemporaryDirectory(prefix="takeout-base-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        subprocess.run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=apt",
                "--include=python3,python3-venv,ca-certificates",
                # docs, man pages and locales are dead weight in a service image
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                "--dpkgopt=path-exclude=/usr/share/info/*",
                SUITE,
                str(rootfs),
                f"deb {main} {SUITE} main",
                f"deb {main} {SUITE}-updates main",
                f"deb {security} {SUITE}-security main",
            ],
            check=True,
        )
        subprocess.run(
            ["podman", "import", "--quiet", "--change", 'CMD ["/bin/bash"]', str(rootfs), tag],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default=TAG)
    args = parser.parse_args(argv)
    os.environ.setdefault("CONTAINERS_CONF", str(HERE / "containers.conf"))
    if exists(args.tag):
        print(f"base_image: {args.tag} exists")
        return 0
    build(args.tag)
    print(f"base_image: built {args.tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
