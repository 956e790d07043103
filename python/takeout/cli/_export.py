"""`takeout export`: a bundle as a container image, Kubernetes manifests, a KServe
InferenceService or a Ray Serve application."""

from __future__ import annotations

import argparse
import sys


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a whole number") from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands to `sub`."""
    from ..export import TARGETS

    export = sub.add_parser(
        "export",
        help="write a container build context, Kubernetes/KServe manifests or a Ray app",
        description="--to container writes a build context that needs no network "
        "(Containerfile, the lock's wheels, takeout's wheel, the bundle); --build builds it, "
        "--verify runs it read-only as non-root and replays the bundle's examples over HTTP. "
        "--to kubernetes writes a kustomize directory, --to kserve an InferenceService, both "
        "for --image IMAGE.",
    )
    export.add_argument("bundle", metavar="BUNDLE")
    # not `choices=`: an unknown target gets takeout's one sentence, not argparse's
    export.add_argument("--to", required=True, metavar="|".join(TARGETS), dest="to")
    export.add_argument("-o", "--output", default=None, metavar="DIR", help="default ./NAME-TARGET")
    export.add_argument("--force", action="store_true", help="replace an existing export there")
    export.add_argument(
        "--signing-key", default=None, help="key of a signed bundle (default: $TAKEOUT_SIGNING_KEY)"
    )
    image = export.add_argument_group("--to container")
    image.add_argument(
        "--base-image",
        default=None,
        metavar="IMAGE",
        help="default: python:3.X-slim for the bundle's Python minor",
    )
    image.add_argument("--build", action="store_true", help="build the image")
    image.add_argument(
        "--tag", default=None, metavar="TAG", help="default localhost/takeout-NAME:DIGEST"
    )
    image.add_argument(
        "--engine",
        default=None,
        metavar="podman|docker|buildah",
        help="default: the first of them found",
    )
    image.add_argument(
        "--verify",
        action="store_true",
        help="build, run read-only as non-root, replay the examples, SIGTERM",
    )
    image.add_argument(
        "--save",
        default=None,
        metavar="FILE.tar",
        help="also write the image as an archive (podman load, docker load)",
    )
    image.add_argument(
        "--blas-threads",
        type=_whole,
        default=None,
        metavar="N",
        help="BLAS/OpenMP threads per worker (default: from the CPUs the container gets)",
    )
    image.add_argument("--workers", type=_whole, default=1, metavar="N")
    image.add_argument(
        "--with-ray",
        nargs="?",
        const="ray[serve]",
        default=None,
        metavar="REQUIREMENT",
        help="add ray[serve] to the image (for KubeRay)",
    )
    image.add_argument(
        "--wheelhouse",
        default=None,
        metavar="DIR",
        help="wheels for pins the lock has none for on the target",
    )
    image.add_argument(
        "--takeout-wheel",
        default=None,
        metavar="FILE",
        help="takeout's own wheel (default: $TAKEOUT_WHEEL, or built with maturin)",
    )
    cluster = export.add_argument_group("--to kubernetes | kserve | ray")
    cluster.add_argument("--image", default=None, metavar="IMAGE")
    cluster.add_argument("--replicas", type=_whole, default=2, metavar="N")
    cluster.add_argument("--max-replicas", type=_whole, default=8, metavar="N")
    cluster.add_argument("--namespace", default=None, metavar="NS")
    cluster.add_argument(
        "--service-monitor", action="store_true", help="also a Prometheus Operator ServiceMonitor"
    )
    cluster.add_argument(
        "--mode",
        default="raw",
        metavar="raw|serverless",
        help="KServe deployment mode (default: raw)",
    )
    cluster.add_argument(
        "--runtime-env",
        default=None,
        metavar="pip",
        help="Ray: install the lock with a pip runtime env instead of an image",
    )
    export.add_argument("--json", action="store_true", help="print the result as JSON")
    export.set_defaults(run=_export)


def _export(args: argparse.Namespace) -> int:
    from ..export import export
    from . import print_json

    result = export(
        args.bundle,
        args.to,
        args.output,
        force=args.force,
        signing_key=args.signing_key,
        base_image=args.base_image,
        blas_threads=args.blas_threads,
        workers=args.workers,
        with_ray=args.with_ray,
        wheelhouse=args.wheelhouse,
        takeout_wheel=args.takeout_wheel,
        build=args.build,
        tag=args.tag,
        engine=args.engine,
        verify=args.verify,
        save=args.save,
        image=args.image,
        replicas=args.replicas,
        max_replicas=args.max_replicas,
        namespace=args.namespace,
        service_monitor=args.service_monitor,
        mode=args.mode,
        runtime_env=args.runtime_env,
    )
    if args.json:
        print_json(
            {
                "target": result.target,
                "path": str(result.path),
                "image": result.image,
                "archive": str(result.archive) if result.archive else None,
                "verify": result.check.to_dict() if result.check is not None else None,
                "export": result.marker,
            }
        )
    else:
        print(f"exported `{result.marker.get('bundle')}` --to {result.target} into {result.path}")
        if result.image:
            print(f"  image {result.image}")
        if result.archive:
            print(f"  archive {result.archive}")
        sizing = result.marker.get("sizing")
        if sizing:
            print(f"  requests cpu {sizing['cpu']}, memory {sizing['memory']} ({sizing['from']})")
        if result.check is not None:
            print(result.check)
    if not result.ok:
        print("takeout: error: the image failed --verify; see the problems above", file=sys.stderr)
        return 1
    return 0
