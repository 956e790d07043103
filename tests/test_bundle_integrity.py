"""`takeout._core`'s bundle integrity functions on a bundle laid out in a temp directory."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import takeout
from takeout import _core
from takeout.errors import BundleError, BundleIntegrityError, TakeoutError

from .support import run_cells

FILES = ["function.pkl", "buffers/0000.bin", "requirements.txt"]


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    root = tmp_path / "predict.takeout"
    (root / "buffers").mkdir(parents=True)
    (root / "function.pkl").write_bytes(b"\x80\x05N.")
    (root / "buffers" / "0000.bin").write_bytes(bytes(range(256)) * 10_000)
    (root / "requirements.txt").write_text("numpy==2.0\n")
    return root


def manifest(root: Path) -> dict[str, object]:
    return {"format": "takeout/1", "name": "predict", "files": _core.hash_files(str(root), FILES)}


def test_hierarchy() -> None:
    assert issubclass(BundleIntegrityError, BundleError)
    assert issubclass(BundleError, TakeoutError)


def test_hashes_match_hashlib(bundle: Path) -> None:
    files = _core.hash_files(str(bundle), FILES)
    assert sorted(files) == sorted(FILES)
    for rel, digest in files.items():
        assert digest == "sha256:" + hashlib.sha256((bundle / rel).read_bytes()).hexdigest()
    _core.verify_files(str(bundle), files)


def test_empty_file(bundle: Path) -> None:
    (bundle / "empty").write_bytes(b"")
    assert _core.hash_files(str(bundle), ["empty"]) == {
        "empty": "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    }


def test_tamper_detected(bundle: Path) -> None:
    files = _core.hash_files(str(bundle), FILES)
    path = bundle / "buffers" / "0000.bin"
    data = bytearray(path.read_bytes())
    data[12345] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match=r"^`buffers/0000.bin` does not match"):
        _core.verify_files(str(bundle), files)


def test_missing_file(bundle: Path) -> None:
    files = _core.hash_files(str(bundle), FILES)
    (bundle / "function.pkl").unlink()
    with pytest.raises(BundleIntegrityError, match=r"`function.pkl` is missing from the bundle"):
        _core.verify_files(str(bundle), files)
    with pytest.raises(BundleIntegrityError, match="missing"):
        _core.hash_files(str(bundle), FILES)


@pytest.mark.parametrize("rel", ["../x", "buffers/../../x", "/etc/passwd", "a\\b", "./a"])
def test_path_escape_refused(bundle: Path, rel: str) -> None:
    (bundle.parent / "x").write_bytes(b"")
    digest = "sha256:" + hashlib.sha256(b"").hexdigest()
    with pytest.raises(BundleIntegrityError, match="not a relative path inside the bundle"):
        _core.verify_files(str(bundle), {rel: digest})
    with pytest.raises(BundleIntegrityError, match="not a relative path inside the bundle"):
        _core.hash_files(str(bundle), [rel])


def test_canonical_json() -> None:
    text = json.dumps({"b": [1, {"d": None, "c": "é"}], "a": True})
    assert _core.canonical_json(text) == '{"a":true,"b":[1,{"c":"é","d":null}]}'
    with pytest.raises(BundleIntegrityError, match="not valid JSON"):
        _core.canonical_json("{")


def test_sign_and_check(bundle: Path) -> None:
    m = manifest(bundle)
    m["signature"] = _core.sign_manifest(json.dumps(m), b"secret")
    assert isinstance(m["signature"], str)
    assert m["signature"].startswith("hmac-sha256:")
    # Key order and whitespace of the text do not matter.
    _core.check_signature(json.dumps(m, indent=2, sort_keys=False), b"secret")


def test_wrong_key_and_modified_manifest(bundle: Path) -> None:
    m = manifest(bundle)
    m["signature"] = _core.sign_manifest(json.dumps(m), b"secret")
    with pytest.raises(BundleIntegrityError, match="the signature does not match"):
        _core.check_signature(json.dumps(m), b"Secret")
    m["name"] = "other"
    with pytest.raises(BundleIntegrityError, match="the signature does not match"):
        _core.check_signature(json.dumps(m), b"secret")


def test_signed_without_key_and_unsigned_with_key(bundle: Path) -> None:
    m = manifest(bundle)
    _core.check_signature(json.dumps(m), None)
    with pytest.raises(BundleIntegrityError, match="not signed but a signing key was given"):
        _core.check_signature(json.dumps(m), b"secret")
    m["signature"] = _core.sign_manifest(json.dumps(m), b"secret")
    with pytest.raises(BundleIntegrityError, match="TAKEOUT_SIGNING_KEY"):
        _core.check_signature(json.dumps(m), None)


def test_a_damaged_manifest_is_one_sentence(tmp_path: Path) -> None:
    ns = run_cells("import numpy as np\nw = np.zeros(200_000)\ndef f():\n    return float(w[0])")
    bundle = takeout.pack(ns["f"], tmp_path / "b.takeout")
    original = (bundle.path / "manifest.json").read_text()
    for damage in (
        lambda m: m["buffers"][0].update(file=["x"]),
        lambda m: m.update(buffers=3),
        lambda m: m.update(python="3.11"),
        lambda m: m["buffers"][0].pop("size"),
        lambda m: m["files"].update({"function.pkl": "/etc/passwd"}),
    ):
        manifest = json.loads(original)
        damage(manifest)
        (bundle.path / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(BundleIntegrityError, match="is damaged"):
            takeout.load(bundle.path)
        out = subprocess.run(
            [sys.executable, "-m", "takeout.cli", "call", str(bundle.path), "[]"],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert "is damaged" in out.stderr and "the function raised" not in out.stderr
