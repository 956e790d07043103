"""The running interpreter's opcode facts for the Rust bytecode scanner, and a scan helper.

The scanner hard-codes no opcode numbers: they change with every CPython minor version, so
they are read here from `dis`/`opcode` once per process.
"""

from __future__ import annotations

import dis
import functools
import opcode
import sys
import types
from collections.abc import Mapping

from . import _core

_OPCODES = 256  # opcodes are one byte; `dis.opname` also lists pseudo-instructions on 3.12+


@functools.cache
def opcode_table() -> _core.OpcodeTable:
    """The opcode table of this interpreter (CPython 3.9 and later)."""
    names = [str(name) for name in dis.opname[:_OPCODES]]
    names += [f"<{op}>" for op in range(len(names), _OPCODES)]

    hasarg = getattr(dis, "hasarg", None)  # 3.12+; before, HAVE_ARGUMENT splits the numbers
    if hasarg is not None:
        with_arg = set(hasarg)
        has_arg = [op in with_arg for op in range(_OPCODES)]
    else:
        has_arg = [op >= dis.HAVE_ARGUMENT for op in range(_OPCODES)]

    # A list indexed by opcode on 3.11/3.12, a dict by name from 3.13, absent before 3.11.
    entries = getattr(opcode, "_inline_cache_entries", None)
    if entries is None:
        cache_entries = [0] * _OPCODES
    elif isinstance(entries, Mapping):
        cache_entries = [int(entries.get(name, 0)) for name in names]
    else:
        cache_entries = [int(n) for n in list(entries)[:_OPCODES]]
        cache_entries += [0] * (_OPCODES - len(cache_entries))

    major, minor = sys.version_info[:2]
    return _core.OpcodeTable((major, minor), names, has_arg, cache_entries)


def scan(code: types.CodeType) -> list[_core.Finding]:
    """Imports, global attribute chains and dynamic imports in `code` and its nested code.

    Raises `takeout.errors.BytecodeError` if the bytecode does not decode.
    """
    return _core.scan_code(code, opcode_table())
