"""`takeout export BUNDLE --to ray`: `serve_config.yaml` for `serve deploy` and
`rayservice.yaml` for KubeRay.

Nothing is installed at deploy time by default: Ray's runtime-env pip installs doubled the time
to the first answer on our machines and are the most common failure its users report, so the
cluster is expected to run an image that has the bundle's lock (`takeout export --to container
--with-ray`); `runtime_env="pip"` opts into a pip runtime env pinned to the lock for clusters
without one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

from .errors import UsageError

#: Where an image built by `takeout export --to container --with-ray` holds the bundle.
IMAGE_BUNDLE = "/opt/takeout/bundle"
SERVE_PORT = 8000


def write_export(
    bundle: Path, out: Path, *, image: Optional[str], runtime_env: Optional[str]
) -> None:
    """Write `serve_config.yaml` and `rayservice.yaml` for the bundle into `out`."""
    import yaml  # a dependency of Ray, which this export pins

    from .bundle import read_manifest

    if runtime_env not in (None, "pip"):
        raise UsageError(f"--runtime-env `{runtime_env}` is unknown; use `pip` or leave it out")
    ray_version = _ray_version()
    manifest = read_manifest(bundle)
    name = str(manifest["name"])
    env = _pip_env(manifest) if runtime_env == "pip" else None

    local = _serve_config(name, str(Path(bundle).resolve()), env)
    in_image = _serve_config(name, IMAGE_BUNDLE, env)
    _validate(local)
    _validate(in_image)
    header = (
        f"# `serve deploy serve_config.yaml` deploys `{name}` with takeout's builder; the\n"
        "# bundle path is read on the node that builds the application, and Ray's object store\n"
        "# carries its files to every replica.\n"
    )
    (out / "serve_config.yaml").write_text(header + _dump(yaml, local))
    image = image or f"localhost/{_dns_name(name)}:latest"
    service = _rayservice(name, image, ray_version, _dump(yaml, in_image))
    (out / "rayservice.yaml").write_text(
        f"# KubeRay RayService for `{name}` on `{image}` (Ray {ray_version}); the bundle is at\n"
        f"# {IMAGE_BUNDLE} in that image.\n" + _dump(yaml, service)
    )


def _ray_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:
        raise UsageError(
            "`--to ray` pins the cluster's Ray version to the one installed here, and Ray is "
            "not installed; install takeout's `ray` extra: pip install 'takeout[ray]'"
        ) from None


def _pip_env(manifest: dict[str, Any]) -> dict[str, Any]:
    from importlib import metadata

    pins = list(manifest.get("lock") or [])
    if not any(p.split("==")[0].lower() == "takeout" for p in pins):
        pins.append(f"takeout=={metadata.version('takeout')}")
    return {"pip": {"packages": pins, "pip_check": False}}


def _serve_config(name: str, bundle: str, env: Optional[dict[str, Any]]) -> dict[str, Any]:
    application: dict[str, Any] = {
        "name": name,
        "route_prefix": f"/{name}",
        "import_path": "takeout.ray:build",
        "args": {"bundle": bundle},
    }
    if env:
        application["runtime_env"] = env
    return {"applications": [application]}


def _validate(config: dict[str, Any]) -> None:
    from ray.serve.schema import ServeDeploySchema

    ServeDeploySchema.model_validate(config)


def _dns_name(name: str) -> str:
    """A Kubernetes object name (RFC 1123 label) from a bundle name."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return label or "takeout"


def _container(name: str, image: str, ports: list[tuple[str, int]], cpu: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "ports": [{"name": n, "containerPort": p} for n, p in ports],
        "resources": {
            "requests": {"cpu": cpu, "memory": "2Gi"},
            "limits": {"cpu": cpu, "memory": "4Gi"},
        },
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
        "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", "ray stop"]}}},
    }


def _pod(container: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"containers": [container]}}


def _rayservice(name: str, image: str, ray_version: str, serve_config: str) -> dict[str, Any]:
    label = _dns_name(name)
    head_ports = [("gcs-server", 6379), ("dashboard", 8265), ("client", 10001)]
    head_ports.append(("serve", SERVE_PORT))
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {
            "name": label,
            "labels": {"app.kubernetes.io/name": label, "app.kubernetes.io/managed-by": "takeout"},
        },
        "spec": {
            "serveConfigV2": serve_config,
            "rayClusterConfig": {
                "rayVersion": ray_version,
                "headGroupSpec": {
                    "rayStartParams": {"dashboard-host": "0.0.0.0"},
                    "template": _pod(_container("ray-head", image, head_ports, "2")),
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "workers",
                        "replicas": 1,
                        "minReplicas": 1,
                        "maxReplicas": 4,
                        "rayStartParams": {},
                        "template": _pod(_container("ray-worker", image, [], "1")),
                    }
                ],
            },
        },
    }


def _dump(yaml: Any, value: Any) -> str:
    class Literal(yaml.SafeDumper):
        pass

    def text(dumper: Any, data: str) -> Any:
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Literal.add_representer(str, text)
    return str(yaml.dump(value, Dumper=Literal, sort_keys=False, default_flow_style=False))
