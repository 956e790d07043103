"""The flags of packing, declared once for `takeout pack NOTEBOOK FUNCTION` and `%takeout pack
FUNC`, and what they become as keywords of `takeout.pack`."""

from __future__ import annotations

import argparse
from typing import Any


def add_requirement_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--require",
        action="append",
        default=[],
        metavar="SPEC",
        help="add a requirement (PEP 508), e.g. 'scikit-learn[extra]>=1.5'",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="DIST",
        help="leave a distribution out",
    )


def add_pack_arguments(parser: argparse.ArgumentParser) -> None:
    """Everything `pack` takes besides what names the function."""
    from .._runtime import EXAMPLE_CHECKS

    parser.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="the bundle directory (default ./FUNCTION.takeout, or ./NAME.takeout)",
    )
    parser.add_argument("--name", help="the bundle's name (default: the function's name)")
    add_requirement_arguments(parser)
    parser.add_argument(
        "--example",
        action="append",
        default=[],
        metavar="JSON",
        help="a call to record: a JSON array of positional or an object of keyword arguments "
        "(for a batch function, the arguments of one item)",
    )
    parser.add_argument(
        "--example-check",
        choices=EXAMPLE_CHECKS,
        help="how verify compares each example's output: exact, or only its shape or type for "
        "results that vary (default: run each example twice, and check by shape one that "
        "changed)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing bundle")
    parser.add_argument(
        "--batch",
        type=int,
        metavar="N",
        help="pack a batch function (it takes a list of items first and returns one result "
        "per item): the server calls it with up to N concurrent requests at once",
    )
    parser.add_argument(
        "--batch-wait",
        metavar="DURATION",
        help="with --batch: hold a request at most this long for others (default 2ms; an "
        "idle server holds none)",
    )


def pack_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords of `takeout.pack` that the flags of `add_pack_arguments` give."""
    from ..batching import Batch, parse_wait
    from . import parse_json_arg

    batch = None
    if args.batch is not None or args.batch_wait is not None:
        wait = parse_wait(args.batch_wait) if args.batch_wait is not None else 2.0
        batch = Batch(max_size=64 if args.batch is None else args.batch, max_wait_ms=wait)
    return {
        "name": args.name,
        "examples": [parse_json_arg(text, "--example") for text in args.example],
        "require": args.require,
        "exclude": args.exclude,
        "overwrite": args.force,
        "example_check": args.example_check,
        "batch": batch,
    }
