"""Attacks on loading a bundle (issue: hardening, points 1-4), each reproduced and refused.

The races are made deterministic with hooks at the moments an attacker would act: between
the check of the manifest and the use of the files (where the loader once opened each file a
second time), and after the bytes were read but before they are unpickled.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import pickle
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import httpx
import numpy as np
import pytest

import takeout
from takeout import _runtime
from takeout.bundle import read_manifest
from takeout.errors import BundleIntegrityError, TakeoutError

from .support import run_cells

TAKEOUT = [sys.executable, "-m", "takeout.cli"]
KEY = "k1"
N = 400_000  # 3.2 MB of float64: a buffer file of its own


class Marker:
    """Unpickling this writes a file: the proof that the attacker's pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (Path.write_text, (self.path, "unpickled"))


@pytest.fixture
def bundle(tmp_path: Path) -> takeout.Bundle:
    """A signed bundle whose function reads every element of a buffer at call time."""
    ns = run_cells(
        f"import numpy as np\nweights = np.arange({N}, dtype=np.float64)\n"
        "def total():\n    return float(weights.sum())"
    )
    return takeout.pack(ns["total"], tmp_path / "w.takeout", signing_key=KEY)


EXPECTED = float(N * (N - 1) // 2)


@pytest.fixture(autouse=True)
def _no_hang() -> Iterator[None]:
    """A loader that blocks on a FIFO would hang the suite: fail after 60 s instead."""

    def expired(*_: Any) -> None:
        raise TimeoutError("load hung")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _hook(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, act: Callable[[], None]) -> None:
    """Run `act` (the attacker) just before `owner.name` runs, once."""
    real = getattr(owner, name)
    done: list[bool] = []

    def hooked(*args: Any, **kwargs: Any) -> Any:
        if not done:
            done.append(True)
            act()
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, hooked)


# ── 1. swap after check ────────────────────────────────────────────────────────────────────


def test_payload_swapped_after_the_manifest_check_is_refused_unloaded(
    bundle: takeout.Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps(Marker(marker), protocol=5)

    def swap() -> None:  # a rename over the checked file, as an attacker in the directory can
        (tmp_path / "evil.pkl").write_bytes(evil)
        os.replace(tmp_path / "evil.pkl", bundle.path / "function.pkl")

    # check_python runs after every manifest check and before the payload is read.
    _hook(monkeypatch, _runtime, "check_python", swap)
    with pytest.raises(BundleIntegrityError, match=r"`function\.pkl` does not match its sha256"):
        takeout.load(bundle.path, signing_key=KEY)
    assert not marker.exists(), "the swapped-in pickle ran"


def test_payload_swapped_after_it_was_read_changes_nothing(
    bundle: takeout.Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps(Marker(marker), protocol=5)
    swap = lambda: (bundle.path / "function.pkl").write_bytes(evil)  # noqa: E731
    _hook(monkeypatch, pickle, "loads", swap)  # the bytes are read and hashed by now
    fn = takeout.load(bundle.path, signing_key=KEY)
    assert (bundle.path / "function.pkl").read_bytes() == evil, "the hook did not run"
    assert not marker.exists(), "the swapped-in pickle ran"
    assert fn() == EXPECTED


def test_buffer_zeroed_after_the_manifest_check_is_refused(
    bundle: takeout.Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    buffer = bundle.path / "buffers" / "0000.bin"
    zero = lambda: buffer.write_bytes(bytes(buffer.stat().st_size))  # noqa: E731
    _hook(monkeypatch, _runtime, "check_python", zero)
    with pytest.raises(BundleIntegrityError, match=r"`buffers/0000\.bin` does not match"):
        takeout.load(bundle.path, signing_key=KEY)


def _overwrite_in_place(path: Path) -> None:
    """Zero the file through the same inode: a plain write and a write through a shared
    mapping, the two ways a private mapping of the file would come to show new bytes."""
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.write(bytes(size // 2))
        fh.flush()
        with mmap.mmap(fh.fileno(), 0) as shared:
            shared[size // 2 :] = bytes(size - size // 2)


def test_a_buffer_rewritten_after_load_does_not_change_the_answers(
    bundle: takeout.Bundle,
) -> None:
    fn = takeout.load(bundle.path, signing_key=KEY)  # no page of the array touched yet
    _overwrite_in_place(bundle.path / "buffers" / "0000.bin")
    assert fn() == EXPECTED


def test_a_forked_worker_serves_what_was_checked_after_the_file_changes(
    bundle: takeout.Bundle,
) -> None:
    """`takeout serve` loads once, then forks its workers: the worker's pages must be the
    checked ones, whatever happens to the file after the check."""
    script = (
        "import os, sys, takeout\n"
        "fn = takeout.load(sys.argv[1], signing_key=sys.argv[2])\n"
        "sys.stdout.write('loaded\\n'); sys.stdout.flush(); sys.stdin.readline()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    print(fn(), flush=True); os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(bundle.path), KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline() == "loaded\n"
        _overwrite_in_place(bundle.path / "buffers" / "0000.bin")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert float(proc.stdout.readline()) == EXPECTED
    finally:
        proc.kill()
        proc.communicate()


# ── 2. no cache may let modified bytes through ─────────────────────────────────────────────


def test_a_write_through_a_shared_mapping_is_seen_by_the_next_signed_load(
    bundle: takeout.Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAKEOUT_CACHE_DIR", str(tmp_path / "cache"))
    buffer = bundle.path / "buffers" / "0000.bin"
    with open(buffer, "r+b") as fh, mmap.mmap(fh.fileno(), 0) as shared:
        shared[8] = shared[8]  # the page is dirty now; later writes to it keep the ctime
        before = buffer.stat().st_ctime_ns
        assert takeout.load(bundle.path, signing_key=KEY)() == EXPECTED
        shared[8:16] = np.float64(-1e9).tobytes()  # weights[1], changed after the check
        shared.flush()
    # On Linux the ctime usually stays the same here: why no stamp can vouch for the bytes.
    assert buffer.stat().st_ctime_ns >= before
    with pytest.raises(BundleIntegrityError, match=r"`buffers/0000\.bin` does not match"):
        takeout.load(bundle.path, signing_key=KEY)


def test_a_forged_cache_entry_is_not_trusted(
    bundle: takeout.Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("TAKEOUT_CACHE_DIR", str(cache))
    buffer = bundle.path / "buffers" / "0000.bin"
    buffer.write_bytes(bytes(buffer.stat().st_size))
    st = buffer.stat()
    digest = bundle.manifest["files"]["buffers/0000.bin"]
    (cache / "verified").mkdir(parents=True)  # the entry the old cache would have trusted
    stamp = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    (cache / "verified" / digest.replace(":", "-")).write_text(json.dumps(stamp))
    with pytest.raises(BundleIntegrityError, match=r"`buffers/0000\.bin` does not match"):
        takeout.load(bundle.path, signing_key=KEY)


# ── 3. odd files: FIFOs, devices, links ────────────────────────────────────────────────────


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


def _same_bytes_outside(path: Path) -> None:
    """A link to a copy outside the bundle: its hash matches, it must still be refused."""
    outside = path.parent.parent / f"outside-{path.name}"
    if path.parent.name == "buffers":
        outside = path.parent.parent.parent / f"outside-{path.name}"
    shutil.copyfile(path, outside)
    path.unlink()
    path.symlink_to(outside)


ODD = {
    "fifo": (_fifo, "is a FIFO, not a regular file"),
    "dev-zero": (_dev_zero, "is a symbolic link"),
    "link-outside": (_same_bytes_outside, "is a symbolic link"),
}


@pytest.mark.parametrize("rel", ["function.pkl", "buffers/0000.bin", "requirements.txt"])
@pytest.mark.parametrize("odd", sorted(ODD))
def test_odd_files_are_refused_in_one_sentence(bundle: takeout.Bundle, rel: str, odd: str) -> None:
    make, message = ODD[odd]
    make(bundle.path / rel)
    with pytest.raises(BundleIntegrityError, match=rf"^`{rel}` in the bundle {message}"):
        takeout.load(bundle.path, signing_key=KEY)
    with pytest.raises(BundleIntegrityError, match=message):
        read_manifest(bundle.path, signing_key=KEY)


def test_a_linked_buffers_directory_is_refused(bundle: takeout.Bundle, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere"
    os.replace(bundle.path / "buffers", moved)
    (bundle.path / "buffers").symlink_to(moved)
    with pytest.raises(BundleIntegrityError, match=r"^`buffers` in the bundle is a symbolic link"):
        takeout.load(bundle.path, signing_key=KEY)


def test_a_linked_manifest_is_refused(bundle: takeout.Bundle, tmp_path: Path) -> None:
    os.replace(bundle.path / "manifest.json", tmp_path / "manifest.json")
    (bundle.path / "manifest.json").symlink_to(tmp_path / "manifest.json")
    with pytest.raises(TakeoutError, match=r"`manifest\.json` in the bundle is a symbolic link"):
        takeout.load(bundle.path, signing_key=KEY)


@pytest.mark.parametrize("command", ["call", "serve"])
def test_call_and_serve_refuse_a_fifo_instead_of_hanging(
    bundle: takeout.Bundle, command: str
) -> None:
    _fifo(bundle.path / "buffers" / "0000.bin")
    argv = [*TAKEOUT, command, str(bundle.path), "--signing-key", KEY]
    argv += ["[]"] if command == "call" else ["--port", "0"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip() == (
        "takeout: error: `buffers/0000.bin` in the bundle is a FIFO, not a regular file; "
        "a bundle holds regular files only, pack it again"
    )


# ── 4. damaged manifests ───────────────────────────────────────────────────────────────────


def _rewrite(bundle: takeout.Bundle, change: Callable[[dict[str, Any]], None]) -> None:
    path = bundle.path / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_a_deeply_nested_manifest_is_one_sentence(bundle: takeout.Bundle) -> None:
    path = bundle.path / "manifest.json"
    text = path.read_text()
    path.write_text('{"deep": ' + "[" * 1000 + "]" * 1000 + ", " + text.lstrip()[1:])
    with pytest.raises(BundleIntegrityError, match=r"nests \d+ levels deep, more than the 200"):
        takeout.load(bundle.path, signing_key=KEY)


def test_brackets_inside_strings_are_not_nesting(bundle: takeout.Bundle) -> None:
    _rewrite(bundle, lambda m: m["function"].update(doc='"[{\\' * 2000))
    with pytest.raises(BundleIntegrityError, match="the signature does not match"):
        takeout.load(bundle.path, signing_key=KEY)  # parsed, then refused for the edit


def test_a_nul_byte_in_a_path_is_one_sentence(bundle: takeout.Bundle) -> None:
    def nul(m: dict[str, Any]) -> None:
        m["files"]["buf\x00fers/x"] = m["files"]["function.pkl"]
        del m["signature"]

    _rewrite(bundle, nul)
    with pytest.raises(BundleIntegrityError, match=r"^`.*manifest\.json` is damaged: the path"):
        takeout.load(bundle.path)


def test_a_huge_manifest_is_refused_unread(bundle: takeout.Bundle) -> None:
    with open(bundle.path / "manifest.json", "r+b") as fh:
        fh.truncate(300 << 20)  # sparse: 300 MB that cost nothing to write
    with pytest.raises(BundleIntegrityError, match=r"has 314,572,800 bytes, more than the"):
        takeout.load(bundle.path, signing_key=KEY)


def test_the_standalone_loader_checks_what_it_reads(bundle: takeout.Bundle) -> None:
    """The copy that `takeout verify` runs in a clean venv reads the same way."""
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    data = _runtime.read_verified(bundle.path, "function.pkl", manifest["files"]["function.pkl"])
    assert hashlib.sha256(data).hexdigest() == manifest["files"]["function.pkl"][7:]
    _fifo(bundle.path / "requirements.txt")
    result = bundle.path.parent / "result.json"
    runtime = Path(_runtime.__file__)
    subprocess.run(
        [sys.executable, "-I", str(runtime), str(bundle.path), str(result)], timeout=60, check=True
    )
    out = json.loads(result.read_text())
    assert out["loaded"] is False
    assert "is a FIFO, not a regular file" in out["error"]["message"]


# ── 14. takeout call: whatever the function raises is one sentence ─────────────────────────


def _call(bundle: Path, arguments: str = "[]") -> subprocess.CompletedProcess[str]:
    argv = [*TAKEOUT, "call", str(bundle), arguments]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("body", "sentence"),
    [
        (
            "class Halt(BaseException):\n    pass\ndef f():\n    raise Halt('stop here')",
            "the function raised Halt: stop here",
        ),
        (
            "import sys\ndef f():\n    sys.exit(5)",
            "the function called sys.exit(5) instead of returning; return a value or raise "
            "an exception",
        ),
        (
            "def f():\n    raise ValueError('\\x1b]0;owned\\x07\\x1b[2J\\nforged line')",
            "the function raised ValueError: \\x1b]0;owned\\x07\\x1b[2J\\nforged line",
        ),
    ],
    ids=["base-exception", "system-exit", "escapes"],
)
def test_call_reports_what_the_function_raised_in_one_sentence(
    tmp_path: Path, body: str, sentence: str
) -> None:
    ns = run_cells(body)
    bundle = takeout.pack(ns["f"], tmp_path / "f.takeout")
    out = _call(bundle.path)
    assert out.returncode == 1, out
    assert out.stderr == f"takeout: error: {sentence}\n"
    assert "\x1b" not in out.stderr and out.stdout == ""


# ── 15. pack: killed packs, racing packs, I/O errors ───────────────────────────────────────

KILLED_PACK = """
import os, sys, takeout
class DiesWhileWritten:
    # Alive through the analysis, which pickles too; killed while function.pkl is written,
    # as a pack killed half-way through a 400 MB payload would be.
    def __reduce__(self):
        frame = sys._getframe()
        while frame is not None:
            if frame.f_code.co_name == "_write_payload":
                os.kill(os.getpid(), 9)
            frame = frame.f_back
        return (int, ())
thing = DiesWhileWritten()
def f():
    return thing
takeout.pack(f, sys.argv[1])
"""


def test_a_killed_pack_leaves_nothing_the_next_pack_does_not_remove(tmp_path: Path) -> None:
    target = tmp_path / "f.takeout"
    killed = subprocess.run([sys.executable, "-c", KILLED_PACK, str(target)], timeout=120)
    assert killed.returncode == -signal.SIGKILL
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 1 and left[0].startswith(".f.takeout.") and left[0].endswith(".tmp")
    # Another pack's temporary directory, still running (this process): left alone.
    running = tmp_path / f".f.takeout.{os.getpid()}.abcd1234.tmp"
    running.mkdir()
    takeout.pack(run_cells("def f():\n    return 1")["f"], target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, "f.takeout"])


def test_a_pack_that_finishes_first_is_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from takeout import bundle as bundle_module

    target = tmp_path / "f.takeout"
    first = run_cells("def f():\n    return 'first'")["f"]
    second = run_cells("def f():\n    return 'second'")["f"]
    # Deterministic race: the other pack to the same path completes while ours writes.
    _hook(monkeypatch, bundle_module, "_requirements_txt", lambda: takeout.pack(first, target))
    with pytest.raises(takeout.errors.UsageError, match=r"already exists \(written while"):
        takeout.pack(second, target)
    assert takeout.load(target)() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.takeout"]


def test_a_pack_that_cannot_write_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    target = tmp_path / "a-file" / "f.takeout"
    with pytest.raises(takeout.errors.BundleError, match=r"^could not write the bundle `.*a-file"):
        takeout.pack(run_cells("def f():\n    return 1")["f"], target)


# ── 13. integers past 64 bits reach the function exactly ───────────────────────────────────


@pytest.mark.slow
def test_big_json_integers_reach_an_int_parameter_exactly(tmp_path: Path) -> None:
    from .test_serve import serve

    ns = run_cells("def echo(x: int) -> str:\n    return f'{type(x).__name__} {x}'")
    bundle = takeout.pack(ns["echo"], tmp_path / "echo.takeout")
    server = serve("takeout", bundle.path)
    try:
        for value in (2**64, 10**99 + 7, -(2**63) - 1, -(10**120), 2**63 - 1):
            body = '{"x": %d}' % value  # noqa: UP031 - the digits, not a float's repr
            r = httpx.post(
                server.url + "/call",
                content=body,
                headers={"content-type": "application/json"},
                timeout=30,
            )
            assert r.status_code == 200, r.text
            assert r.json() == {"result": f"int {value}"}
        for not_int in ("1.5", '"7"', "1.8446744073709552e19.5"):
            r = httpx.post(
                server.url + "/call",
                content='{"x": %s}' % not_int,  # noqa: UP031
                headers={"content-type": "application/json"},
                timeout=30,
            )
            assert r.status_code in (400, 422), r.text
    finally:
        server.stop()


def test_a_bundle_reached_through_a_link_loads(bundle: takeout.Bundle, tmp_path: Path) -> None:
    """A link to the bundle directory is the user's own choice (`current -> v3.takeout`)."""
    current = tmp_path / "current"
    current.symlink_to(bundle.path)
    assert takeout.load(current, signing_key=KEY)() == EXPECTED
