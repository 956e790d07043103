"""What `takeout.deps` returns: modules, distributions, pins and the reasons for each."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Optional

from ._names import normalize

ModuleOrigin = Literal["stdlib", "builtin", "distribution", "local", "unresolved"]
DistKind = Literal["index", "local", "editable"]


@dataclass(frozen=True)
class ModuleInfo:
    """One module the function needs, and why."""

    name: str
    origin: ModuleOrigin
    #: Name of the distribution that provides it (as in METADATA), for origin "distribution".
    distribution: Optional[str]
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class DistributionInfo:
    """One distribution (or local module tree shipped by value) the function needs."""

    name: str
    version: Optional[str]
    kind: DistKind
    modules: tuple[str, ...]
    reasons: tuple[str, ...]
    #: The line for requirements.txt (`name==version`), or None for code shipped by value.
    requirement: Optional[str] = None


@dataclass(frozen=True)
class LockEntry:
    name: str
    version: str
    required_by: tuple[str, ...]

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass
class Report:
    """The result of `takeout.deps(fn)`."""

    function: str
    python: str
    distributions: list[DistributionInfo]
    modules: list[ModuleInfo]
    lock_entries: list[LockEntry]
    #: Requirements of the lock that no installed distribution satisfies.
    missing: list[str] = field(default_factory=list)
    #: Distributions or modules removed by `exclude`, with the reason.
    excluded: list[str] = field(default_factory=list)
    #: What loading the pickle needs from takeout's own runtime (cloudpickle), pinned.
    runtime: list[str] = field(default_factory=list)
    #: Submodules the loader must import before calling (attribute chains such as np.linalg).
    loader_imports: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def requirements(self) -> list[str]:
        """Direct pinned requirements, e.g. `["numpy==2.1.3", "scikit-learn==1.5.2"]`."""
        return [d.requirement for d in self.distributions if d.requirement]

    @property
    def lock(self) -> list[str]:
        """The transitive pinned closure of `requirements`."""
        return [entry.pin for entry in self.lock_entries]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """The inverse of `to_dict()`, for a report made in another process (a kernel)."""
        return cls(
            function=data["function"],
            python=data["python"],
            distributions=[
                DistributionInfo(
                    d["name"],
                    d["version"],
                    d["kind"],
                    tuple(d["modules"]),
                    tuple(d["reasons"]),
                    d.get("requirement"),
                )
                for d in data["distributions"]
            ],
            modules=[
                ModuleInfo(m["name"], m["origin"], m["distribution"], tuple(m["reasons"]))
                for m in data["modules"]
            ],
            lock_entries=[
                LockEntry(e["name"], e["version"], tuple(e["required_by"])) for e in data["lock"]
            ],
            missing=list(data.get("missing", ())),
            excluded=list(data.get("excluded", ())),
            runtime=list(data.get("runtime", ())),
            loader_imports=list(data.get("loader_imports", ())),
            warnings=list(data.get("warnings", ())),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "python": self.python,
            "requirements": self.requirements,
            "distributions": [asdict(d) for d in self.distributions],
            "modules": [asdict(m) for m in self.modules],
            "lock": [asdict(e) for e in self.lock_entries],
            "missing": list(self.missing),
            "excluded": list(self.excluded),
            "runtime": list(self.runtime),
            "loader_imports": list(self.loader_imports),
            "warnings": list(self.warnings),
        }

    def _rows(self) -> list[tuple[str, str, str, str]]:
        return [
            (d.name, d.version or "", d.kind, "; ".join(d.reasons[:3]) + _more(d.reasons, 3))
            for d in self.distributions
        ]

    def __str__(self) -> str:
        lines = [f"takeout deps · {self.function} · {self.python}"]
        rows = self._rows()
        if rows:
            widths = [
                max(len(r[i]) for r in [*rows, ("distribution", "version", "kind", "")])
                for i in range(3)
            ]
            head = ("distribution", "version", "kind", "why")
            for row in [head, *rows]:
                cells = [row[i].ljust(widths[i]) for i in range(3)]
                lines.append("  " + "  ".join([*cells, row[3]]).rstrip())
        else:
            lines.append("  no distributions needed (standard library and builtins only)")
        if self.lock:
            lines.append(f"lock ({len(self.lock)}): " + ", ".join(self.lock))
        for label, items in (
            ("missing", self.missing),
            ("excluded", self.excluded),
            ("warning", self.warnings),
        ):
            lines.extend(f"{label}: {item}" for item in items)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"<takeout.Report {self.function}: {', '.join(self.requirements) or 'no requirements'}>"
        )

    def _repr_html_(self) -> str:
        esc = html.escape
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>"
            for row in self._rows()
        )
        notes = "".join(
            f"<li><b>{esc(label)}</b>: {esc(item)}</li>"
            for label, items in (
                ("missing", self.missing),
                ("excluded", self.excluded),
                ("warning", self.warnings),
            )
            for item in items
        )
        lock = esc(", ".join(self.lock)) or "(empty)"
        return (
            "<div class='takeout-report'><p><b>takeout deps</b> · "
            f"<code>{esc(self.function)}</code> · {esc(self.python)}</p>"
            "<table><thead><tr><th>distribution</th><th>version</th><th>kind</th><th>why</th>"
            f"</tr></thead><tbody>{body}</tbody></table>"
            f"<p><b>lock</b> ({len(self.lock)}): {lock}</p>"
            + (f"<ul>{notes}</ul>" if notes else "")
            + "</div>"
        )


# ── grouping modules into what provides them ────────────────────────────────────────────────


@dataclass(frozen=True)
class Provider:
    """What provides a needed module; the key modules are grouped under. An installed
    distribution (`index` or `editable`) carries the environment index's id, local code (a
    top-level module beside the notebook) none."""

    kind: DistKind
    name: str
    version: Optional[str] = None
    dist_id: Optional[int] = None


_BY_VALUE = {
    "editable": "editable install: its code travels by value",
    "local": "local code: travels by value",
}


def group_modules(
    needed: Iterable[tuple[str, Sequence[str], Provider]],
) -> dict[Provider, DistributionInfo]:
    """One `DistributionInfo` per provider of `(module, reasons, provider)`, with its modules
    and reasons in first-seen order; an index distribution is pinned to its version, code
    that travels by value says so in its last reason."""
    modules: dict[Provider, list[str]] = {}
    reasons: dict[Provider, dict[str, None]] = {}
    for module, why, provider in needed:
        modules.setdefault(provider, []).append(module)
        reasons.setdefault(provider, {}).update(dict.fromkeys(why))
    grouped = {}
    for provider, mods in modules.items():
        why = tuple(reasons[provider])
        by_value = _BY_VALUE.get(provider.kind)
        grouped[provider] = DistributionInfo(
            provider.name,
            provider.version,
            provider.kind,
            tuple(mods),
            (*why, by_value) if by_value else why,
            f"{provider.name}=={provider.version}" if provider.kind == "index" else None,
        )
    return grouped


def in_report_order(distributions: Iterable[DistributionInfo]) -> list[DistributionInfo]:
    """Requirements first, then code shipped by value; each by normalized name."""
    return sorted(distributions, key=lambda d: (d.kind != "index", normalize(d.name)))


def _more(items: tuple[str, ...], shown: int) -> str:
    return f" (+{len(items) - shown} more)" if len(items) > shown else ""
