"""`takeout slice`, `takeout deps` and `takeout pack`: one function out of an .ipynb file."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands to `sub`."""
    from ._pack_args import add_pack_arguments, add_requirement_arguments

    sliced = sub.add_parser(
        "slice",
        help="print the statements of a notebook that one function depends on",
        description="Slice the notebook backwards from FUNCTION's last definition and print "
        "the kept statements as a script, under the number of the cell each came from. "
        "Nothing runs.",
    )
    _notebook_args(sliced)
    sliced.add_argument("--json", action="store_true", help="print the slice as JSON")
    sliced.set_defaults(run=_slice)

    deps = sub.add_parser(
        "deps",
        help="the distributions a notebook function needs, and why",
        description="Run only the cells FUNCTION needs in the notebook's Jupyter kernel, then "
        "`takeout.deps` it there. With --static nothing runs: the slice's imports are mapped "
        "to distributions of the kernel's interpreter (an estimate).",
    )
    _notebook_args(deps)
    deps.add_argument(
        "--static", action="store_true", help="run nothing; map the slice's imports only"
    )
    deps.add_argument(
        "--python",
        metavar="PATH",
        help="with --static: the interpreter whose packages to use (default: the kernel's)",
    )
    add_requirement_arguments(deps)
    _kernel_args(deps)
    deps.add_argument("--json", action="store_true", help="print the report as JSON")
    deps.set_defaults(run=_deps)

    pack = sub.add_parser(
        "pack",
        help="pack a notebook function as a bundle, running only the cells it needs",
        description="Run only the cells FUNCTION needs in the notebook's Jupyter kernel (the "
        "notebook's folder as working directory), then `takeout.pack` it in that kernel.",
    )
    _notebook_args(pack)
    add_pack_arguments(pack)
    _kernel_args(pack)
    pack.add_argument("--json", action="store_true", help="print the result as JSON")
    pack.set_defaults(run=_pack)


def _notebook_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebook", metavar="NOTEBOOK", help="an .ipynb file (nbformat 4)")
    parser.add_argument("function", metavar="FUNCTION", help="the name the function is bound to")
    parser.add_argument(
        "--all-cells",
        action="store_true",
        help="use every code cell, as `Run All` would, instead of the slice",
    )
    parser.add_argument(
        "--cell",
        type=int,
        metavar="N",
        help="slice from FUNCTION's definition in cell N, not its last one (or FUNCTION@N)",
    )
    parser.add_argument(
        "--state",
        choices=("definition", "end"),
        default="definition",
        help="the values the function captures: as when it was defined (default: the last "
        "binding before its definition), or as at the end of the notebook",
    )


def _kernel_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kernel",
        metavar="NAME",
        help="the Jupyter kernel to run in (default: the notebook's, else python3)",
    )


def _progress(args: argparse.Namespace) -> Any:
    def say(message: str) -> None:
        print(f"takeout: {message}", file=sys.stderr, flush=True)

    return say


def _slice(args: argparse.Namespace) -> int:
    from ..notebook import slice_notebook, slice_to_dict
    from . import print_json

    sliced = slice_notebook(
        args.notebook,
        args.function,
        all_cells=args.all_cells,
        state_end=args.state == "end",
        cell=args.cell,
    )
    if args.json:
        print_json(slice_to_dict(sliced))
    else:
        sys.stdout.write(sliced.script)
    return 0


def _deps(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from . import print_json

    if args.static:
        from ..notebook import static_deps

        if args.require or args.exclude:
            raise UsageError("--require and --exclude apply to a run, not to --static")
        report: Any = static_deps(
            args.notebook,
            args.function,
            python=args.python,
            kernel=args.kernel,
            all_cells=args.all_cells,
        )
    else:
        from ..notebook import deps_notebook

        if args.python:
            raise UsageError("--python applies to --static; use --kernel NAME to run elsewhere")
        report = deps_notebook(
            args.notebook,
            args.function,
            require=args.require,
            exclude=args.exclude,
            all_cells=args.all_cells,
            kernel=args.kernel,
            progress=_progress(args),
            state_end=args.state == "end",
            cell=args.cell,
        )
    if args.json:
        print_json(report.to_dict())
    else:
        print(report)
    return 0


def _pack(args: argparse.Namespace) -> int:
    from ..notebook import pack_notebook
    from . import print_json
    from ._pack_args import pack_options

    result = pack_notebook(
        args.notebook,
        args.function,
        args.output,
        all_cells=args.all_cells,
        kernel=args.kernel,
        progress=_progress(args),
        state_end=args.state == "end",
        cell=args.cell,
        **pack_options(args),
    )
    if args.json:
        print_json(result)
        return 0
    manifest = result["manifest"]
    pins = [r["requirement"] for r in manifest["requirements"]]
    cells = ", ".join(str(c["cell"]) for c in result["cells"])
    print(
        f"packed `{result['function']}` into {result['path']} "
        f"({', '.join(pins) or 'no requirements'}) "
        f"from cells {cells} of {args.notebook} in {result['seconds']:.1f} s"
    )
    for warning in result["warnings"]:
        print(f"takeout: warning: {warning}", file=sys.stderr)
    return 0
