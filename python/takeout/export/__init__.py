"""`takeout export`: ship a bundle as a container build context (and image), Kubernetes
manifests, a KServe InferenceService or a Ray Serve application.

One module per target (`container`, `kubernetes`, `kserve`; Ray's lives in `takeout.ray`);
every target writes through `_writer.writing`, so an export appears whole or not at all, and an
existing directory is replaced only with `force=True` and only if it is an export.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

from ..errors import UsageError
from . import _writer

TARGETS = ("container", "kubernetes", "kserve", "ray")
SIGNING_KEY_ENV = "TAKEOUT_SIGNING_KEY"

__all__ = ["TARGETS", "ExportResult", "export"]


@dataclass
class ExportResult:
    target: str
    path: Path
    marker: dict[str, Any]
    image: Optional[str] = None
    check: Any = None  # _verify.ImageCheck after --verify
    archive: Optional[Path] = None

    @property
    def ok(self) -> bool:
        return self.check is None or bool(self.check.ok)


def export(
    bundle: Union[str, os.PathLike[str]],
    to: str,
    out: Union[str, os.PathLike[str], None] = None,
    *,
    force: bool = False,
    signing_key: Optional[str] = None,
    # container
    base_image: Optional[str] = None,
    blas_threads: Optional[int] = None,
    workers: int = 1,
    with_ray: Optional[str] = None,
    wheelhouse: Union[str, os.PathLike[str], None] = None,
    takeout_wheel: Optional[str] = None,
    build: bool = False,
    tag: Optional[str] = None,
    engine: Optional[str] = None,
    verify: bool = False,
    save: Union[str, os.PathLike[str], None] = None,
    # kubernetes, kserve, ray
    image: Optional[str] = None,
    replicas: int = 2,
    max_replicas: int = 8,
    namespace: Optional[str] = None,
    service_monitor: bool = False,
    mode: str = "raw",
    runtime_env: Optional[str] = None,
) -> ExportResult:
    """Write the export of `bundle` for `to` into `out` (default `./NAME-TARGET`)."""
    if to not in TARGETS:
        raise UsageError(f"export target `{to}` is unknown; use --to {', '.join(TARGETS)}")
    root, manifest = _read(bundle, signing_key)
    target = Path(out) if out is not None else Path.cwd() / f"{manifest['name']}-{to}"
    _writer.check_target(target, force)  # before any download or build
    _check_counts(replicas=replicas, max_replicas=max_replicas, workers=workers)
    if blas_threads is not None and blas_threads < 1:
        raise UsageError(f"--blas-threads `{blas_threads}` must be at least 1")

    if to == "container":
        return _container(
            root,
            manifest,
            target,
            force=force,
            signing_key=signing_key,
            options=_container_options(
                base_image, blas_threads, workers, with_ray, wheelhouse, takeout_wheel
            ),
            build=build or verify or save is not None,
            tag=tag,
            engine=engine,
            verify=verify,
            save=Path(save) if save is not None else None,
        )
    if to == "ray":
        return _ray(root, manifest, target, force=force, image=image, runtime_env=runtime_env)
    if not image:
        raise UsageError(
            f"--to {to} needs --image IMAGE (the image built by `takeout export --to container "
            "--build --tag IMAGE`, pushed where the cluster pulls from)"
        )
    from . import _verify

    common: dict[str, Any] = {
        "image": image,
        "replicas": replicas,
        "max_replicas": max_replicas,
        "namespace": namespace,
        "measured": _verify.measured(root / "manifest.json"),
    }
    write: Callable[..., dict[str, Any]]
    if to == "kubernetes":
        from .kubernetes import write

        common["service_monitor"] = service_monitor
    else:
        from . import kserve

        if mode not in kserve.MODES:
            raise UsageError(
                f"KServe mode `{mode}` is unknown; use --mode raw or --mode serverless"
            )
        write = kserve.write
        common["mode"] = mode
    with _writer.writing(target, force) as output:
        output.marker.update(write(root, manifest, output.path, **common))
    return ExportResult(to, target.resolve(), output.marker, image=image)


def _read(bundle: Any, signing_key: Optional[str]) -> tuple[Path, dict[str, Any]]:
    from .. import _runtime
    from ..bundle import bundle_dir, read_manifest

    root = bundle_dir(bundle).resolve()
    try:
        raw = json.loads((root / _runtime.MANIFEST).read_bytes())
    except (OSError, ValueError):
        raw = {}
    key = signing_key or os.environ.get(SIGNING_KEY_ENV) or None
    if isinstance(raw, dict) and raw.get("signature") and not key:
        raise UsageError(
            f"bundle `{root.name}` is signed; pass --signing-key (or set {SIGNING_KEY_ENV}) so "
            "export can check it — the key is never written into the image or the manifests: "
            f"give it to the container at run time as {SIGNING_KEY_ENV}"
        )
    return root, read_manifest(root, signing_key=key)


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if value < 1:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} `{value}` must be at least 1")


def _container_options(
    base_image: Optional[str],
    blas_threads: Optional[int],
    workers: int,
    with_ray: Optional[str],
    wheelhouse: Any,
    takeout_wheel: Optional[str],
) -> Any:
    from .container import ContainerOptions

    house = Path(wheelhouse) if wheelhouse is not None else None
    if house is not None and not house.is_dir():
        raise UsageError(f"wheelhouse `{house}` is not a directory; pass a directory of wheels")
    return ContainerOptions(
        base_image=base_image,
        blas_threads=blas_threads,
        workers=workers,
        with_ray=with_ray,
        wheelhouse=house.resolve() if house is not None else None,
        takeout_wheel=takeout_wheel,
    )


def _container(
    root: Path,
    manifest: dict[str, Any],
    target: Path,
    *,
    force: bool,
    signing_key: Optional[str],
    options: Any,
    build: bool,
    tag: Optional[str],
    engine: Optional[str],
    verify: bool,
    save: Optional[Path],
) -> ExportResult:
    from . import _engine, container

    found = _engine.find(engine) if build else None  # no engine: say so before any download
    if verify and found is not None and not found.can_run:
        raise UsageError(
            f"--verify runs the image, which `{found.name}` cannot do; install podman or docker, "
            "or pass --engine podman"
        )
    with _writer.writing(target, force) as output:
        marker = container.write_context(root, manifest, output.path, options)
        output.marker.update(marker)
    result = ExportResult("container", target.resolve(), marker)
    if found is None:
        return result
    result.image = tag or default_tag(manifest, target)
    base = options.base_for(str(manifest["python"]["minor"]))
    if base.startswith("localhost/") and not found.image_exists(base):
        raise UsageError(
            f"base image `{base}` is not in {found.name}'s local storage; build it first "
            "(`make base-image` in takeout's repository builds a Debian one) or pass another "
            "--base-image"
        )
    found.build(result.path, result.image)
    if verify:
        from . import _verify

        key = signing_key or os.environ.get(SIGNING_KEY_ENV) or None
        result.check = _verify.verify_image(found, result.image, manifest, signing_key=key)
        if result.check.ok:
            _verify.record(root / "manifest.json", result.check)
    if save is not None:
        found.save(result.image, save)
        result.archive = save.resolve()
    return result


def default_tag(manifest: dict[str, Any], context: Path) -> str:
    """`localhost/NAME:DIGEST`, the digest of the context's Containerfile and wheel list:
    the same export gets the same tag."""
    import hashlib

    digest = hashlib.sha256()
    for rel in ("Containerfile", "wheels/requirements.txt", "bundle/manifest.json"):
        digest.update((context / rel).read_bytes())
    from .kubernetes import dns_name

    return f"localhost/takeout-{dns_name(manifest)}:{digest.hexdigest()[:12]}"


def _ray(
    root: Path,
    manifest: dict[str, Any],
    target: Path,
    *,
    force: bool,
    image: Optional[str],
    runtime_env: Optional[str],
) -> ExportResult:
    import importlib

    try:
        ray_export = importlib.import_module("takeout.ray")
    except ImportError:
        raise UsageError(
            "--to ray is not available yet in this takeout; use --to container, kubernetes or "
            "kserve"
        ) from None
    with _writer.writing(target, force) as output:
        ray_export.write_export(root, output.path, image=image, runtime_env=runtime_env)
        marker = {"target": "ray", "bundle": manifest["name"], "image": image}
        output.marker.update(marker)
    return ExportResult("ray", target.resolve(), marker, image=image)
