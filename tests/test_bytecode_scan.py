"""The Rust bytecode scanner (`takeout._core.decode_bytecode`/`scan_code`) on real code.

Decoding is checked against `dis.get_instructions` on every code object of the standard
library; imports and global chains found there against a reference built on the names `dis`
resolves itself (so the version-specific argument encodings are `dis`'s, not ours).
"""

from __future__ import annotations

import dis
import importlib
import os
import sys
import sysconfig
import textwrap
import types
import warnings
import xml.etree.ElementTree
from importlib import import_module
from pathlib import Path

import pytest

import takeout.errors
from takeout import _bytecode, _core

Fact = tuple[object, ...]
KINDS = ("import", "chain", "dynamic")


def facts(findings: list[_core.Finding]) -> list[Fact]:
    """Each finding as a tuple of the fields its kind sets."""
    out: list[Fact] = []
    for f in findings:
        if f.kind == "import":
            out.append((f.qualname, "import", f.module, f.level, tuple(f.fromlist)))
        elif f.kind == "chain":
            out.append((f.qualname, "chain", f.global_name, tuple(f.attrs)))
        else:
            assert f.kind == "dynamic", f
            out.append((f.qualname, "dynamic", f.module, f.callee))
    return out


def qualname_of(code: types.CodeType) -> str:
    return getattr(code, "co_qualname", code.co_name)


def where(qualname: str) -> str:
    """Where the interpreter running the tests puts code written in `qualname` (3.11 terms):
    3.12+ inlines list comprehensions, 3.9/3.10 code objects only know their own name."""
    if sys.version_info >= (3, 12):
        while qualname.endswith(".<listcomp>"):
            qualname = qualname[: -len(".<listcomp>")]
        qualname = qualname.removesuffix(".<locals>")
    if sys.version_info < (3, 11):
        qualname = qualname.rsplit(".", 1)[-1]
    return qualname


def walk(code: types.CodeType) -> list[types.CodeType]:
    out, stack = [], [code]
    while stack:
        current = stack.pop()
        out.append(current)
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return out


# ── the whole standard library ──────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def stdlib_modules() -> list[types.CodeType]:
    root = Path(sysconfig.get_paths()["stdlib"])
    modules = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if any(part in ("test", "tests", "idle_test", "site-packages") for part in parts):
            continue
        try:
            source = path.read_bytes()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid escapes and the like
                modules.append(compile(source, str(path), "exec", dont_inherit=True))
        except (OSError, SyntaxError, ValueError):
            continue
    assert len(modules) > 300, f"only {len(modules)} stdlib modules compiled under {root}"
    return modules


def test_decode_matches_dis_on_the_whole_stdlib(stdlib_modules: list[types.CodeType]) -> None:
    table = _bytecode.opcode_table()
    compared = instructions = 0
    mismatches = []
    for module in stdlib_modules:
        for code in walk(module):
            expected = [(i.offset, i.opcode, i.arg) for i in dis.get_instructions(code)]
            actual = _core.decode_bytecode(code.co_code, table)
            if actual != expected:
                mismatches.append(f"{code.co_filename}:{code.co_firstlineno} {qualname_of(code)}")
            compared += 1
            instructions += len(expected)
    assert not mismatches, f"{len(mismatches)} of {compared} differ, e.g. {mismatches[:5]}"
    assert compared > 10_000 and instructions > 100_000, (compared, instructions)


_TRANSPARENT = {"EXTENDED_ARG", "NOP", "CACHE", "PUSH_NULL"}
_ROOTS = {"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"}
_ATTRS = {"LOAD_ATTR", "LOAD_METHOD"}


def reference_facts(module: types.CodeType) -> set[Fact]:
    """Imports and global chains from `dis`'s resolved arguments (`argval`)."""
    out: set[Fact] = set()
    for code in walk(module):
        where = qualname_of(code)
        ins = [i for i in dis.get_instructions(code) if i.opname not in _TRANSPARENT]
        for k, i in enumerate(ins):
            if i.opname == "IMPORT_NAME":
                assert k >= 2, (code, i)
                level, fromlist = ins[k - 2].argval, ins[k - 1].argval
                out.add((where, "import", i.argval, level, tuple(fromlist or ())))
            elif i.opname in _ROOTS:
                attrs = []
                for j in ins[k + 1 :]:
                    if j.opname not in _ATTRS:
                        break
                    attrs.append(j.argval)
                if attrs:
                    out.add((where, "chain", i.argval, tuple(attrs)))
    return out


def test_scan_matches_dis_reference_on_the_whole_stdlib(
    stdlib_modules: list[types.CodeType],
) -> None:
    mismatches = []
    imports = chains = 0
    for module in stdlib_modules:
        found = facts(_bytecode.scan(module))
        actual = {f for f in found if f[1] != "dynamic"}
        expected = reference_facts(module)
        if actual != expected:
            mismatches.append((module.co_filename, actual ^ expected))
        imports += sum(f[1] == "import" for f in actual)
        chains += sum(f[1] == "chain" for f in actual)
    assert not mismatches, f"{len(mismatches)} modules differ, e.g. {mismatches[:2]}"
    assert imports > 1000 and chains > 1000, (imports, chains)


# ── findings on real functions ──────────────────────────────────────────────────────────────


def body_imports():
    import json
    import xml.dom.minidom
    from collections import OrderedDict, deque

    return json, xml.dom.minidom, OrderedDict, deque


def global_chains(data):
    return os.path.join("a", "b"), xml.etree.ElementTree.fromstring(data), os.sep


def dynamic_imports():
    return (
        importlib.import_module("json"),
        __import__("csv"),
        import_module("zlib"),
        import_module(".sub", package="pkg"),
    )


def local_importers():
    import importlib
    from importlib import import_module

    return importlib.import_module("json"), import_module("csv")


def not_dynamic(name):
    return import_module(name), importlib.import_module(name + "x"), (import_module, "json")


def nested(groups):
    names = [[os.path.basename(p) for p in group] for group in groups]
    stems = (os.path.splitext(n) for n in names)
    ordered = sorted(names, key=lambda n: xml.etree.ElementTree.tostring(n))

    def inner():
        import json

        return json

    class Holder:
        sep = os.path.sep

    return stems, ordered, inner, Holder


def test_imports_in_a_function_body() -> None:
    assert facts(_bytecode.scan(body_imports.__code__)) == [
        ("body_imports", "import", "json", 0, ()),
        ("body_imports", "import", "xml.dom.minidom", 0, ()),
        ("body_imports", "import", "collections", 0, ("OrderedDict", "deque")),
    ]


def test_relative_imports_in_a_package_function(local_dir: Path) -> None:
    pkg = local_dir / "bytecode_scan_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text("VALUE = 1\n")
    (pkg / "mod.py").write_text(
        textwrap.dedent(
            """
            def load():
                from . import helpers
                from .helpers import VALUE

                return helpers.VALUE + VALUE
            """
        )
    )
    mod = importlib.import_module("bytecode_scan_pkg.mod")
    assert mod.load() == 2
    assert facts(_bytecode.scan(mod.load.__code__)) == [
        ("load", "import", "", 1, ("helpers",)),
        ("load", "import", "helpers", 1, ("VALUE",)),
    ]


def test_global_chains() -> None:
    assert facts(_bytecode.scan(global_chains.__code__)) == [
        ("global_chains", "chain", "os", ("path", "join")),
        ("global_chains", "chain", "xml", ("etree", "ElementTree", "fromstring")),
        ("global_chains", "chain", "os", ("sep",)),
    ]


def test_dynamic_imports() -> None:
    assert facts(_bytecode.scan(dynamic_imports.__code__)) == [
        ("dynamic_imports", "chain", "importlib", ("import_module",)),
        ("dynamic_imports", "dynamic", "json", "importlib.import_module"),
        ("dynamic_imports", "dynamic", "csv", "__import__"),
        ("dynamic_imports", "dynamic", "zlib", "import_module"),
        ("dynamic_imports", "dynamic", ".sub", "import_module"),
    ]


def test_dynamic_imports_through_locals() -> None:
    # `importlib` and `import_module` are locals here: no chain, but still importers.
    assert facts(_bytecode.scan(local_importers.__code__)) == [
        ("local_importers", "import", "importlib", 0, ()),
        ("local_importers", "import", "importlib", 0, ("import_module",)),
        ("local_importers", "dynamic", "json", "importlib.import_module"),
        ("local_importers", "dynamic", "csv", "import_module"),
    ]


def test_computed_or_unused_module_names_are_not_dynamic_imports() -> None:
    assert facts(_bytecode.scan(not_dynamic.__code__)) == [
        ("not_dynamic", "chain", "importlib", ("import_module",)),
    ]


def test_nested_code_objects_report_where_they_were_found() -> None:
    codes = {qualname_of(c): c for c in walk(nested.__code__)}
    # The class body looks its globals up by name, not with LOAD_GLOBAL.
    holder = codes[where("nested.<locals>.Holder")]
    assert "LOAD_NAME" in {i.opname for i in dis.get_instructions(holder)}

    found = facts(_bytecode.scan(nested.__code__))
    assert sorted(found, key=repr) == sorted(
        [
            (where("nested.<locals>.<listcomp>.<listcomp>"), "chain", "os", ("path", "basename")),
            (where("nested.<locals>.<genexpr>"), "chain", "os", ("path", "splitext")),
            (
                where("nested.<locals>.<lambda>"),
                "chain",
                "xml",
                ("etree", "ElementTree", "tostring"),
            ),
            (where("nested.<locals>.inner"), "import", "json", 0, ()),
            (where("nested.<locals>.Holder"), "chain", "os", ("path", "sep")),
        ],
        key=repr,
    )


def test_module_level_code() -> None:
    # `from x import *` is only allowed at module level.
    source = textwrap.dedent(
        """
        from os.path import *
        import importlib
        importlib.import_module("json")
        xml.etree.ElementTree.fromstring("<a/>")
        importlib.import_module("json")
        """
    )
    found = facts(_bytecode.scan(compile(source, "<cell>", "exec")))
    assert found == [
        ("<module>", "import", "os.path", 0, ("*",)),
        ("<module>", "import", "importlib", 0, ()),
        ("<module>", "chain", "importlib", ("import_module",)),
        ("<module>", "dynamic", "json", "importlib.import_module"),
        ("<module>", "chain", "xml", ("etree", "ElementTree", "fromstring")),
    ]


def test_finding_fields_of_each_kind() -> None:
    found = _bytecode.scan(body_imports.__code__) + _bytecode.scan(dynamic_imports.__code__)
    imp, chain, dyn = (next(f for f in found if f.kind == kind) for kind in KINDS)
    assert (imp.global_name, imp.attrs, imp.callee) == (None, [], None)
    assert (chain.module, chain.level, chain.fromlist, chain.callee) == (None, 0, [], None)
    assert (dyn.level, dyn.fromlist, dyn.global_name, dyn.attrs) == (0, [], None, [])
    assert (
        repr(imp)
        == "Finding(kind='import', qualname='body_imports', module='json', level=0, fromlist=[])"
    )
    assert repr(chain) == (
        "Finding(kind='chain', qualname='dynamic_imports', global_name='importlib', "
        "attrs=['import_module'])"
    )
    assert repr(dyn) == (
        "Finding(kind='dynamic', qualname='dynamic_imports', module='json', "
        "callee='importlib.import_module')"
    )


# ── table and errors ────────────────────────────────────────────────────────────────────────


def test_opcode_table_is_built_once_for_this_interpreter() -> None:
    table = _bytecode.opcode_table()
    assert table is _bytecode.opcode_table()
    assert table.version == sys.version_info[:2]


@pytest.mark.parametrize("field", ["names", "has_arg", "cache_entries"])
def test_table_with_wrong_length_is_rejected(field: str) -> None:
    lists: dict[str, list] = {
        "names": [f"<{op}>" for op in range(256)],
        "has_arg": [op >= 90 for op in range(256)],
        "cache_entries": [0] * 256,
    }
    _core.OpcodeTable((3, 11), **lists)  # the valid baseline
    lists[field] = lists[field][:255]
    with pytest.raises(takeout.errors.BytecodeError, match=f"`{field}` has 255 entries"):
        _core.OpcodeTable((3, 11), **lists)


def test_malformed_code_objects() -> None:
    table = _bytecode.opcode_table()
    code = body_imports.__code__.replace(co_names=())
    with pytest.raises(takeout.errors.BytecodeError, match=r"`body_imports`.*name index 0"):
        _core.scan_code(code, table)
    with pytest.raises(ValueError, match="odd-length"):
        _core.decode_bytecode(b"\x01", table)
    with pytest.raises(TypeError, match="expected a code object, got function"):
        _core.scan_code(body_imports, table)  # type: ignore[arg-type]


def test_deeply_nested_code_objects() -> None:
    # About as deep as the compiler goes (CPython itself recurses over constants, so deeper
    # input cannot be built); the Rust side walks it iteratively either way.
    depth = 1000
    module = compile("lambda: " * depth + "os.path.sep", "<deep>", "eval")
    innermost = ".<locals>.".join(["<lambda>"] * depth)
    assert facts(_bytecode.scan(module)) == [(where(innermost), "chain", "os", ("path", "sep"))]
