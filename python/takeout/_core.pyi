"""Type stubs for `takeout._core`, the Rust extension (checked with `mypy.stubtest`)."""

from collections.abc import Sequence
from types import CodeType
from typing import Literal, Optional, Union, final

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
