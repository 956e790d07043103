"""The IPython extension: `%load_ext takeout`, then `%takeout ...` in a notebook.

    %takeout deps FUNC [--json] [--require SPEC]... [--exclude DIST]...
    %takeout pack FUNC [-o DIR] [--name N] [--require SPEC]... [--exclude DIST]...
                       [--example JSON]... [--example-check C] [--force]
                       [--batch N [--batch-wait 2ms]]
    %takeout serve BUNDLE [--port P] [--host H] [every other `takeout serve` flag]
    %takeout stop
    %takeout deploy FUNC --ray ADDRESS [--replicas N | --autoscale MIN:MAX] [--name N]
                         [--route /PREFIX] [--example JSON]...

The magic works on the live objects of the kernel it runs in: `deps` and `pack` are
`takeout.deps` and `takeout.pack` on the function bound to FUNC, `serve` starts a server in
the background and prints its URL, `deploy` packs FUNC into a temporary bundle and deploys it
to a Ray cluster (`--ray auto`: this machine's), printing progress and then the URL.
Mistakes and takeout's own errors are IPython `UsageError`s: one line, no traceback.
Arguments are not `$var`-expanded, so JSON examples with braces pass through as typed.
"""

from __future__ import annotations

import argparse
import json
import shlex
from typing import Any, NoReturn, Optional

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class, no_var_expand

from .cli import parse_json_arg
from .cli._pack_args import add_pack_arguments, add_requirement_arguments, pack_options
from .errors import TakeoutError
from .serving.config import ServeConfig


class _Parser(argparse.ArgumentParser):
    """argparse that reports a mistake as a one-line `UsageError` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"%takeout: {message} (see `%takeout --help`)")

    def exit(self, status: int = 0, message: Optional[str] = None) -> NoReturn:
        if status:
            raise UsageError(message or "%takeout: invalid arguments")
        raise _Done


class _Done(Exception):
    """`--help` was printed."""


def _parser() -> _Parser:
    parser = _Parser(prog="%takeout", description="Ship a function of this notebook.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    deps = sub.add_parser("deps", help="the distributions FUNC needs, and why")
    deps.add_argument("function", metavar="FUNC")
    deps.add_argument("--json", action="store_true", help="print the report as JSON")
    add_requirement_arguments(deps)

    pack = sub.add_parser("pack", help="write FUNC as a bundle directory")
    pack.add_argument("function", metavar="FUNC")
    add_pack_arguments(pack)

    serve = sub.add_parser("serve", help="serve a bundle in the background")
    serve.add_argument("bundle", metavar="BUNDLE")
    ServeConfig.add_arguments(serve)

    sub.add_parser("stop", help="stop the servers started here")

    deploy = sub.add_parser("deploy", help="pack FUNC and deploy it to a Ray cluster")
    deploy.add_argument("function", metavar="FUNC")
    deploy.add_argument("--ray", required=True, metavar="ADDRESS", help="HOST:PORT or auto")
    scale = deploy.add_mutually_exclusive_group()
    scale.add_argument("--replicas", type=int, metavar="N")
    scale.add_argument("--autoscale", metavar="MIN:MAX")
    deploy.add_argument("--name", help="application and bundle name (default: FUNC)")
    deploy.add_argument("--route", metavar="/PREFIX", help="route prefix (default: /NAME)")
    deploy.add_argument("--num-cpus", type=float, default=1.0, metavar="N")
    deploy.add_argument("--example", action="append", default=[], metavar="JSON")
    add_requirement_arguments(deploy)
    return parser


@magics_class
class TakeoutMagics(Magics):
    """`%takeout`: deps, pack, serve and stop, on this kernel's live objects."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.servers: list[Any] = []

    @no_var_expand
    @line_magic
    def takeout(self, line: str) -> None:
        """Ship a function of this notebook: `%takeout deps|pack FUNC`, `serve BUNDLE`, `stop`.

        `%takeout --help` (or `%takeout pack --help`) lists the options.
        """
        try:
            args = _parser().parse_args(shlex.split(line))
        except _Done:
            return
        except ValueError as err:  # shlex: an unclosed quote
            raise UsageError(f"%takeout: {err}") from None
        try:
            getattr(self, f"_{args.command}")(args)
        except TakeoutError as err:
            raise UsageError(str(err)) from None

    def _function(self, name: str) -> Any:
        namespace = self.shell.user_ns  # type: ignore[union-attr]
        head, *attrs = name.split(".")
        if head not in namespace:
            raise UsageError(f"`{head}` is not defined in this notebook; run its cell first")
        value = namespace[head]
        for attr in attrs:
            try:
                value = getattr(value, attr)
            except AttributeError:
                raise UsageError(f"`{name}` does not exist: no attribute `{attr}`") from None
        return value

    def _deps(self, args: argparse.Namespace) -> None:
        from IPython.display import display

        import takeout

        report = takeout.deps(
            self._function(args.function), require=args.require, exclude=args.exclude
        )
        if args.json:
            print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str))
            return
        # Jupyter shows the HTML table; a terminal IPython shows the text.
        display({"text/plain": str(report), "text/html": report._repr_html_()}, raw=True)

    def _pack(self, args: argparse.Namespace) -> None:
        import takeout

        options = pack_options(args)
        options["examples"] = options["examples"] or None
        bundle = takeout.pack(self._function(args.function), args.output, **options)
        pins = ", ".join(r["requirement"] for r in bundle.manifest.get("requirements", ()))
        print(f"packed `{args.function}` into {bundle.path} ({pins or 'no requirements'})")

    def _serve(self, args: argparse.Namespace) -> None:
        import takeout

        config = ServeConfig.from_args(args)
        handle = takeout.serve(args.bundle, config=config, background=True)
        assert handle is not None  # background=True always returns one
        self.servers.append(handle)
        print(f"serving `{handle.name}` at {handle.url} (stop it with %takeout stop)")

    def _deploy(self, args: argparse.Namespace) -> None:
        import shutil
        import tempfile

        import takeout
        import takeout.ray

        from .cli._deploy import parse_autoscale

        if args.replicas is not None and args.replicas < 1:
            raise UsageError(f"--replicas `{args.replicas}` must be at least 1")
        autoscaling = parse_autoscale(args.autoscale) if args.autoscale else None
        examples = [parse_json_arg(text, "--example") for text in args.example]
        fn = self._function(args.function)
        # The bundle only has to live until its files are in the cluster's object store.
        folder = tempfile.mkdtemp(prefix="takeout-deploy-")
        try:
            bundle = takeout.pack(
                fn,
                f"{folder}/bundle.takeout",
                name=args.name,
                examples=examples or None,
                require=args.require,
                exclude=args.exclude,
            )
            info = takeout.ray.deploy(
                bundle.path,
                args.ray,
                route_prefix=args.route,
                num_replicas=args.replicas,
                autoscaling=autoscaling,
                ray_actor_options={"num_cpus": args.num_cpus},
                progress=print,
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        print(f"deployed `{info['name']}` at {info['url']} ({info['replicas']} replicas)")

    def _stop(self, args: argparse.Namespace) -> None:
        if not self.servers:
            print("no server started by %takeout is running")
            return
        while self.servers:
            handle = self.servers.pop()
            handle.stop()
            print(f"stopped `{handle.name}` at {handle.url}")

    def stop_all(self) -> None:
        while self.servers:
            self.servers.pop().stop()


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(TakeoutMagics)


def unload_ipython_extension(ipython: Any) -> None:
    magics = ipython.magics_manager.registry.get("TakeoutMagics")
    if magics is not None:
        magics.stop_all()
