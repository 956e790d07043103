"""`takeout verify` and `takeout call`: the bundle subcommands."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands to `sub`."""
    verify = sub.add_parser(
        "verify",
        help="install the bundle's lock in a fresh venv and replay its examples there",
        description="Create a fresh virtual environment with uv for the bundle's Python, "
        "install exactly its lock, load it there and run every recorded example. "
        "Exit status 1 when a check fails.",
    )
    verify.add_argument("bundle", metavar="BUNDLE")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.add_argument(
        "--find-links",
        action="append",
        default=[],
        metavar="DIR|URL",
        help="also look for distributions here (passed to uv)",
    )
    verify.add_argument("--offline", action="store_true", help="install from uv's cache only")
    verify.add_argument("--keep", action="store_true", help="keep the venv for inspection")
    verify.add_argument(
        "--signing-key",
        default=None,
        help="key for a signed bundle (default: $TAKEOUT_SIGNING_KEY)",
    )
    verify.set_defaults(run=_verify)

    call = sub.add_parser(
        "call",
        help="load the bundle and call it once with JSON arguments",
        description="JSON object = keyword arguments, JSON array = positional arguments. "
        "Prints the JSON result. Exit status 1 when the function raises (any exception, "
        "SystemExit and other BaseExceptions included: one sentence with its type and message).",
    )
    call.add_argument("bundle", metavar="BUNDLE")
    call.add_argument("arguments", metavar="JSON")
    call.add_argument(
        "--signing-key",
        default=None,
        help="key for a signed bundle (default: $TAKEOUT_SIGNING_KEY)",
    )
    call.set_defaults(run=_call)


def _verify(args: argparse.Namespace) -> int:
    from ..verification import verify
    from . import print_json

    result = verify(
        args.bundle,
        find_links=args.find_links,
        offline=args.offline,
        progress=not args.json,
        keep=args.keep,
        signing_key=args.signing_key,
    )
    if args.json:
        print_json(result.to_dict())
    else:
        print(result)
    return 0 if result.ok else 1


def _call(args: argparse.Namespace) -> int:
    import json

    from .. import _runtime
    from ..bundle import load_with_manifest
    from ..errors import TakeoutError
    from . import parse_json_arg, printable

    arguments = parse_json_arg(args.arguments, "JSON")
    fn, manifest = load_with_manifest(args.bundle, signing_key=args.signing_key)
    fn = _runtime.one_item(fn, manifest.get("batch"))
    positional, keywords = _runtime.bind_json(fn, arguments)
    try:
        result: Any = _runtime.to_json(_runtime.settle(fn(*positional, **keywords)))
    except TakeoutError:
        raise
    except (_runtime.NotJSON, _runtime.BatchResultError) as err:
        print(f"takeout: error: {printable(str(err))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        raise  # Ctrl-C: the CLI's own "interrupted", status 130
    except SystemExit as err:  # sys.exit() inside the function ends the call, not takeout
        print(
            f"takeout: error: the function called sys.exit({printable(repr(err.code))}) "
            "instead of returning; return a value or raise an exception",
            file=sys.stderr,
        )
        return 1
    except BaseException as err:  # the function raised: its type and message, a failed check
        name = printable(type(err).__name__)
        print(f"takeout: error: the function raised {name}: {printable(str(err))}", file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    return 0
