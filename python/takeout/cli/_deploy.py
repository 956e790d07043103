"""`takeout deploy BUNDLE --ray ADDRESS` and `takeout undeploy NAME --ray ADDRESS`."""

from __future__ import annotations

import argparse
import sys

from ..errors import UsageError
from ..serving.config import ServeConfig

#: The serving options that mean something on Ray: the rest (host, port, workers, grace) are
#: Serve's proxy's and replicas' business there.
REQUEST_OPTIONS = (
    "token",
    "max_body",
    "timeout",
    "max_concurrency",
    "threads",
    "body_timeout",
    "log_format",
    "access_log",
    "debug",
    "signing_key",
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands to `sub`."""
    deploy = sub.add_parser(
        "deploy",
        help="deploy a bundle to a Ray cluster (Ray Serve)",
        description="Deploy the bundle to a running Ray cluster as a Ray Serve application "
        "with the routes and errors of `takeout serve`, wait until its replicas are healthy "
        "and print its URL. The bundle's files reach every node through Ray's object store.",
    )
    deploy.add_argument("bundle", metavar="BUNDLE")
    _address(deploy)
    scale = deploy.add_mutually_exclusive_group()
    scale.add_argument("--replicas", type=int, metavar="N", help="replicas (default: 1)")
    scale.add_argument(
        "--autoscale", metavar="MIN:MAX", help="let Serve scale between MIN and MAX replicas"
    )
    deploy.add_argument("--name", help="application name (default: the bundle's name)")
    deploy.add_argument(
        "--route", metavar="/PREFIX", help="route prefix on Serve's proxy (default: /NAME)"
    )
    deploy.add_argument(
        "--num-cpus",
        type=float,
        default=1.0,
        metavar="N",
        help="CPUs per replica; also its BLAS/OpenMP threads (default: 1)",
    )
    deploy.add_argument(
        "--resource",
        action="append",
        default=[],
        metavar="NAME=AMOUNT",
        help="a custom Ray resource each replica needs, to place it (repeatable)",
    )
    # The request core's own options, as `takeout serve` takes them (flag or TAKEOUT_* variable).
    ServeConfig.add_arguments(deploy, REQUEST_OPTIONS)
    deploy.add_argument(
        "--wait",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long replicas may take to start (default: 600)",
    )
    deploy.add_argument("--json", action="store_true", help="print the result as JSON")
    deploy.set_defaults(run=_deploy)

    undeploy = sub.add_parser(
        "undeploy",
        help="remove an application from a Ray cluster",
        description="Remove the application NAME from the Ray cluster; in-flight calls finish "
        "first.",
    )
    undeploy.add_argument("name", metavar="NAME")
    _address(undeploy)
    undeploy.set_defaults(run=_undeploy)


def _address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ray",
        required=True,
        metavar="ADDRESS",
        help="the cluster: HOST:PORT as `ray start --head` printed, or `auto` for this machine's",
    )


def parse_autoscale(text: str) -> dict[str, int]:
    """`1:4` → Serve's autoscaling config."""
    low, sep, high = text.partition(":")
    if not sep or not low.isdigit() or not high.isdigit() or not 0 < int(low) <= int(high):
        raise UsageError(
            f"--autoscale `{text}` is not MIN:MAX with 1 ≤ MIN ≤ MAX; write it like `1:4`"
        )
    return {"min_replicas": int(low), "max_replicas": int(high)}


def parse_resources(items: list[str]) -> dict[str, float]:
    resources = {}
    for item in items:
        key, sep, amount = item.partition("=")
        try:
            resources[key] = float(amount) if sep and key else float("nan")
        except ValueError:
            resources[key] = float("nan")
        if not resources[key] > 0:
            raise UsageError(
                f"--resource `{item}` is not NAME=AMOUNT with a positive amount, e.g. `node2=1`"
            )
    return resources


def _deploy(args: argparse.Namespace) -> int:
    from .. import ray as takeout_ray
    from . import print_json

    if args.replicas is not None and args.replicas < 1:
        raise UsageError(f"--replicas `{args.replicas}` must be at least 1")
    autoscaling = parse_autoscale(args.autoscale) if args.autoscale else None
    actor_options: dict[str, object] = {"num_cpus": args.num_cpus}
    if args.resource:
        actor_options["resources"] = parse_resources(args.resource)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    config = ServeConfig.from_args(args)
    options = {name: getattr(config, name) for name in REQUEST_OPTIONS if name != "signing_key"}
    info = takeout_ray.deploy(
        args.bundle,
        args.ray,
        name=args.name,
        route_prefix=args.route,
        num_replicas=args.replicas,
        autoscaling=autoscaling,
        ray_actor_options=actor_options,
        signing_key=config.signing_key,
        wait=args.wait,
        progress=progress,
        **options,
    )
    if args.json:
        print_json(info)
    else:
        print(info["url"])
    return 0


def _undeploy(args: argparse.Namespace) -> int:
    from .. import ray as takeout_ray

    takeout_ray.undeploy(args.name, args.ray)
    print(f"removed `{args.name}`", file=sys.stderr)
    return 0
