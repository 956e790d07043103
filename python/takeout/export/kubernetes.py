"""`takeout export BUNDLE --to kubernetes --image IMAGE`: a kustomize directory.

    kustomization.yaml, deployment.yaml, service.yaml, pdb.yaml, hpa.yaml
    servicemonitor.yaml   only with --service-monitor (Prometheus Operator)

The Deployment follows the restricted Pod Security profile (non-root, no privilege escalation,
every capability dropped, RuntimeDefault seccomp), runs with a read-only root filesystem and
an `emptyDir` at `/tmp`, mounts no service-account token, probes `/readyz` (startup and
readiness) and `/healthz` (liveness), sleeps briefly before SIGTERM so endpoints drop it
first, and gives the drain time to finish. CPU and memory requests come from what `--verify`
measured for this bundle when it ran, else from the bundle's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from . import _yaml, container
from ._writer import write_text

#: Seconds the pod keeps serving after it is told to stop, while endpoints forget it.
PRE_STOP_SECONDS = 5
#: `takeout serve --grace`: how long in-flight calls may still run after SIGTERM.
DRAIN_SECONDS = 30
MANAGED_BY = "takeout"
SIGNING_SECRET_KEY = "key"


@dataclass(frozen=True)
class Sizing:
    cpu_millis: int
    memory_mib: int
    source: str

    @property
    def blas_threads(self) -> int:
        """The BLAS/OpenMP threads that fit the CPU request (at least one)."""
        return max(1, self.cpu_millis // 1000)

    @property
    def memory_limit_mib(self) -> int:
        return self.memory_mib * 2

    def to_marker(self) -> dict[str, str]:
        return {"cpu": f"{self.cpu_millis}m", "memory": f"{self.memory_mib}Mi", "from": self.source}


def sizing(bundle: Path, manifest: dict[str, Any], measured: Optional[dict[str, Any]]) -> Sizing:
    if measured:
        peak = int(measured.get("rss_peak") or measured.get("rss") or 0)
        memory = _round_up(peak * 1.5 / 2**20, 16)
        # the short load saturates what the server can use; one core per worker at most
        cpu = float(measured.get("cpu_per_second") or 0.5)
        millis = int(min(max(cpu, 0.25), 1.0) * 10) * 100
        return Sizing(max(millis, 250), max(memory, 64), "measured by --verify")
    size = sum(int(b.get("size", 0)) for b in manifest.get("buffers", ()))
    try:
        size += (bundle / "function.pkl").stat().st_size
    except OSError:
        pass
    # an interpreter with numpy/scikit-learn imported is ~150 MiB; the buffers come on top
    memory = _round_up(160 + size * 1.2 / 2**20, 16)
    return Sizing(500, memory, "estimated from the bundle's size (no --verify measurement)")


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


def dns_name(manifest: dict[str, Any]) -> str:
    """The bundle's name as Kubernetes object names and image names allow (DNS-1123)."""
    return str(manifest["name"]).lower().replace("_", "-").replace(".", "-")


def labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": MANAGED_BY}


def metadata(name: str, namespace: Optional[str], **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = labels(name)
    meta.update(extra)
    return meta


def scrape_annotations() -> dict[str, str]:
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(container.PORT),
        "prometheus.io/path": "/metrics",
    }


def server_container(
    name: str,
    image: str,
    size: Sizing,
    *,
    signed: bool,
    container_name: str = "takeout",
    port_name: str = "http",
    startup_probe: bool = True,
) -> dict[str, Any]:
    """The serving container, shared by the Deployment and KServe's predictor."""
    env: list[dict[str, Any]] = [
        {"name": "PORT", "value": str(container.PORT)},
        {"name": "TAKEOUT_BLAS_THREADS", "value": str(size.blas_threads)},
    ]
    if signed:  # the key stays in a Secret the cluster owner creates; never in these files
        env.append(
            {
                "name": "TAKEOUT_SIGNING_KEY",
                "valueFrom": {
                    "secretKeyRef": {"name": f"{name}-signing-key", "key": SIGNING_SECRET_KEY}
                },
            }
        )
    probe_port: Any = port_name if port_name else container.PORT
    spec: dict[str, Any] = {
        "name": container_name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": port_name, "containerPort": container.PORT, "protocol": "TCP"}],
        "env": env,
        "resources": {
            "requests": {"cpu": f"{size.cpu_millis}m", "memory": f"{size.memory_mib}Mi"},
            "limits": {"memory": f"{size.memory_limit_mib}Mi"},
        },
    }
    if startup_probe:
        spec["startupProbe"] = _probe("/readyz", probe_port, period=1, failures=120)
    spec["readinessProbe"] = _probe("/readyz", probe_port, period=5, failures=2)
    spec["livenessProbe"] = _probe("/healthz", probe_port, period=10, failures=3)
    spec["lifecycle"] = {
        # the image's own interpreter: the base may have no `sleep` binary
        "preStop": {
            "exec": {
                "command": [
                    f"{container.VENV}/bin/python",
                    "-c",
                    f"import time; time.sleep({PRE_STOP_SECONDS})",
                ]
            }
        }
    }
    spec["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": container.UID,
        "runAsGroup": container.UID,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    spec["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    return spec


def pod_spec_extras() -> dict[str, Any]:
    """Pod-level fields beside the container, shared with KServe's predictor."""
    return {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": PRE_STOP_SECONDS + DRAIN_SECONDS + 5,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": container.UID,
            "runAsGroup": container.UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
    }


def _probe(path: str, port: Any, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def documents(
    manifest: dict[str, Any],
    image: str,
    size: Sizing,
    *,
    replicas: int,
    max_replicas: int,
    namespace: Optional[str],
    service_monitor: bool,
    signed: bool,
) -> dict[str, dict[str, Any]]:
    name = dns_name(manifest)
    selector = {"app.kubernetes.io/name": name}
    pod = {
        "containers": [server_container(name, image, size, signed=signed)],
        **pod_spec_extras(),
    }
    docs: dict[str, dict[str, Any]] = {
        "deployment.yaml": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(name, namespace),
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": selector},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
                },
                "template": {
                    "metadata": {"labels": labels(name), "annotations": scrape_annotations()},
                    "spec": pod,
                },
            },
        },
        "service.yaml": {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(name, namespace),
            "spec": {
                "type": "ClusterIP",
                "selector": selector,
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            },
        },
        "pdb.yaml": {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": metadata(name, namespace),
            # one at a time; a single replica must still let a node drain
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
        },
        "hpa.yaml": {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": metadata(name, namespace),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": replicas,
                "maxReplicas": max(max_replicas, replicas),
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 70},
                        },
                    }
                ],
            },
        },
    }
    if service_monitor:
        docs["servicemonitor.yaml"] = {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": metadata(name, namespace),
            "spec": {
                "selector": {"matchLabels": selector},
                "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
            },
        }
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
    }
    if namespace:
        kustomization["namespace"] = namespace
    kustomization["resources"] = sorted(docs)
    docs["kustomization.yaml"] = kustomization
    return docs


def write(
    bundle: Path,
    manifest: dict[str, Any],
    out: Path,
    *,
    image: str,
    replicas: int,
    max_replicas: int,
    namespace: Optional[str],
    service_monitor: bool,
    measured: Optional[dict[str, Any]],
) -> dict[str, Any]:
    size = sizing(bundle, manifest, measured)
    docs = documents(
        manifest,
        image,
        size,
        replicas=replicas,
        max_replicas=max_replicas,
        namespace=namespace,
        service_monitor=service_monitor,
        signed="signature" in manifest,
    )
    for filename, doc in sorted(docs.items()):
        write_text(out / filename, _yaml.dump(doc))
    return {
        "target": "kubernetes",
        "bundle": manifest["name"],
        "image": image,
        "sizing": size.to_marker(),
        "files": sorted(docs),
    }
