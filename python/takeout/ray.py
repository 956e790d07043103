"""A bundle on Ray Serve: `takeout.ray.app`, `takeout.ray:build`, `takeout deploy --ray`.

    import takeout.ray
    from ray import serve
    serve.run(takeout.ray.app("km_predict_one.takeout", num_replicas=2), route_prefix="/km")

    # serve_config.yaml, for `serve deploy`
    applications:
      - name: km_predict_one
        import_path: takeout.ray:build
        args: {bundle: /srv/km_predict_one.takeout}

The ingress of every replica is `takeout.asgi`, the Rust request core `takeout serve` runs, so
routes, error bodies, limits and the token behave exactly as there.

The bundle's files reach every node without a shared filesystem nor a runtime-env upload
(which warns past 10 MiB per file and refuses large packages). A small bundle (up to
`INLINE_MAX`) travels inside the application's own arguments, which Serve's controller keeps;
for a larger one, building the application puts every file into Ray's object store from a
detached actor that owns them, so they outlive the process that deployed them and a replica
started hours later on a new node still finds them. Each replica writes them to a directory of
its node, and loads that copy with takeout's own loader: format, signature and every sha256
checked on that node before a byte is unpickled.

Ray is imported only when one of these functions runs: `import takeout.ray` costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .errors import DeployError, UsageError

__all__ = ["app", "build", "deploy", "undeploy", "write_export"]

#: Ray namespace of the actors that hold bundles.
NAMESPACE = "takeout"
#: Where replicas keep their node's copy of a bundle (default: the node's temp dir).
DIR_ENV = "TAKEOUT_RAY_DIR"
_STORE = "bundle:"
#: Bundles up to this size travel inside the application's arguments, larger ones through the
#: object store (see `_inline`). Starting the store actor and handing it the files cost 0.7-2.5 s
#: of the deploy on a 2-core machine, so models of a few MiB (a 1.2 MB weight matrix) go inline;
#: Ray's own size warnings (10 MiB a runtime-env file) stay out of reach.
INLINE_MAX = 8 << 20
#: Each replica's `max_ongoing_requests` unless given: Serve's own default (5) is for user code
#: that runs on the replica's event loop. A takeout replica only hands requests to its request
#: core, whose threads run them and whose queue holds the rest (`max_concurrency` answers 503
#: past it, as under `takeout serve`). With 5, the proxy kept requests back and retried:
#: 64 connections on 2 replicas served ~45 req/s where 8 served ~120, and a batch function
#: could never gather more than 5 items. A batch function's replicas take a whole batch.
ONGOING = 64
_EXTRA = "install takeout's `ray` extra: pip install 'takeout[ray]'"


def _ray() -> Any:
    try:
        import ray
        from ray import serve  # noqa: F401
    except ImportError:
        raise UsageError(f"Ray Serve is not installed; {_EXTRA}") from None
    return ray


# ── connecting ──────────────────────────────────────────────────────────────────────────────


def connect(address: Optional[str] = "auto") -> None:
    """Join the Ray cluster at `address` (`auto`: the one running on this machine), or say
    in one sentence why not."""
    ray = _ray()
    if ray.is_initialized():
        return
    if address and address != "auto" and "://" not in address:
        host, _, port = address.rpartition(":")
        if not port.isdigit():
            raise UsageError(
                f"Ray address `{address}` is not HOST:PORT; pass the address `ray start "
                "--head` printed, or `auto`"
            )
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=3).close()
        except OSError:
            raise DeployError(_no_cluster(address)) from None
        _check_token(ray, address)
    refused = _authentication_error(ray)
    try:
        ray.init(
            address=address,
            namespace=NAMESPACE,
            logging_level="ERROR",
            log_to_driver=False,
            configure_logging=False,
        )
    except refused:
        raise DeployError(_refused(address or "auto")) from None
    except ConnectionError:
        if address and address != "auto" and "://" not in address:
            # Something answers at that port, but not as a Ray cluster this process can join.
            raise DeployError(
                f"the Ray cluster at `{address}` did not let this process join; check that "
                "the address is the one `ray start --head` printed and that its Ray version "
                "is this process's"
            ) from None
        raise DeployError(_no_cluster(address or "auto")) from None
    except RuntimeError as err:
        text = str(err)
        if "InvalidAuthToken" in text or "AuthenticationError" in text:
            # Ray's retries, given up: refused every time.
            raise DeployError(_refused(address or "auto")) from None
        if "Version mismatch" not in text:
            raise
        theirs = re.search(r"cluster was started with:.*?Python: (\d+\.\d+)", text, re.S)
        cluster = theirs.group(1) if theirs else "another version"
        mine = "{}.{}".format(*sys.version_info[:2])
        raise DeployError(
            f"the Ray cluster at `{address}` runs Python {cluster} but this is Python {mine}; "
            f"deploy from Python {cluster}, or start the cluster with Python {mine}"
        ) from None


def _authentication_error(ray: Any) -> type[BaseException]:
    """Ray's refused-token error (Ray 2.5x and later), or an error nothing raises."""
    return getattr(ray.exceptions, "AuthenticationError", None) or _NeverRaised


class _NeverRaised(Exception):
    pass


def _check_token(ray: Any, address: str) -> None:
    """Ask the cluster once whether it lets this process in: `ray.init` retries a refused
    token for over a minute before it says so. With the GCS client Ray's own CLI uses."""
    try:
        from ray._raylet import GcsClient  # type: ignore[attr-defined]
    except ImportError:
        return
    try:
        with _quiet_fd2():
            GcsClient(address=address)
    except _authentication_error(ray):
        raise DeployError(_refused(address)) from None
    except Exception:
        pass  # anything else is `ray.init`'s to say, in its own words


@contextlib.contextmanager
def _quiet_fd2() -> Iterator[None]:
    """Ray's C++ client logs each refusal to file descriptor 2 itself, past Python's
    `sys.stderr`: the one sentence takeout prints instead says it all."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _refused(address: str) -> str:
    # For an explicit address Ray sends a token only when `RAY_AUTH_MODE=token`.
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return (
            f"the Ray cluster at `{address}` refused this process's token (missing, or not "
            "the cluster's); set `RAY_AUTH_TOKEN` to the token `ray get-auth-token` prints on "
            "its head node"
        )
    return (
        f"the Ray cluster at `{address}` wants a token and this process sends none; set "
        "`RAY_AUTH_MODE=token` and `RAY_AUTH_TOKEN` to the token `ray get-auth-token` prints "
        "on its head node"
    )


def _no_cluster(address: str) -> str:
    return (
        f"no Ray cluster answers at `{address}`; start one with `ray start --head` or pass "
        "the address it printed"
    )


# ── the application ─────────────────────────────────────────────────────────────────────────


def app(
    bundle: Union[str, os.PathLike[str]],
    *,
    num_replicas: Optional[int] = 1,
    autoscaling: Optional[dict[str, Any]] = None,
    ray_actor_options: Optional[dict[str, Any]] = None,
    max_ongoing_requests: Optional[int] = None,
    signing_key: Union[str, bytes, None] = None,
    name: Optional[str] = None,
    **serve_options: Any,
) -> Any:
    """The bundle at `bundle` as a Ray Serve application (`serve.run(app(...))`).

    `autoscaling` is Serve's `autoscaling_config` (e.g. `{"min_replicas": 1,
    "max_replicas": 4}`) and replaces `num_replicas`; `ray_actor_options` places and sizes
    each replica (`{"num_cpus": 1, "resources": {"gpu_node": 1}}`); `max_ongoing_requests`
    is `ONGOING` (64) unless given, a batch function's `max_size` if larger; `serve_options`
    are those of `takeout.asgi.app` (`token`, `timeout`, `max_body`, `max_concurrency`,
    `threads`, ...).
    Joins the running cluster (`$RAY_ADDRESS` or this machine's) when not connected yet.
    """
    from .bundle import bundle_dir, read_manifest

    ray = _ray()
    from ray import serve

    from .serving.config import ServeConfig

    # Checked here, where a bad option is one sentence rather than a replica that fails; the
    # token is resolved here too (`$TAKEOUT_TOKEN` of this process), replicas have no such env.
    config = ServeConfig.create(**serve_options)
    serve_options = {**{k: getattr(config, k) for k in serve_options}, "token": config.token}
    root = bundle_dir(bundle)
    # Checked here as well as on every node: a broken bundle fails the deploy, not a replica.
    manifest = read_manifest(root, signing_key=signing_key)
    if not ray.is_initialized():
        connect(os.environ.get("RAY_ADDRESS") or "auto")
    _check_python(manifest)
    digest = _digest(root)
    name = name or str(manifest["name"])
    source = _inline(root, manifest) or _upload(
        ray, root, manifest, f"{_STORE}{name}:{digest[:16]}"
    )

    options = dict(ray_actor_options or {})
    options.setdefault("num_cpus", 1)
    deployment_options: dict[str, Any] = {"name": name, "ray_actor_options": options}
    if autoscaling:
        deployment_options["autoscaling_config"] = autoscaling
        deployment_options["num_replicas"] = "auto"
    elif num_replicas is not None:
        if num_replicas < 1:
            raise UsageError(f"num_replicas `{num_replicas}` must be at least 1")
        deployment_options["num_replicas"] = num_replicas
    if max_ongoing_requests is None:
        max_ongoing_requests = max(ONGOING, (manifest.get("batch") or {}).get("max_size", 0))
    deployment_options["max_ongoing_requests"] = max_ongoing_requests
    key = signing_key.decode() if isinstance(signing_key, bytes) else signing_key
    ingress: Any = serve.deployment(serve.ingress()(Ingress))
    ingress = ingress.options(**deployment_options)
    return ingress.bind(name, source, digest, dict(serve_options), key, float(options["num_cpus"]))


def build(args: dict[str, Any]) -> Any:
    """The application builder a Serve config names: `import_path: takeout.ray:build`,
    `args: {bundle: PATH, num_replicas: 2, ...}` with the keyword arguments of `app`."""
    args = dict(args)
    bundle = args.pop("bundle", None)
    if not bundle:
        raise UsageError("the Serve config's `args` must name the bundle: `args: {bundle: PATH}`")
    return app(bundle, **args)


def _check_python(manifest: dict[str, Any]) -> None:
    """The cluster's Python is this process's: Ray refuses a driver of another minor."""
    from . import _runtime

    want = (manifest.get("python") or {}).get("minor")
    have = _runtime.python_facts()["minor"]
    if want != have:
        raise DeployError(
            f"bundle `{manifest.get('name')}` was packed with Python {want} but the Ray "
            f"cluster runs Python {have}; pack it again with Python {have}, or deploy to a "
            f"cluster of Python {want}"
        )


def _digest(root: Path) -> str:
    import hashlib

    from . import _runtime

    # The manifest lists the sha256 of every other file (and the signature covers it).
    return hashlib.sha256((root / _runtime.MANIFEST).read_bytes()).hexdigest()


class BundleStore:
    """A detached actor holding a bundle's files in the object store. Objects are owned by
    the process that puts them, and die with it; this actor puts them itself so they live
    as long as the application does, not as long as `takeout deploy` does."""

    def __init__(self) -> None:
        self.refs: dict[str, Any] = {}

    def keep(self, rel: str, data: Any) -> None:
        import ray

        self.refs[rel] = ray.put(data)

    def files(self) -> dict[str, list[Any]]:
        # Each ref inside a list, so Ray hands the refs over instead of resolving them.
        return {rel: [ref] for rel, ref in self.refs.items()}


def _inline(root: Path, manifest: dict[str, Any]) -> Optional[dict[str, bytes]]:
    """A small bundle's files themselves, to travel in the application's own arguments (which
    Serve's controller keeps for every replica it starts): no store actor to start first, so a
    small model answers sooner. None past `INLINE_MAX`."""
    from . import _runtime

    paths = [root / rel for rel in [_runtime.MANIFEST, *manifest["files"]]]
    if sum(path.stat().st_size for path in paths) > INLINE_MAX:
        return None
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in paths}


def _upload(ray: Any, root: Path, manifest: dict[str, Any], store_name: str) -> str:
    """Put the bundle's files into the object store once per bundle digest."""
    import numpy as np  # a dependency of Ray itself

    from . import _runtime

    try:
        ray.get_actor(store_name, namespace=NAMESPACE)
        return store_name  # the same bundle is there already (a redeploy, a rescale)
    except ValueError:
        pass
    store = (
        ray.remote(BundleStore)
        .options(
            name=store_name,
            namespace=NAMESPACE,
            lifetime="detached",
            num_cpus=0,
            get_if_exists=True,
        )
        .remote()
    )
    pending = []
    for rel in [_runtime.MANIFEST, *manifest["files"]]:
        path = root / rel
        if path.stat().st_size >= 1 << 20:
            # Mapped, not read: the pages go straight from the file into the object store.
            data: Any = np.memmap(path, dtype=np.uint8, mode="r")
        else:
            data = path.read_bytes()
        pending.append(store.keep.remote(rel, data))
        del data
    ray.get(pending)
    return store_name


class Ingress:
    """One replica: its node's copy of the bundle, served by `takeout.asgi`."""

    def __init__(
        self,
        name: str,
        source: Union[str, dict[str, bytes]],
        digest: str,
        options: dict[str, Any],
        signing_key: Optional[str],
        num_cpus: float,
    ) -> None:
        from . import _threads

        _threads.for_replica(num_cpus)
        self.root = _materialize(name, source, digest)
        self.options = options
        self.signing_key = signing_key

    def __serve_build_asgi_app__(self) -> Any:
        from . import asgi

        return asgi.app(self.root, signing_key=self.signing_key, **self.options)


def _node_dir() -> Path:
    import ray

    node = ray.get_runtime_context().get_node_id()
    base = os.environ.get(DIR_ENV) or os.path.join(tempfile.gettempdir(), "takeout-ray")
    return Path(base) / node[:16]


def _app_dir(name: str) -> str:
    """The folder of an application's copies: its name made safe for a path, and a hash of it
    so that two names made alike do not share one."""
    import hashlib

    safe = re.sub(r"[^\w.-]", "_", name).lstrip(".")[:64]
    return f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _materialize(name: str, source: Union[str, dict[str, bytes]], digest: str) -> Path:
    """This node's copy of the bundle of application `name`, written by the first replica of
    the node from `source` (the files themselves, or the name of the store actor holding
    them); the loader checks it whoever wrote it."""
    from . import _runtime

    # Per application, so that undeploying one removes its copies and no other's.
    base = _node_dir() / _app_dir(name)
    root = base / digest[:32] / "bundle"
    if (root / _runtime.MANIFEST).is_file():
        return root
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=base))
    try:
        for rel, data in _fetch(source):
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as fh:
                fh.write(memoryview(data).cast("B"))
            del data
        root.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, root)
        except OSError:
            if not (root / _runtime.MANIFEST).is_file():
                raise
            # Another replica of this node won the race; its copy is as good as ours.
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _fetch(source: Union[str, dict[str, bytes]]) -> Iterator[tuple[str, Any]]:
    """(path, contents) of each file of the bundle, one file in memory at a time."""
    if isinstance(source, dict):
        yield from source.items()
        return
    import ray

    store = ray.get_actor(source, namespace=NAMESPACE)
    files: Any = ray.get(store.files.remote())
    for rel, (ref,) in files.items():
        yield rel, ray.get(ref)


# ── deploy / undeploy ───────────────────────────────────────────────────────────────────────


def deploy(
    bundle: Union[str, os.PathLike[str]],
    address: Optional[str] = "auto",
    *,
    name: Optional[str] = None,
    route_prefix: Optional[str] = None,
    num_replicas: Optional[int] = None,
    autoscaling: Optional[dict[str, Any]] = None,
    ray_actor_options: Optional[dict[str, Any]] = None,
    signing_key: Union[str, bytes, None] = None,
    wait: float = 600.0,
    progress: Optional[Callable[[str], None]] = None,
    **serve_options: Any,
) -> dict[str, Any]:
    """Deploy the bundle to the cluster at `address`, wait (at most `wait` seconds) until
    every replica is healthy and return `{"name", "url", "route_prefix", "replicas"}`;
    `progress` gets a line each time the replica count changes; `serve_options` are those of
    `takeout.asgi.app`. A replica that fails to start is a `DeployError` with
    the replica's own error; a new application that never started is removed again."""
    connect(address)
    from ray import serve

    from . import _runtime
    from .bundle import bundle_dir

    # Only the name, for the route: `app` checks the signature and every sha256 (once: the
    # files of a large model take seconds to hash).
    root = bundle_dir(bundle)
    name = name or str(
        _runtime.parse_manifest(_runtime.read_manifest_bytes(root), str(root))["name"]
    )
    prefix = route_prefix or f"/{name}"
    if not prefix.startswith("/") or (len(prefix) > 1 and prefix.endswith("/")):
        raise UsageError(f"route `{prefix}` must start with `/` and not end with one, e.g. `/km`")
    if num_replicas is None and not autoscaling:
        num_replicas = 1
    application = app(
        bundle,
        num_replicas=num_replicas,
        autoscaling=autoscaling,
        ray_actor_options=ray_actor_options,
        signing_key=signing_key,
        name=name,
        **serve_options,
    )
    existed = name in _applications()
    serve._run(application, _blocking=False, name=name, route_prefix=prefix)
    try:
        replicas = _wait_running(name, wait, progress, num_replicas)
    except DeployError:
        if not existed:
            serve.delete(name)
            _release(name, keep=None)
        raise
    # The replicas of an earlier version are gone: so may be its store and copies.
    _release(name, keep=_digest(Path(bundle)))
    return {"name": name, "url": _url(prefix), "route_prefix": prefix, "replicas": replicas}


def undeploy(name: str, address: Optional[str] = "auto") -> None:
    """Remove the application `name` (in-flight calls finish first), its bundle store and
    every node's copy of its bundle."""
    connect(address)
    from ray import serve

    apps = _applications()
    if name not in apps:
        known = ", ".join(f"`{a}`" for a in sorted(apps)) or "none"
        raise UsageError(f"no application `{name}` on this Ray cluster (deployed: {known})")
    serve.delete(name)  # returns once the replicas are gone
    _release(name, keep=None)


def _applications() -> dict[str, Any]:
    from ray import serve

    try:
        return dict(serve.status().applications)
    except Exception:  # Serve not started on this cluster yet: nothing is deployed
        return {}


def _wait_running(
    name: str, timeout: float, progress: Optional[Callable[[str], None]], want: Optional[int]
) -> int:
    from ray import serve

    deadline = time.monotonic() + timeout
    last = None
    while True:
        status = serve.status().applications.get(name)
        running = 0
        if status is not None:
            for deployment in status.deployments.values():
                states: dict[Any, int] = dict(deployment.replica_states)
                running += int(states.get("RUNNING", 0))
            if status.status == "DEPLOY_FAILED":
                raise DeployError(_failure(name, status))
            target = want if want is not None else running
            line = f"`{name}`: {running}/{target} replicas running ({status.status.lower()})"
            if progress is not None and line != last:
                progress(line)
            last = line
            if status.status == "RUNNING":
                return running
        if time.monotonic() > deadline:
            raise DeployError(
                f"`{name}` was not running after {timeout:.0f} s ({last or 'no status'}); "
                "see `serve status` for what the replicas are waiting for"
            )
        time.sleep(0.25)


def _failure(name: str, status: Any) -> str:
    """The replica's own error out of Serve's message (which wraps it in a traceback)."""
    texts = [status.message or ""] + [d.message or "" for d in status.deployments.values()]
    for text in texts:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        for line in reversed(lines):
            match = re.match(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$", line)
            if match and match.group(1) not in ("RayTaskError", "RayActorError"):
                return f"a replica of `{name}` failed to start: {match.group(2)}"
    first = next((t for t in texts if t), "no message")
    return f"a replica of `{name}` failed to start: {first.splitlines()[0]}"


def _release(name: str, keep: Optional[str]) -> None:
    """Drop what the application `name` holds for bundles other than the one of digest `keep`
    (all of it when `keep` is None): its stores and its copies on every node."""
    _drop_stores(name, keep)
    _drop_copies(name, keep)


def _drop_copies(name: str, keep: Optional[str]) -> None:
    """Remove the copies of `name`'s bundles from every live node, by a task placed on each:
    a node's copies are on its own disk, which this process may not see."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    import ray

    remove = ray.remote(num_cpus=0, max_retries=1)(_remove_copies)
    nodes = [node["NodeID"] for node in ray.nodes() if node["Alive"]]
    pending = [
        remove.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(
            name, keep
        )
        for node in nodes
    ]
    try:
        ray.get(pending, timeout=120)
    except ray.exceptions.GetTimeoutError:
        raise DeployError(
            f"the copies of `{name}`'s bundle were not removed from every node within 120 s; "
            f"remove `{_app_dir(name)}` under `${DIR_ENV}` on each node by hand"
        ) from None


def _remove_copies(name: str, keep: Optional[str]) -> None:
    """On one node: remove its copies of `name`'s bundles but the one of digest `keep`, and
    the node's folder once empty."""
    folder = _node_dir() / _app_dir(name)
    if folder.is_dir():
        for child in folder.iterdir():
            if keep is None or child.name != keep[:32]:
                shutil.rmtree(child)
        if keep is None:
            folder.rmdir()
    with contextlib.suppress(OSError):  # not empty: another application's copies are there
        folder.parent.rmdir()


def _drop_stores(name: str, keep: Optional[str]) -> None:
    import ray

    prefix = f"{_STORE}{name}:"
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor.get("namespace") != NAMESPACE or not actor["name"].startswith(prefix):
            continue
        if keep is not None and actor["name"] == prefix + keep[:16]:
            continue
        try:
            ray.kill(ray.get_actor(actor["name"], namespace=NAMESPACE))
        except ValueError:
            pass  # gone meanwhile


def _url(prefix: str) -> str:
    from ray.serve.context import _get_global_client

    # Serve's public API does not say where its proxy listens; the controller's details do.
    client: Any = _get_global_client()
    http = client.get_serve_details().get("http_options") or {}
    host = http.get("host") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    port = http.get("port") or 8000
    return f"http://{host}:{port}{'' if prefix == '/' else prefix}"


def write_export(
    bundle: Path, out: Path, *, image: Optional[str], runtime_env: Optional[str]
) -> None:
    """`takeout export BUNDLE --to ray`: see `takeout._ray_export`."""
    from ._ray_export import write_export as write

    write(bundle, out, image=image, runtime_env=runtime_env)
