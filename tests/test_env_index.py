"""`takeout._core.EnvIndex`, its lock and `parse_requirement`, against `importlib.metadata`
and `packaging` on the real test environment, plus synthetic site directories for the shapes
the environment does not have (namespace packages, broken metadata)."""

from __future__ import annotations

import importlib.metadata
import os
import re
import sys
from collections import defaultdict, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

import takeout.errors
from takeout._core import EnvIndex, parse_requirement


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def index() -> EnvIndex:
    return EnvIndex(sys.path)


@pytest.fixture(scope="module")
def installed() -> dict[str, importlib.metadata.Distribution]:
    """importlib.metadata's view: the first distribution of each normalised name wins."""
    first: dict[str, importlib.metadata.Distribution] = {}
    for dist in importlib.metadata.distributions():
        first.setdefault(normalize(dist.metadata["Name"]), dist)
    return first


def name_of(index: EnvIndex, dist_id: Optional[int]) -> Optional[str]:
    return None if dist_id is None else index.distribution(dist_id).normalized


# ── the real environment ────────────────────────────────────────────────────────────────────


def test_lists_the_distributions_importlib_finds(index, installed):
    ours = {(d.normalized, d.version) for d in index.distributions}
    theirs = {(name, dist.version) for name, dist in installed.items()}
    assert ours == theirs
    assert len(index) == len(installed)
    assert index.skipped == []
    for name in ("scikit-learn", "PyYAML", "python-dateutil", "numpy"):
        assert name_of(index, index.find_by_name(name)) == normalize(name)
    assert index.find_by_name("scikit_learn") == index.find_by_name("Scikit.Learn")
    assert index.find_by_name("no-such-distribution") is None


def test_every_recorded_file_maps_back_to_its_distribution(index, installed):
    owners: dict[str, set[str]] = defaultdict(set)
    for name, dist in installed.items():
        for file in dist.files or ():
            path = os.path.normpath(file.locate())
            if os.path.exists(path):
                owners[path].add(name)
    assert len(owners) > 1000, "the test environment should have real packages installed"
    paths = sorted(owners)
    found = index.find_by_files(paths)
    # A file two distributions both record goes to the first; which one that is within a
    # single directory is listing order, so either owner is right.
    wrong = {
        path: (name_of(index, dist_id), owners[path])
        for path, dist_id in zip(paths, found)
        if name_of(index, dist_id) not in owners[path]
    }
    assert wrong == {}
    assert found[:50] == [index.find_by_file(path) for path in paths[:50]]


def test_find_by_module_agrees_with_packages_distributions(index):
    checked, wrong = 0, {}
    if sys.version_info >= (3, 11):
        packages_distributions = importlib.metadata.packages_distributions
    else:  # 3.10's reads only top_level.txt, which most wheels lack; the backport reads files
        from importlib_metadata import packages_distributions
    for module, dists in packages_distributions().items():
        names = {normalize(dist) for dist in dists}
        if len(names) != 1 or not module.isidentifier():
            continue
        checked += 1
        got = name_of(index, index.find_by_module(module))
        if got not in names:
            wrong[module] = (got, names)
    assert checked > 30
    assert wrong == {}
    for module, dist in [
        ("sklearn", "scikit-learn"),
        ("sklearn.cluster._kmeans", "scikit-learn"),
        ("yaml", "pyyaml"),
        ("_yaml", "pyyaml"),
        ("dateutil.parser", "python-dateutil"),
        ("numpy.linalg", "numpy"),
        # A module no RECORD lists (made up) still resolves through its package.
        ("numpy.not_a_real_submodule", "numpy"),
    ]:
        assert name_of(index, index.find_by_module(module)) == dist, module
    assert index.find_by_module("os") is None
    assert index.find_by_module("no_such_module.sub") is None


def test_module_files_resolve_through_find_by_file(index):
    import dateutil.parser
    import numpy.linalg
    import sklearn.cluster
    import yaml

    for module, dist in [
        (numpy.linalg, "numpy"),
        (sklearn.cluster, "scikit-learn"),
        (yaml, "pyyaml"),
        (dateutil.parser, "python-dateutil"),
    ]:
        assert name_of(index, index.find_by_file(module.__file__)) == dist
    assert index.find_by_file(os.__file__) is None


def test_the_editable_project_owns_its_sources_but_not_its_venv(index):
    dist_id = index.find_by_name("takeout")
    if dist_id is None or index.distribution(dist_id).kind != "editable":
        pytest.skip("takeout is not installed in editable mode (maturin develop) here")
    dist = index.distribution(dist_id)
    root = Path(dist.editable_root)
    assert index.find_by_file(str(root / "python" / "takeout" / "__init__.py")) == dist_id
    # Unrecorded files in a site directory inside the project are not the project's.
    site = Path(index.distribution(index.find_by_name("numpy")).location)
    if site.is_relative_to(root):
        assert index.find_by_file(str(site / "numpy" / "__pycache__" / "x.pyc")) is None


def reference_closure(
    installed: dict[str, importlib.metadata.Distribution],
    root: str,
    extras: set[str],
    markers: dict[str, str],
) -> tuple[dict[str, tuple[set[str], set[str]]], set[tuple[str, str, Optional[str]]]]:
    """The lock computed with `packaging`: `{name: (extras, required_by)}` and missing."""
    reached: dict[str, tuple[set[str], set[str]]] = {root: ({normalize(e) for e in extras}, set())}
    missing: set[tuple[str, str, Optional[str]]] = set()
    queue = deque([root])
    while queue:
        name = queue.popleft()
        active = reached[name][0]
        for text in installed[name].requires or ():
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is not None and not any(
                marker.evaluate({**markers, "extra": extra}) for extra in (active or {""})
            ):
                continue
            target = normalize(requirement.name)
            if target not in installed:
                missing.add((text, name, None))
                continue
            version = installed[target].version
            try:
                ok = requirement.url is not None or requirement.specifier.contains(
                    Version(version), prereleases=True
                )
            except InvalidVersion:
                ok = not requirement.specifier
            if not ok:
                missing.add((text, name, version))
                continue
            before = reached.get(target)
            state = reached.setdefault(target, (set(), set()))
            if target != name:
                state[1].add(name)
            grown = {normalize(e) for e in requirement.extras} - state[0]
            state[0].update(grown)
            if (before is None or grown) and target not in queue:
                queue.append(target)
    return reached, missing


def test_lock_matches_a_packaging_reference_for_every_distribution(index, installed):
    markers = default_environment()
    for name, dist in sorted(installed.items()):
        for extras in ([], dist.metadata.get_all("Provides-Extra") or []):
            lock = index.lock([(index.find_by_name(name), extras)], markers)
            ours = {
                index.distribution(dist_id).normalized: (set(got_extras), set(required_by))
                for dist_id, got_extras, required_by in lock.packages
            }
            expected, expected_missing = reference_closure(installed, name, set(extras), markers)
            assert ours == expected, (name, extras)
            assert set(lock.missing) == expected_missing, (name, extras)
            order = [index.distribution(dist_id).normalized for dist_id, _, _ in lock.packages]
            assert order == sorted(order)


def test_lock_of_scikit_learn_pins_its_dependencies(index):
    lock = index.lock([(index.find_by_name("scikit-learn"), [])], default_environment())
    packages = {
        index.distribution(dist_id).normalized: (index.distribution(dist_id).version, required_by)
        for dist_id, _, required_by in lock.packages
    }
    assert packages["scikit-learn"] == (importlib.metadata.version("scikit-learn"), [])
    for dep in ("numpy", "scipy", "joblib", "threadpoolctl"):
        version, required_by = packages[dep]
        assert version == importlib.metadata.version(dep)
        assert "scikit-learn" in required_by, dep
    assert "scipy" in packages["numpy"][1]
    assert lock.missing == []


def test_lock_evaluates_markers_for_the_target_interpreter(tmp_path):
    write_dist(
        tmp_path,
        "app",
        "1.0",
        ["app.py"],
        requires=[
            'old-backport ; python_version < "3.8"',
            'winonly ; sys_platform == "win32"',
            'extra-dep[fast] ; extra == "plus"',
        ],
    )
    write_dist(tmp_path, "old-backport", "1.0", ["old_backport.py"])
    write_dist(tmp_path, "winonly", "1.0", ["winonly.py"])
    write_dist(
        tmp_path,
        "extra-dep",
        "2.0",
        ["extra_dep.py"],
        requires=['speedup>=2 ; extra == "fast"'],
    )
    write_dist(tmp_path, "speedup", "1.5", ["speedup.py"])
    index = EnvIndex([str(tmp_path)])
    app = index.find_by_name("app")

    linux = {
        **default_environment(),
        "sys_platform": "linux",
        "python_version": "3.11",
        "python_full_version": "3.11.7",
    }
    assert [index.distribution(d).name for d, _, _ in index.lock([(app, [])], linux).packages] == [
        "app"
    ]

    windows_37 = {
        **linux,
        "sys_platform": "win32",
        "python_version": "3.7",
        "python_full_version": "3.7.9",
    }
    lock = index.lock([(app, ["plus"])], windows_37)
    assert [(index.distribution(d).name, e, r) for d, e, r in lock.packages] == [
        ("app", ["plus"], []),
        ("extra-dep", ["fast"], ["app"]),
        ("old-backport", [], ["app"]),
        ("winonly", [], ["app"]),
    ]
    assert lock.missing == [('speedup>=2 ; extra == "fast"', "extra-dep", "1.5")]


def test_lock_rejects_bad_input(index):
    numpy = index.find_by_name("numpy")
    markers = default_environment()
    with pytest.raises(takeout.errors.LockError, match="`python_version` is missing"):
        index.lock([(numpy, [])], {k: v for k, v in markers.items() if k != "python_version"})
    with pytest.raises(takeout.errors.LockError, match="`pyton_version` is not a PEP 508"):
        index.lock([(numpy, [])], {**markers, "pyton_version": "3.11"})
    with pytest.raises(takeout.errors.LockError, match="`python_version` is `eleven`"):
        index.lock([(numpy, [])], {**markers, "python_version": "eleven"})
    with pytest.raises(takeout.errors.LockError, match=r"`python_version` is `3\.7` but"):
        index.lock([(numpy, [])], {**markers, "python_version": "3.7"})
    with pytest.raises(takeout.errors.LockError, match=r"`not valid!` \(asked of `numpy`\)"):
        index.lock([(numpy, ["not valid!"])], markers)
    with pytest.raises(IndexError, match="`100000` is out of range"):
        index.lock([(100000, [])], markers)
    with pytest.raises(IndexError, match="`-1` is out of range"):
        index.distribution(-1)


# ── parse_requirement ───────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("spec", "parts"),
    [
        ("numpy", ("numpy", [], "", None)),
        ("numpy==2.1.3", ("numpy", [], "==2.1.3", None)),
        ("Scikit_Learn[Plot]>=1.3,<2", ("scikit-learn", ["plot"], ">=1.3, <2", None)),
        (
            'pyyaml ; sys_platform == "linux"',
            ("pyyaml", [], "", "sys_platform == 'linux'"),
        ),
        (
            "pkg @ https://example.org/pkg-1.0.tar.gz",
            ("pkg", [], "@ https://example.org/pkg-1.0.tar.gz", None),
        ),
    ],
)
def test_parse_requirement(spec, parts):
    assert parse_requirement(spec) == parts


@pytest.mark.parametrize("spec", ["numpy>=", "", "numpy==2.*.1", "numpy 1.0", "-x", "numpy["])
def test_parse_requirement_rejects_malformed_specs_in_one_sentence(spec):
    with pytest.raises(takeout.errors.RequirementError) as info:
        parse_requirement(spec)
    message = str(info.value)
    assert message.startswith(f"`{spec}` is not a valid requirement: ")
    assert message.endswith("write it as in requirements.txt, e.g. `numpy==2.1.3`")
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


# ── synthetic site directories ──────────────────────────────────────────────────────────────


def write_dist(
    site: Path,
    name: str,
    version: str,
    files: list[str],
    *,
    requires: Sequence[str] = (),
    metadata_files: Optional[dict[str, str]] = None,
) -> Path:
    """A `*.dist-info` directory with a RECORD listing `files` (created, unless outside the
    site directory) and itself."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    headers = [f"Name: {name}", f"Version: {version}"]
    headers += [f"Requires-Dist: {requirement}" for requirement in requires]
    (dist_info / "METADATA").write_text("\n".join(["Metadata-Version: 2.1", *headers, "", ""]))
    for file in files:
        if not file.startswith(".."):
            (site / file).parent.mkdir(parents=True, exist_ok=True)
            (site / file).write_text("")
    for file_name, content in (metadata_files or {}).items():
        (dist_info / file_name).write_text(content)
    record = [f'"{file}",sha256=x,1' if "," in file else f"{file},sha256=x,1" for file in files]
    record += [f"{dist_info.name}/METADATA,,", f"{dist_info.name}/RECORD,,"]
    (dist_info / "RECORD").write_text("\n".join(record) + "\n")
    return dist_info


def test_namespace_packages_go_to_the_distribution_owning_the_longest_prefix(tmp_path):
    site = tmp_path / "site-packages"
    write_dist(site, "ns-alpha", "1.0", ["ns/alpha/__init__.py", "ns/alpha/core.py"])
    write_dist(
        site,
        "ns-beta",
        "2.0",
        [
            "ns/beta/__init__.py",
            "ns/beta/_speed.cpython-311-x86_64-linux-gnu.so",
            "ns/beta/odd,name.txt",
            "../bin/beta-cli",
        ],
    )
    index = EnvIndex([str(tmp_path / "missing"), str(site)])
    assert sorted((d.name, d.version, d.top_level) for d in index.distributions) == [
        ("ns-alpha", "1.0", ["ns"]),
        ("ns-beta", "2.0", ["ns"]),
    ]
    by_module = {
        module: name_of(index, index.find_by_module(module))
        for module in ("ns.alpha.core", "ns.beta", "ns.beta._speed", "ns.beta.later", "ns.gamma")
    }
    assert by_module == {
        "ns.alpha.core": "ns-alpha",
        "ns.beta": "ns-beta",
        "ns.beta._speed": "ns-beta",
        "ns.beta.later": "ns-beta",
        # Only top_level.txt-style names are left for an unknown sibling: the first claimant.
        "ns.gamma": "ns-alpha",
    }
    files = [
        site / "ns" / "alpha" / "core.py",
        site / "ns" / "beta" / "odd,name.txt",
        site / "ns" / "beta" / ".." / "alpha" / "__init__.py",
        tmp_path / "bin" / "beta-cli",
        site / "ns" / "gamma.py",
    ]
    assert [name_of(index, d) for d in index.find_by_files([str(f) for f in files])] == [
        "ns-alpha",
        "ns-beta",
        "ns-alpha",
        "ns-beta",
        None,
    ]


def test_duplicates_and_broken_metadata(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    write_dist(first, "Demo_Pkg", "2.0", ["demo_pkg/__init__.py"])
    write_dist(second, "demo-pkg", "1.0", ["demo_pkg/__init__.py", "demo_pkg/old.py"])
    broken = second / "broken-1.0.dist-info"
    broken.mkdir()
    index = EnvIndex([str(first), str(second)])
    assert [(d.name, d.version) for d in index.distributions] == [("Demo_Pkg", "2.0")]
    assert index.find_by_file(str(second / "demo_pkg" / "old.py")) is None
    [(path, reason)] = index.skipped
    assert path == str(broken)
    assert f"`{broken / 'METADATA'}`" in reason


def test_distribution_fields(tmp_path):
    project = tmp_path / "my project"
    write_dist(
        tmp_path,
        "mine",
        "0.1",
        ["__editable__.mine-0.1.pth"],
        requires=["numpy>=2", 'pytest ; extra == "test"'],
        metadata_files={
            "INSTALLER": "uv\n",
            "direct_url.json": (
                f'{{"url": "file://{project.as_posix().replace(" ", "%20")}",'
                ' "dir_info": {"editable": true}}'
            ),
        },
    )
    index = EnvIndex([str(tmp_path)])
    [dist] = index.distributions
    assert (dist.name, dist.normalized, dist.version, dist.kind) == (
        "mine",
        "mine",
        "0.1",
        "editable",
    )
    assert dist.location == str(tmp_path)
    assert dist.metadata_dir == str(tmp_path / "mine-0.1.dist-info")
    assert dist.requires_dist == ["numpy>=2", 'pytest ; extra == "test"']
    assert dist.editable_root == str(project)
    assert dist.direct_url.startswith("file://")
    assert dist.installer == "uv"
    assert index.find_by_file(str(project / "src" / "mine" / "app.py")) == 0
    assert "mine" in repr(dist)
