"""The running interpreter's environment: installed distributions, stdlib, local code.

`current()` returns an `Environment` built on the Rust index of every distribution on
`sys.path`; it is cached and rebuilt only when `sys.path` or a modification time of one of
its directories changes (installing or removing a distribution touches its site directory),
so a warm `takeout.deps` pays nothing for it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Optional

from . import _core, _markers
from ._stdlib import STDLIB_MODULE_NAMES
from .report import LockEntry

Origin = Literal["stdlib", "builtin", "distribution", "local", "unresolved"]


@dataclass(frozen=True)
class Resolution:
    """Where a module comes from."""

    origin: Origin
    dist_id: Optional[int] = None
    #: The file the module is (or would be) loaded from, when known.
    file: Optional[str] = None


def _norm(path: str) -> str:
    return os.path.normpath(os.path.abspath(path))


def _stdlib_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths.get("stdlib"), paths.get("platstdlib"), os.path.dirname(os.__file__)}
    return tuple(sorted(_norm(d) + os.sep for d in dirs if d))


def _site_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths.get("purelib"), paths.get("platlib")}
    return tuple(sorted(_norm(d) + os.sep for d in dirs if d))


class Environment:
    """An index of the distributions on a search path, and module classification on top."""

    def __init__(self, search_path: list[str]) -> None:
        self.search_path = search_path
        self.index = _core.EnvIndex(search_path)
        self._stdlib_dirs = _stdlib_dirs()
        self._site_dirs = _site_dirs()
        self._cache: dict[str, Resolution] = {}

    def distribution(self, dist_id: int) -> _core.Distribution:
        return self.index.distribution(dist_id)

    def resolve(self, module: str) -> Resolution:
        """Classify dotted module name `module`, importing nothing.

        Files first: a module that is imported (or whose top-level package can be found) is
        looked up by its file, so the module that `sys.path` order would really load decides,
        and namespace packages resolve to the distribution that installed the file.
        """
        hit = self._cache.get(module)
        if hit is None:
            hit = self._cache[module] = self._resolve(module)
        return hit

    def _resolve(self, module: str) -> Resolution:
        top = module.partition(".")[0]
        if top == "__main__":
            return Resolution("local")
        if top in sys.builtin_module_names or module in sys.builtin_module_names:
            return Resolution("builtin")
        if top in STDLIB_MODULE_NAMES:
            return Resolution("stdlib")
        loaded = sys.modules.get(module)
        if loaded is not None:
            file = _module_file(loaded)
            if file is not None:
                return self._by_file(file)
            # A namespace package or a module without a file: only its name can tell.
            dist = self.index.find_by_module(module)
            return Resolution("distribution", dist) if dist is not None else Resolution("local")
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError, AttributeError):
            spec = None
        if spec is not None and spec.origin and spec.has_location:
            if top == module:
                return self._by_file(spec.origin)
            top_res = self._by_file(spec.origin)
            if top_res.origin != "distribution":
                return Resolution(top_res.origin, None, None)
        dist = self.index.find_by_module(module)
        if dist is not None:
            return Resolution("distribution", dist)
        if spec is not None:
            # A namespace package that no distribution claims: the user's own directories.
            return Resolution("local")
        return Resolution("unresolved")

    def _by_file(self, file: str) -> Resolution:
        path = _norm(file)
        dist = self.index.find_by_file(path)
        if dist is not None:
            return Resolution("distribution", dist, path)
        if path.startswith(self._stdlib_dirs) and not path.startswith(self._site_dirs):
            return Resolution("stdlib", None, path)
        return Resolution("local", None, path)


def _module_file(module: object) -> Optional[str]:
    try:
        file = getattr(module, "__file__", None)
    except Exception:  # a hostile module object: treat it as file-less
        return None
    return file if isinstance(file, str) and file else None


def _fingerprint() -> tuple[object, ...]:
    stamps: list[Optional[int]] = []
    for entry in sys.path:
        try:
            stamps.append(os.stat(entry or ".").st_mtime_ns)
        except OSError:
            stamps.append(None)
    return (tuple(sys.path), tuple(stamps))


_current: Optional[tuple[tuple[object, ...], Environment]] = None


def current() -> Environment:
    """The environment of this interpreter, rebuilt only when it changed."""
    global _current
    key = _fingerprint()
    if _current is None or _current[0] != key:
        search = [_norm(p or ".") for p in sys.path]
        _current = (key, Environment(search))
    return _current[1]


@lru_cache(maxsize=1)
def marker_values() -> dict[str, str]:
    """PEP 508 marker values of this interpreter (what `Requires-Dist` markers test)."""
    return _markers.marker_values()


def lock(
    index: _core.EnvIndex,
    roots: Sequence[tuple[int, Collection[str]]],
    markers: dict[str, str],
    skip: Collection[str] = (),
) -> tuple[list[LockEntry], list[str], list[str]]:
    """The lock of `roots` (distribution ids and their extras) under `markers`: its entries
    (less the normalized names in `skip`), the requirements it could not satisfy and the
    `Requires-Dist` lines it could not read, each as one sentence."""
    if not roots:
        return [], [], []
    closure = index.lock([(i, sorted(extras)) for i, extras in roots], markers)
    entries = []
    for dist_id, _extras, required_by in closure.packages:
        d = index.distribution(dist_id)
        if d.normalized not in skip:
            entries.append(LockEntry(d.name, d.version, tuple(required_by)))
    missing = [
        f"`{req}` (required by {by}) is not satisfied"
        + (f": {installed} is installed" if installed else ": it is not installed")
        for req, by, installed in closure.missing
    ]
    unreadable = [
        f"`{req}` (Requires-Dist of {by}) is not a valid requirement ({reason}); "
        "it was left out of the lock, add it with `require=` if it is needed"
        for req, by, reason in closure.unparsable
    ]
    return entries, missing, unreadable
