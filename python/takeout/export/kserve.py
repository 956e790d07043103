"""`takeout export BUNDLE --to kserve --image IMAGE`: one KServe `InferenceService` whose
predictor is the image's own container on port 8080 (KServe's v1 and v2 routes are served by
`takeout serve` itself, so no model server runtime is involved).

`--mode raw` (default) is KServe's RawDeployment: a plain Deployment, every probe as written.
`--mode serverless` runs on Knative: the port is named `http1` (Knative's name for HTTP/1),
there is no startup probe (Knative gates traffic on its own readiness), and Knative's
queue-proxy rewrites the readiness probe (and the liveness probe on the serving port) to probe
through itself; an `emptyDir` needs Knative's `kubernetes.podspec-emptydir` feature (on by
default since Knative 1.6 — check yours).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from . import _yaml, kubernetes
from ._writer import write_text

MODES = {"raw": "RawDeployment", "serverless": "Serverless"}


def inference_service(
    manifest: dict[str, Any],
    image: str,
    size: kubernetes.Sizing,
    *,
    mode: str,
    replicas: int,
    max_replicas: int,
    namespace: Optional[str],
    signed: bool,
) -> dict[str, Any]:
    name = kubernetes.dns_name(manifest)
    serverless = mode == "serverless"
    server = kubernetes.server_container(
        name,
        image,
        size,
        signed=signed,
        container_name="kserve-container",
        port_name="http1" if serverless else "http",
        startup_probe=not serverless,
    )
    annotations = {"serving.kserve.io/deploymentMode": MODES[mode]}
    annotations.update(kubernetes.scrape_annotations())
    predictor: dict[str, Any] = {
        "minReplicas": replicas,
        "maxReplicas": max(max_replicas, replicas),
        "containers": [server],
        **kubernetes.pod_spec_extras(),
    }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": kubernetes.metadata(name, namespace, annotations=annotations),
        "spec": {"predictor": predictor},
    }


#: Fields of a KServe predictor that are not part of a Kubernetes PodSpec.
PREDICTOR_ONLY = (
    "minReplicas",
    "maxReplicas",
    "scaleTarget",
    "scaleMetric",
    "containerConcurrency",
    "timeout",
    "canaryTrafficPercent",
    "logger",
    "batcher",
)


def write(
    bundle: Path,
    manifest: dict[str, Any],
    out: Path,
    *,
    image: str,
    mode: str,
    replicas: int,
    max_replicas: int,
    namespace: Optional[str],
    measured: Optional[dict[str, Any]],
) -> dict[str, Any]:
    size = kubernetes.sizing(bundle, manifest, measured)
    doc = inference_service(
        manifest,
        image,
        size,
        mode=mode,
        replicas=replicas,
        max_replicas=max_replicas,
        namespace=namespace,
        signed="signature" in manifest,
    )
    write_text(out / "inferenceservice.yaml", _yaml.dump(doc))
    return {
        "target": "kserve",
        "bundle": manifest["name"],
        "image": image,
        "mode": MODES[mode],
        "sizing": size.to_marker(),
        "files": ["inferenceservice.yaml"],
    }
