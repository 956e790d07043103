"""takeout on Ray Serve, against a real local Ray cluster (one per session, a second node for
the placement test): `takeout deploy`/`undeploy`, the HTTP contract compared answer for answer
with `takeout serve`, replicas replaced, rescaled and drained, the exported config deployed.

Skips without Ray; fails when `CI` is set (CI installs the `ray` extra with `make install`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import httpx
import pytest

import takeout
import takeout.errors
import takeout.ray

from ._ray_cluster import Cluster
from .support import run_cells
from .test_serve import PROBE, free_port, post
from .test_serve import serve as serve_process

pytestmark = pytest.mark.slow

HAVE_RAY = importlib.util.find_spec("ray") is not None
if not HAVE_RAY:
    if os.environ.get("CI"):
        raise RuntimeError("CI must run the Ray tests: `make install` installs the `ray` extra")
    pytest.skip("Ray is not installed (the `ray` extra)", allow_module_level=True)

TOKEN = "s3cret"
AUTH = {"authorization": f"Bearer {TOKEN}"}
# Options shared by the two targets of the contract tests: small limits that are quick to hit.
LIMITS = {"timeout": 1.0, "max_concurrency": 4, "max_body": "64KiB", "body_timeout": 1.0}

WHERE = """
import numpy as np

weights = np.arange(1 << 21, dtype=np.float64)   # 16 MiB: a buffer file, past INLINE_MAX

def where(i: int) -> dict:
    '''The node this runs on and the files its buffers are mapped from.'''
    import ray
    from threadpoolctl import threadpool_info
    with open("/proc/self/maps") as maps:
        mapped = sorted({line.split()[-1] for line in maps if "/buffers/" in line})
    return {"node": ray.get_runtime_context().get_node_id(), "mapped": mapped,
            "value": float(weights[i]),
            "blas_threads": sorted({p["num_threads"] for p in threadpool_info()})}
"""


# ── the cluster ─────────────────────────────────────────────────────────────────────────────


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        c.join()  # this process drives the in-process tests
        yield c
    finally:
        import ray

        ray.shutdown()
        c.stop()


@pytest.fixture(scope="session")
def ray_bundles(tmp_path_factory: pytest.TempPathFactory, seed: dict[str, Any]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ray-bundles")
    probe = run_cells(PROBE)["probe"]
    return {
        "km_predict_one": takeout.pack(
            seed["km_predict_one"], root / "km_predict_one.takeout", examples=[([0.5, 0.5],)]
        ).path,
        "probe": takeout.pack(probe, root / "probe.takeout", examples=[(1.5,)]).path,
    }


@pytest.fixture(scope="session")
def node2(cluster: Cluster) -> str:
    """A second node on this machine with the custom resource `node2`: its ID."""
    import ray

    cluster.add_node("node2")

    def found() -> list[str]:
        return [n["NodeID"] for n in ray.nodes() if n["Alive"] and "node2" in n["Resources"]]

    wait_for(found, 60, "node2")
    return found()[0]


def running_replicas(name: str) -> list[dict[str, Any]]:
    from ray.serve.context import _get_global_client

    details = _get_global_client().get_serve_details()["applications"].get(name) or {}
    return [
        r
        for d in details.get("deployments", {}).values()
        for r in d.get("replicas", [])
        if r["state"] == "RUNNING"
    ]


def wait_for(predicate: Any, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


# ── deploy the seed's km_predict_one from the command line ─────────────────────────────────


def test_deploy_km_predict_one_with_two_replicas(
    cluster: Cluster, ray_bundles: dict[str, Path], seed: dict[str, Any]
) -> None:
    r = cluster.takeout(
        "deploy", str(ray_bundles["km_predict_one"]), "--ray", cluster.address,
        "--replicas=2", "--num-cpus=0.5", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["url"] == f"http://127.0.0.1:{cluster.http_port}/km_predict_one"
    assert info["replicas"] == 2
    assert "2/2 replicas running" in r.stderr  # progress while the replicas start
    try:
        fn = seed["km_predict_one"]
        for sample in ([0.5, 0.5], [0.1, 0.9], [0.95, 0.05]):
            got = post(info["url"] + "/call", {"sample": sample})
            assert got.status_code == 200 and got.json() == {"result": int(fn(sample))}
        got = post(info["url"] + "/v1/models/km_predict_one:predict", {"instances": [[0.5, 0.5]]})
        assert got.json() == {"predictions": [int(fn([0.5, 0.5]))]}
        assert len(running_replicas("km_predict_one")) == 2
    finally:
        r = cluster.takeout("undeploy", "km_predict_one", "--ray", cluster.address)
        assert r.returncode == 0, r.stderr
    assert "km_predict_one" not in takeout.ray._applications()
    import ray

    stores = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)]
    assert not [s for s in stores if s.startswith("bundle:km_predict_one:")], stores


# ── the HTTP contract: every answer as `takeout serve` gives it ─────────────────────────────

DEEP = "[" * 10_000 + "]" * 10_000
JSON = {"content-type": "application/json"}
SECOND_BAD = '{"instances": [{"x": 1}, {"x": []}]}'
BIG = json.dumps({"x": 1, "pad": "a" * (70 << 10)})

# (id, method, path, body, headers): each request goes to both targets, with the token
# unless the case is about the token.
CASES = [
    ("call-keywords", "POST", "/call", json.dumps({"x": 1.5}), JSON),
    ("call-positional", "POST", "/call", "[2]", JSON),
    ("call-default", "POST", "/call", json.dumps({"x": 2, "mode": "ok"}), JSON),
    ("kserve-v1", "POST", "/v1/models/probe:predict", '{"instances": [[1], {"x": 2}]}', JSON),
    ("kserve-v1-metadata", "GET", "/v1/models/probe", None, {}),
    ("kserve-v1-models", "GET", "/v1/models", None, {}),
    ("kserve-v2-server", "GET", "/v2", None, {}),
    ("kserve-v2-live", "GET", "/v2/health/live", None, {}),
    ("kserve-v2-ready", "GET", "/v2/health/ready", None, {}),
    ("kserve-v2-metadata", "GET", "/v2/models/probe", None, {}),
    ("kserve-v2-model-ready", "GET", "/v2/models/probe/ready", None, {}),
    ("400-kserve-v2-malformed", "POST", "/v2/models/probe/infer", "{", JSON),
    ("404-kserve-v2-other", "GET", "/v2/models/other", None, {}),
    ("healthz", "GET", "/healthz", None, {}),
    ("readyz", "GET", "/readyz", None, {}),
    ("openapi", "GET", "/openapi.json", None, {}),
    ("page", "GET", "/", None, {}),
    ("400-malformed", "POST", "/call", '{"x": ', JSON),
    ("400-too-deep", "POST", "/call", DEEP, JSON),
    ("401-missing", "POST", "/call", '{"x": 1}', {**JSON, "authorization": ""}),
    ("401-wrong", "POST", "/call", '{"x": 1}', {**JSON, "authorization": "Bearer nope"}),
    ("401-metrics", "GET", "/metrics", None, {"authorization": ""}),
    ("404", "GET", "/nope", None, {}),
    ("404-other-model", "POST", "/v1/models/other:predict", '{"instances": []}', JSON),
    ("405", "GET", "/call", None, {}),
    ("413", "POST", "/call", BIG, JSON),
    ("415-none", "POST", "/call", "x=1", {}),
    ("415-text", "POST", "/call", "x=1", {"content-type": "text/plain"}),
    ("422-type", "POST", "/call", '{"x": "one"}', JSON),
    ("422-missing-and-extra", "POST", "/call", '{"mode": "ok", "y": 1}', JSON),
    ("422-positional", "POST", "/call", '[1, "ok", 3]', JSON),
    ("422-kserve", "POST", "/v1/models/probe:predict", SECOND_BAD, JSON),
    ("500-raised", "POST", "/call", '{"x": 3, "mode": "raise"}', JSON),
    ("500-unserializable", "POST", "/call", '{"x": 3, "mode": "object"}', JSON),
    ("504", "POST", "/call", '{"x": 2.5, "mode": "sleep"}', JSON),
]
HEADERS = ("content-type", "allow", "www-authenticate", "retry-after")


@pytest.fixture(scope="module")
def targets(cluster: Cluster, ray_bundles: dict[str, Path]) -> Iterator[dict[str, str]]:
    """The probe under `takeout serve` and on Ray Serve, with the same token and limits."""
    options = [f"--{k.replace('_', '-')}={v}" for k, v in LIMITS.items()]
    local = serve_process("takeout", ray_bundles["probe"], *options, token=TOKEN)
    info = takeout.ray.deploy(
        ray_bundles["probe"],
        cluster.address,
        name="probe",
        ray_actor_options={"num_cpus": 0.5},
        token=TOKEN,
        **LIMITS,
    )
    try:
        yield {"serve": local.url, "ray": info["url"]}
    finally:
        takeout.ray.undeploy("probe", cluster.address)
        assert local.stop() == 0, local.log


def answer(base: str, method: str, path: str, body: Optional[str], headers: dict[str, str]):
    headers = {**AUTH, **headers}
    if not headers.get("authorization"):
        del headers["authorization"]
    r = httpx.request(method, base + path, content=body, headers=headers, timeout=30)
    kept = {h: r.headers[h] for h in HEADERS if h in r.headers}
    try:
        content: Any = r.json()
    except ValueError:
        content = r.text
    return r.status_code, kept, content


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_same_answer_as_takeout_serve(targets: dict[str, str], case: tuple[Any, ...]) -> None:
    name, *request = case
    served = answer(targets["serve"], *request)
    on_ray = answer(targets["ray"], *request)
    assert on_ray == served
    # The reference answer is itself the contract's (not two servers wrong alike).
    want = int(name[:3]) if name[:3].isdigit() else 200
    assert served[0] == want, served


def test_same_503_past_max_concurrency(targets: dict[str, str]) -> None:
    for base in targets.values():
        results: list[httpx.Response] = []

        def slow(base: str = base, results: list[httpx.Response] = results) -> None:
            results.append(post(base + "/call", {"x": 0.6, "mode": "sleep"}, headers=AUTH))

        threads = [threading.Thread(target=slow) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        refused = [r for r in results if r.status_code == 503]
        assert refused and sum(r.status_code == 200 for r in results) >= 4, base
        assert refused[0].headers["retry-after"] == "1"
        assert refused[0].json()["error"]["type"] == "overloaded"


# ── replicas: placed on another node, replaced, rescaled, drained ──────────────────────────


def test_a_second_node_serves_its_own_verified_copy(
    cluster: Cluster, node2: str, tmp_path: Path
) -> None:
    from ray import serve

    packed = takeout.pack(run_cells(WHERE)["where"], tmp_path / "where.takeout").path
    options = {"num_cpus": 0.5, "resources": {"node2": 1}}
    application = takeout.ray.app(packed, ray_actor_options=options, name="where")
    shutil.rmtree(packed)  # the replica must not need the packing directory
    serve._run(application, _blocking=False, name="where", route_prefix="/where")
    try:
        takeout.ray._wait_running("where", 180, None, 1)
        import ray

        # Past INLINE_MAX: the files came from the store actor, not the application's arguments.
        stores = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)]
        assert [s for s in stores if s.startswith("bundle:where:")], stores
        url = f"http://127.0.0.1:{cluster.http_port}/where/call"
        body = post(url, [3]).json()["result"]
        assert body["node"] == node2 and body["value"] == 3.0
        assert body["blas_threads"] == [1]  # the BLAS pools of a replica of num_cpus=0.5
        copy = Path(cluster.env["TAKEOUT_RAY_DIR"]) / node2[:16]
        # The node's own copy holds the buffer; the loader read it into private memory while
        # hashing it, so no file of the bundle is mapped (a later write cannot change it).
        (copied,) = sorted(copy.rglob("buffers/*.bin"))
        assert body["mapped"] == []
        serve.delete("where")

        # The copy is checked on the node: a changed byte stops the replica from starting,
        # with takeout's own sentence.
        with open(copied, "r+b") as fh:
            fh.seek(100)
            fh.write(b"\xff")
        serve._run(application, _blocking=False, name="where", route_prefix="/where")
        with pytest.raises(takeout.errors.DeployError) as err:
            takeout.ray._wait_running("where", 180, None, 1)
        message = str(err.value)
        assert message.startswith("a replica of `where` failed to start: ")
        assert "buffers/0000.bin" in message and "Traceback" not in message
        assert "\n" not in message
    finally:
        serve.delete("where")
        takeout.ray._release("where", keep=None)


def test_kill_scale_and_undeploy(cluster: Cluster, ray_bundles: dict[str, Path]) -> None:
    import ray

    bundle = str(ray_bundles["probe"])
    deploy = ["deploy", bundle, "--ray", cluster.address, "--name=scaled", "--num-cpus=0.25"]
    r = cluster.takeout(*deploy, "--replicas=1")
    assert r.returncode == 0, r.stderr
    url = r.stdout.strip() + "/call"

    def pids(n: int = 40) -> set[int]:
        return {post(url, {"x": 0, "mode": "pid"}).json()["result"] for _ in range(n)}

    assert len(pids()) == 1
    assert cluster.takeout(*deploy, "--replicas=2").returncode == 0
    assert len(running_replicas("scaled")) == 2
    assert len(pids()) == 2

    # Kill one replica's actor while calls keep coming: Serve replaces it, no call fails.
    statuses: list[int] = []
    stop = threading.Event()

    def keep_calling() -> None:
        while not stop.is_set():
            statuses.append(post(url, {"x": 1}).status_code)

    caller = threading.Thread(target=keep_calling)
    caller.start()
    try:
        victim = running_replicas("scaled")[0]
        ray.kill(ray.get_actor(victim["actor_name"], namespace="serve"), no_restart=True)
        wait_for(
            lambda: (
                len(running_replicas("scaled")) == 2
                and victim["replica_id"]
                not in {x["replica_id"] for x in running_replicas("scaled")}
            ),
            120,
            "a replacement replica",
        )
        time.sleep(0.5)
    finally:
        stop.set()
        caller.join()
    assert statuses and set(statuses) == {200}, statuses

    assert cluster.takeout(*deploy, "--replicas=1").returncode == 0
    wait_for(lambda: len(running_replicas("scaled")) == 1, 60, "scale down to 1")
    assert len(pids()) == 1

    # Undeploy while calls are in flight: every one of them finishes.
    slow: list[httpx.Response] = []
    callers = [
        threading.Thread(target=lambda: slow.append(post(url, {"x": 1.5, "mode": "sleep"})))
        for _ in range(3)
    ]
    for t in callers:
        t.start()
    time.sleep(0.5)
    r = cluster.takeout("undeploy", "scaled", "--ray", cluster.address)
    for t in callers:
        t.join()
    assert r.returncode == 0, r.stderr
    assert [x.status_code for x in slow] == [200] * 3, [x.text for x in slow]
    assert post(url, {"x": 1}).status_code == 404  # gone from the proxy
    r = cluster.takeout("undeploy", "scaled", "--ray", cluster.address)
    assert r.returncode == 2 and "no application `scaled`" in r.stderr


SIZES = """
import time

import takeout


@takeout.batched(max_size=32, max_wait_ms=100)
def sizes(x: list[int]) -> list[int]:
    '''Each item's answer is the size of the batch it came in.'''
    time.sleep(0.5)
    return [len(x)] * len(x)
"""


def test_a_batch_function_gathers_past_serves_default_of_five(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Serve lets 5 requests at a time into a replica unless told otherwise: a batch function
    on one replica must see batches larger than that."""
    bundle = takeout.pack(run_cells(SIZES)["sizes"], tmp_path / "sizes.takeout").path
    info = takeout.ray.deploy(
        bundle, cluster.address, name="sizes", ray_actor_options={"num_cpus": 0.25}
    )
    try:
        results: list[httpx.Response] = []
        # The first request goes alone (an idle batcher does not wait); the others queue
        # behind its half second and go together.
        clients = [
            threading.Thread(
                target=lambda i=i: results.append(post(info["url"] + "/call", {"x": i}))
            )
            for i in range(20)
        ]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        assert [r.status_code for r in results] == [200] * 20
        assert max(r.json()["result"] for r in results) >= 12
    finally:
        takeout.ray.undeploy("sizes", cluster.address)


def test_deploy_with_autoscaling_bounds(cluster: Cluster, ray_bundles: dict[str, Path]) -> None:
    from ray.serve.context import _get_global_client

    r = cluster.takeout(
        "deploy", str(ray_bundles["probe"]), "--ray", cluster.address, "--name=autoscaled",
        "--autoscale=1:3", "--num-cpus=0.25", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    try:
        details = _get_global_client().get_serve_details()["applications"]["autoscaled"]
        (deployment,) = details["deployments"].values()
        bounds = deployment["deployment_config"]["autoscaling_config"]
        assert (bounds["min_replicas"], bounds["max_replicas"]) == (1, 3)
        assert deployment["deployment_config"]["max_ongoing_requests"] == takeout.ray.ONGOING
        assert info["replicas"] == 1  # Serve starts at the lower bound
        for x in (1.5, 4.0):
            assert post(info["url"] + "/call", {"x": x}).json() == {"result": x * 2}
    finally:
        takeout.ray.undeploy("autoscaled", cluster.address)


def test_undeploy_removes_every_nodes_copy(
    cluster: Cluster, node2: str, ray_bundles: dict[str, Path]
) -> None:
    import ray

    r = cluster.takeout(
        "deploy", str(ray_bundles["probe"]), "--ray", cluster.address, "--name=copied",
        "--replicas=2", "--num-cpus=0.5",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert post(r.stdout.strip() + "/call", {"x": 1}).json() == {"result": 2}
    copies = Path(cluster.env["TAKEOUT_RAY_DIR"])
    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    placed = {replica["node_id"] for replica in running_replicas("copied")}
    # Serve spreads the two replicas: one on each node, each with its node's copy.
    assert placed == set(nodes) and node2 in placed
    app = takeout.ray._app_dir("copied")
    for node in nodes:
        assert (copies / node[:16] / app).is_dir(), sorted(copies.rglob("manifest.json"))
        assert list((copies / node[:16] / app).glob("*/bundle/manifest.json"))

    r = cluster.takeout("undeploy", "copied", "--ray", cluster.address)
    assert r.returncode == 0, r.stderr
    left = [node for node in nodes if (copies / node[:16] / app).exists()]
    assert left == [], f"copies left on nodes {left}"


# ── errors are one sentence ─────────────────────────────────────────────────────────────────


def test_no_cluster_at_the_address(cluster: Cluster, ray_bundles: dict[str, Path]) -> None:
    port = free_port()
    r = cluster.takeout("deploy", str(ray_bundles["probe"]), "--ray", f"127.0.0.1:{port}")
    assert r.returncode == 1
    assert r.stderr.strip() == (
        f"takeout: error: no Ray cluster answers at `127.0.0.1:{port}`; start one with "
        "`ray start --head` or pass the address it printed"
    )


@pytest.mark.parametrize("token", ["wrong", "missing"])
def test_a_refused_token_is_one_sentence(
    cluster: Cluster, ray_bundles: dict[str, Path], tmp_path: Path, token: str
) -> None:
    env = {k: v for k, v in cluster.env.items() if k != "RAY_AUTH_TOKEN"}
    env["HOME"] = str(tmp_path)  # no `~/.ray/auth_token` to fall back on
    where = f"takeout: error: the Ray cluster at `{cluster.address}`"
    if token == "wrong":
        env["RAY_AUTH_TOKEN"] = "0" * 64
        want = (
            f"{where} refused this process's token (missing, or not the cluster's); set "
            "`RAY_AUTH_TOKEN` to the token `ray get-auth-token` prints on its head node"
        )
    else:
        del env["RAY_AUTH_MODE"]
        want = (
            f"{where} wants a token and this process sends none; set `RAY_AUTH_MODE=token` "
            "and `RAY_AUTH_TOKEN` to the token `ray get-auth-token` prints on its head node"
        )
    started = time.monotonic()
    r = cluster.takeout("deploy", str(ray_bundles["probe"]), "--ray", cluster.address, env=env)
    assert r.returncode == 1
    assert r.stderr.strip() == want
    # Said at once, not after Ray's minute of retries.
    assert time.monotonic() - started < 30


def test_another_python_in_the_bundle(
    cluster: Cluster, ray_bundles: dict[str, Path], tmp_path: Path
) -> None:
    other = tmp_path / "old.takeout"
    shutil.copytree(ray_bundles["probe"], other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["python"]["minor"] = "3.8"
    (other / "manifest.json").write_text(json.dumps(manifest))
    r = cluster.takeout("deploy", str(other), "--ray", cluster.address)
    mine = "{}.{}".format(*sys.version_info[:2])
    assert r.returncode == 1
    assert r.stderr.strip() == (
        f"takeout: error: bundle `probe` was packed with Python 3.8 but the Ray cluster runs "
        f"Python {mine}; pack it again with Python {mine}, or deploy to a cluster of Python 3.8"
    )


def test_without_ray_the_extra_is_named(ray_bundles: dict[str, Path]) -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"  # what `import ray` sees when it is absent
        "from takeout.cli import main\n"
        f"sys.exit(main(['deploy', {str(ray_bundles['probe'])!r}, '--ray', 'auto']))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "takeout: error: Ray Serve is not installed; install takeout's `ray` extra: "
        "pip install 'takeout[ray]'"
    )


def test_import_takeout_ray_does_not_import_ray() -> None:
    code = "import sys, takeout.ray; print('ray' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr


def test_bad_usage(cluster: Cluster, ray_bundles: dict[str, Path]) -> None:
    bundle = str(ray_bundles["probe"])
    for args, sentence in [
        (["--autoscale=4:1"], "--autoscale `4:1` is not MIN:MAX"),
        (["--replicas=0"], "--replicas `0` must be at least 1"),
        (["--route=km"], "route `km` must start with `/`"),
        (["--resource=node2"], "--resource `node2` is not NAME=AMOUNT"),
    ]:
        r = cluster.takeout("deploy", bundle, "--ray", cluster.address, *args)
        assert r.returncode == 2, r.stderr
        assert sentence in r.stderr and "Traceback" not in r.stderr


# ── export: serve deploy of the config; the KubeRay manifest validated offline ─────────────


def exported(bundle: Path, root: Path, **kw: Any) -> Path:
    out = root / "export"
    out.mkdir()
    takeout.ray.write_export(bundle, out, image=kw.get("image"), runtime_env=kw.get("env"))
    return out


def test_serve_deploy_of_the_exported_config(
    cluster: Cluster, ray_bundles: dict[str, Path], tmp_path: Path, seed: dict[str, Any]
) -> None:
    out = exported(ray_bundles["km_predict_one"], tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["rayservice.yaml", "serve_config.yaml"]
    serve_cli = str(Path(sys.executable).parent / "serve")
    dashboard = f"http://127.0.0.1:{cluster.dashboard_port}"
    cluster.check([serve_cli, "deploy", str(out / "serve_config.yaml"), "--address", dashboard])
    try:
        takeout.ray._wait_running("km_predict_one", 300, None, None)
        url = f"http://127.0.0.1:{cluster.http_port}/km_predict_one/call"
        want = int(seed["km_predict_one"]([0.5, 0.5]))
        assert post(url, {"sample": [0.5, 0.5]}).json() == {"result": want}
    finally:
        takeout.ray.undeploy("km_predict_one", cluster.address)


@pytest.mark.parametrize("env", [None, "pip"])
def test_the_kuberay_manifest_validates(
    ray_bundles: dict[str, Path], tmp_path: Path, env: Optional[str]
) -> None:
    import kubernetes_validate
    import yaml
    from ray.serve.schema import ServeDeploySchema

    out = exported(ray_bundles["km_predict_one"], tmp_path, image="registry.example/km:1", env=env)
    local = yaml.safe_load((out / "serve_config.yaml").read_text())
    ServeDeploySchema.model_validate(local)
    (app,) = local["applications"]
    assert app["import_path"] == "takeout.ray:build"
    assert Path(app["args"]["bundle"]) == ray_bundles["km_predict_one"].resolve()

    service = yaml.safe_load((out / "rayservice.yaml").read_text())
    assert (service["apiVersion"], service["kind"]) == ("ray.io/v1", "RayService")
    assert service["metadata"]["name"] == "km-predict-one"
    cluster_spec = service["spec"]["rayClusterConfig"]
    assert cluster_spec["rayVersion"] == importlib.metadata.version("ray")
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(config)
    (app,) = config["applications"]
    if env == "pip":
        packages = app["runtime_env"]["pip"]["packages"]
        lock = json.loads((ray_bundles["km_predict_one"] / "manifest.json").read_text())["lock"]
        assert set(lock) <= set(packages) and any(p.startswith("takeout==") for p in packages)
    else:
        assert "runtime_env" not in app  # nothing installed at deploy time
    groups = [cluster_spec["headGroupSpec"], *cluster_spec["workerGroupSpecs"]]
    for i, group in enumerate(groups):
        assert group["template"]["spec"]["containers"][0]["image"] == "registry.example/km:1"
        pod = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": f"group-{i}"},
            "template": group["template"],
        }
        for version in ("1.29.0", "1.37.0"):
            kubernetes_validate.validate(pod, version, strict=True)
    # A broken template is caught: the check can fail.
    bad = {**pod, "template": {"spec": {"containers": [{"image": 3}]}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.37.0", strict=True)


def test_export_refuses_an_unknown_runtime_env(ray_bundles: dict[str, Path], tmp_path: Path):
    with pytest.raises(takeout.errors.UsageError, match="--runtime-env `conda` is unknown"):
        exported(ray_bundles["probe"], tmp_path, env="conda")


# ── the magic ───────────────────────────────────────────────────────────────────────────────


def test_magic_deploys_a_notebook_function(cluster: Cluster, tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    from .test_magics import DEFINE, Session

    nb = nbformat.v4.new_notebook()
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=300,
        allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}},
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )
    with client.setup_kernel():
        s = Session(client, nb)
        assert s.run("%load_ext takeout") == []
        assert s.run(DEFINE) == []
        outputs = s.run("%takeout deploy score --ray auto --num-cpus=0.25")
        text = "".join(o.get("text", "") for o in outputs)
        assert "1/1 replicas running" in text, outputs
        url = f"http://127.0.0.1:{cluster.http_port}/score"
        assert f"deployed `score` at {url} (1 replicas)" in text, outputs
        assert post(url + "/call", [[1.0, 1.0]]).json() == {"result": 3.0}
        (error,) = s.run("%takeout deploy nothing --ray auto")
        assert error["text"] == (
            "UsageError: `nothing` is not defined in this notebook; run its cell first\n"
        )
    takeout.ray.undeploy("score", cluster.address)
