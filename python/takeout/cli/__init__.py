"""The `takeout` console script.

Each group of subcommands lives in the module that owns the feature (`_bundle`: verify, call;
`_export`: export; `_serve`: serve; `_deploy`: deploy, undeploy on Ray; `_notebook`: deps, pack,
slice) and registers itself on the parser; this module only builds the parser and turns errors
into one sentence and an exit status:
0 success, 1 a failed check, 2 bad usage. Modules here import nothing heavy at top level so
that `takeout call` starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, Optional

from ..errors import TakeoutError, UsageError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from . import _bundle, _deploy, _export, _notebook, _serve

    parser = argparse.ArgumentParser(
        prog="takeout",
        description="Take one function out of a Jupyter notebook and ship it as a service.",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the Python traceback of an error"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in (_notebook, _bundle, _export, _serve, _deploy):
        module.register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    if next((a for a in given if not a.startswith("-")), None) == "serve":
        from .._signals import remember_early

        # Before the parser and the serving modules load: a SIGTERM from now on stops the
        # server cleanly instead of killing the process.
        remember_early()
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("takeout: interrupted", file=sys.stderr)
        return 130
    except TakeoutError as err:
        if args.debug:
            raise
        print(f"takeout: error: {printable(str(err))}", file=sys.stderr)
        # The slice's warnings, when it failed: usually the explanation.
        for warning in getattr(err, "warnings", ()):
            print(f"takeout: warning: {printable(str(warning))}", file=sys.stderr)
        return 2 if isinstance(err, UsageError) else 1


def printable(text: str) -> str:
    """`text` with control characters written as escapes (`\\x1b`, `\\n`): names and
    messages from a bundle or a function must not drive the terminal (move the cursor,
    rewrite the title, hide text) nor forge a line of output."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def print_json(value: Any) -> None:
    """What `--json` prints: one JSON document on stdout, nothing else."""
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def parse_json_arg(text: str, what: str) -> Any:
    """Parse a JSON command-line argument, or raise a one-sentence usage error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(
            f"{what} is not valid JSON ({err.msg} at column {err.colno}); "
            "quote it for the shell, e.g. '{\"x\": 1}'"
        ) from None
