"""Type stubs for `takeout._core`, the Rust extension (checked with `mypy.stubtest`)."""

from collections.abc import Callable, Sequence
from types import CodeType
from typing import Any, Literal, Optional, Union, final

from .serving.config import ServeConfig

__version__: str

# ── pickle scanner ──────────────────────────────────────────────────────────────────────────

@final
class PickleScan:
    """Every module an unpickler imports when it loads one stream."""

    protocol: int
    """Protocol from the PROTO opcode (0 when absent)."""
    globals: list[tuple[str, str, Literal["GLOBAL", "STACK_GLOBAL", "INST"], int]]
    """`(module, name, opcode, offset)` for every global, in stream order."""
    subimports: list[tuple[str, bool, int]]
    """`(module, dynamic, offset)` for cloudpickle's `subimport`/`dynamic_subimport` calls."""
    extension_codes: list[int]
    out_of_band_buffers: int

def scan_pickle(data: Union[bytes, bytearray, memoryview]) -> PickleScan:
    """Scan a pickle stream of any protocol (0-5) up to its STOP opcode.

    Runs without the GIL. Raises `takeout.errors.PickleScanError` on malformed input.
    """

# ── bytecode scanner ────────────────────────────────────────────────────────────────────────

@final
class OpcodeTable:
    """The running interpreter's opcode facts (built by `takeout._bytecode.opcode_table()`)."""

    def __new__(
        cls,
        version: tuple[int, int],
        names: Sequence[str],
        has_arg: Sequence[bool],
        cache_entries: Sequence[int],
    ) -> OpcodeTable:
        """Raises `takeout.errors.BytecodeError` unless each sequence has 256 entries."""
    @property
    def version(self) -> tuple[int, int]: ...

@final
class Finding:
    """One thing a code object needs. `kind` says which fields are set:

    - `"import"`: `module`, `level`, `fromlist` (an `import`/`from ... import` statement);
    - `"chain"`: `global_name`, `attrs` (a global followed by attribute loads);
    - `"dynamic"`: `module`, `callee` (`importlib.import_module("m")`, `__import__("m")`).
    """

    qualname: str
    kind: Literal["import", "chain", "dynamic"]
    module: Optional[str]
    level: int
    fromlist: list[str]
    global_name: Optional[str]
    attrs: list[str]
    callee: Optional[str]

def decode_bytecode(code: bytes, table: OpcodeTable) -> list[tuple[int, int, Optional[int]]]:
    """`(offset, opcode, arg)` per instruction, as `dis.get_instructions` reports them."""

def scan_code(code: CodeType, table: OpcodeTable) -> list[Finding]:
    """Scan a code object and every code object nested in its constants."""

# ── environment index and lock ──────────────────────────────────────────────────────────────

@final
class Distribution:
    name: str
    normalized: str
    version: str
    kind: Literal["index", "editable"]
    location: str
    metadata_dir: str
    requires_dist: list[str]
    provides_extra: list[str]
    top_level: list[str]
    editable_root: Optional[str]
    direct_url: Optional[str]
    installer: Optional[str]

@final
class Lock:
    packages: list[tuple[int, list[str], list[str]]]
    """`(dist_id, extras, required_by)` sorted by normalised name; roots included."""
    missing: list[tuple[str, str, Optional[str]]]
    """`(requirement, required_by, installed_version_or_None)` for unsatisfied requirements."""
    unparsable: list[tuple[str, str, str]]
    """`(requirement, required_by, reason)`: installed `Requires-Dist` values PEP 508 rejects
    (skipped, not fatal)."""

@final
class EnvIndex:
    """Every distribution on a search path (`sys.path` order; first of a name wins)."""

    def __new__(cls, search_path: Sequence[str]) -> EnvIndex:
        """Index `search_path` (usually `sys.path`); unreadable metadata goes to `skipped`."""
    def __len__(self) -> int: ...
    @property
    def distributions(self) -> list[Distribution]: ...
    @property
    def skipped(self) -> list[tuple[str, str]]:
        """`(path, reason)` for each metadata directory that could not be read."""
    def distribution(self, dist_id: int) -> Distribution: ...
    def find_by_file(self, path: str) -> Optional[int]: ...
    def find_by_files(self, paths: Sequence[str]) -> list[Optional[int]]: ...
    def find_by_module(self, module: str) -> Optional[int]: ...
    def find_by_name(self, name: str) -> Optional[int]: ...
    def lock(self, roots: Sequence[tuple[int, Sequence[str]]], markers: dict[str, str]) -> Lock:
        """Close `roots` over Requires-Dist with `markers` (all eleven PEP 508 marker names,
        as `packaging.markers.default_environment()` returns them)."""

def parse_requirement(spec: str) -> tuple[str, list[str], str, Optional[str]]:
    """`(name, extras, version_specifier, marker)` of a PEP 508 string.

    Names and extras come back normalised; `version_specifier` is `""` when absent and
    `"@ <url>"` for a direct reference. Raises `takeout.errors.RequirementError` with a
    one-sentence message when malformed.
    """

# ── bundle integrity ────────────────────────────────────────────────────────────────────────

def hash_files(root: str, paths: list[str]) -> dict[str, str]:
    """`{path: "sha256:<hex>"}` for each relative path under `root`, hashed without the GIL.

    Raises `takeout.errors.BundleIntegrityError` for a missing file or a path that is not a
    plain relative path inside `root` (absolute, `..`, backslashes).
    """

def verify_files(root: str, files: dict[str, str]) -> None:
    """Check each `{path: "sha256:<hex>"}` entry of a manifest's `files` map under `root`.

    Raises `takeout.errors.BundleIntegrityError` for the first failure in path order.
    """

def canonical_json(manifest_json: str) -> str:
    """Compact JSON with keys sorted at every level: the exact text that is signed."""

def sign_manifest(manifest_json: str, key: bytes) -> str:
    """`"hmac-sha256:<hex>"` over the canonical manifest without its `signature` key."""

def check_signature(manifest_json: str, key: Optional[bytes]) -> None:
    """Check the manifest's `signature` with `key` in constant time.

    Raises `takeout.errors.BundleIntegrityError` when the signature does not match, when the
    manifest is signed but `key` is None, or when it is unsigned but a key is given.
    """

# ── serving ─────────────────────────────────────────────────────────────────────────────────

_Response = tuple[int, list[tuple[bytes, bytes]], bytes]

@final
class App:
    """The request core bound to one function: routes, errors, binding and validation against
    the manifest's JSON Schema, metrics, OpenAPI and the index page, all in Rust.

    `function` receives plain JSON-derived arguments; `manifest_json` is the bundle manifest as
    JSON text; `config` is read whole (`crates/takeout-py/src/config.rs`). Raises
    `takeout.errors.ServeError` for a manifest or option it cannot serve.
    """

    def __new__(
        cls, function: Callable[..., Any], manifest_json: str, config: ServeConfig
    ) -> App: ...
    @property
    def name(self) -> str: ...
    @property
    def max_body(self) -> int: ...
    @property
    def timeout(self) -> float:
        """Seconds a call may take before its request is answered 504."""
    def start(
        self, method: str, path: str, headers: Sequence[tuple[bytes, bytes]]
    ) -> Union[_Response, Exchange]:
        """Answer from the request head alone, or return an `Exchange` that needs the body."""
    def set_worker(self, slot: int) -> bool:
        """In forked worker `slot`: count metrics into its block of the memory shared by the
        `workers` processes, so any worker's `/metrics` shows every worker. False when
        `workers` was 1 or `slot` is past it."""
    def wedged_workers(self) -> list[tuple[int, int]]:
        """`(slot, pid)` of each forked worker whose every call thread has been stuck past
        `stuck_restart`, as the workers last wrote it in the shared metrics."""
    @property
    def wedged(self) -> bool:
        """Every call thread has been stuck past `stuck_restart`: those calls will not return."""
    @property
    def calls_running(self) -> int:
        """Calls running or queued on this process's call threads; once the server has
        stopped, the ones left are stuck."""
    def drain(self) -> None:
        """From now on `/readyz` answers 503."""
    def close(self) -> None:
        """Stop the call threads once their queued work is done."""

@final
class Exchange:
    """One request of the ASGI adapter, from its body to its response."""

    @property
    def max_body(self) -> int: ...
    def submit(self, body: bytes, notify: Callable[[], object]) -> Optional[_Response]:
        """The response at once, or None: then `notify()` is called (from another thread, with
        the GIL) when `response()` is ready."""
    def response(self) -> _Response: ...
    def timeout(self) -> _Response:
        """Give up on the call: a 504 (a call not yet started is skipped)."""
    def body_timeout(self, seconds: float) -> _Response:
        """A 408 for a body that did not arrive in time."""

@final
class Server:
    """`app` served over HTTP/1.1 by hyper on threads of its own; binds `config.host` and
    `config.port` and starts at once, with `config`'s I/O threads, grace and body timeout.

    `reuse_port` sets SO_REUSEPORT so that several worker processes can share the port.
    Raises `takeout.errors.ServeError` when the address cannot be bound.
    """

    def __new__(cls, app: App, config: ServeConfig, *, reuse_port: bool = False) -> Server: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def url(self) -> str: ...
    @property
    def running(self) -> bool: ...
    @property
    def dropped_calls(self) -> int:
        """Calls still running when the grace period ended; their clients got no answer."""
    def shutdown(self) -> None:
        """Begin a graceful shutdown and return at once (safe in a signal handler)."""
    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until stopped (True) or `timeout` passes (False); signal handlers still run."""
    def stop(self, timeout: Optional[float] = None) -> bool:
        """Stop accepting, let in-flight requests finish (within `grace`), and wait."""

# ── notebooks ───────────────────────────────────────────────────────────────────────────────

@final
class SlicedCell:
    """A code cell of a slice."""

    number: int
    """1-based position among all the notebook's cells (markdown included)."""
    execution_count: Optional[int]
    source: str
    """What the kernel runs: the cell without its left-out statements, every kept line at its
    original line number."""
    statements: list[tuple[int, int, str]]
    """`(line, end_line, why)` of each kept statement."""

@final
class NotebookSlice:
    """The statements of a notebook one function depends on, in the notebook's order."""

    function: str
    label: str
    kernel_name: Optional[str]
    """`metadata.kernelspec.name`, when the notebook names one."""
    language: Optional[str]
    total_cells: int
    code_cells: int
    all_cells: bool
    cells: list[SlicedCell]
    imports: list[tuple[str, int, list[str], int, int, bool]]
    """`(module, level, names, cell, line, in_function)` of every import the slice reaches."""
    warnings: list[str]
    unresolved: list[str]
    """Names the slice reads that no cell defines (and that are not builtins)."""
    script: str
    """The slice as a script, each cell under a comment naming it, each statement with why it
    is kept, each captured name with the binding chosen (`takeout slice`)."""
    target_cell: int
    """The cell of the definition sliced from."""
    target_line: int
    captured: list[tuple[str, Optional[int], int, str]]
    """`(name, cell, line, rule)`: each name the function reads when called, the binding the
    slice gives it (`cell` is None when no cell binds it) and the rule that chose it."""

def slice_notebook(
    text: str,
    function: str,
    label: str,
    all_cells: bool = False,
    state_end: bool = False,
    cell: Optional[int] = None,
) -> NotebookSlice:
    """Parse nbformat 4 `text` and slice it backwards from `function`'s definition: the last
    one, or the one in `cell` (also written `FUNCTION@CELL`). Each name the function reads gets
    its last binding before that definition (the first after it when none is before), or with
    `state_end` the notebook's last one.

    Runs without the GIL. `label` names the notebook in messages. Raises
    `takeout.errors.NotebookError` for a malformed or non-v4 notebook, a non-Python one, or a
    function the notebook does not define (the message lists those it does).
    """
