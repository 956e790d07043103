"""Fuzz the parsers that read what others wrote, each for a time budget.

    .venv/bin/python fuzz/run.py [--seconds 60] [--seed N] [--only pickle,requirement,...]

Targets (each gets `--seconds`):

- `pickle`: `takeout._core.scan_pickle` on mutated real pickle streams (protocols 0-5,
  cloudpickled functions, numpy arrays) and random bytes. May raise PickleScanError.
- `requirement`: `takeout._core.parse_requirement` (pep508_rs behind our boundary) on
  mutated PEP 508 strings. May raise RequirementError.
- `metadata`: a `*.dist-info/METADATA` with mutated headers and `Requires-Dist` lines, read
  by `takeout._core.EnvIndex` and closed by its `lock`. May raise a TakeoutError.
- `manifest`: `takeout.load` of a real bundle whose manifest.json was mutated (structure:
  values of other types, deleted keys, deep nesting, NUL bytes, odd paths; and bytes). May
  raise a TakeoutError, and must never unpickle a byte (a marker pickle checks it).

A finding is a Rust panic (pyo3's PanicException: a BaseException) or any exception that is
not one of takeout's own one-sentence errors. Findings are written to `--out` and the exit
status is 1. The figures (inputs tried, findings) are printed as a table.

Why this and not cargo-fuzz or atheris: cargo-fuzz needs a nightly toolchain and libFuzzer,
which this project cannot install; atheris' coverage guidance reaches Python code only, not
the Rust parsers. So: structure-aware random mutation of real inputs, through the same PyO3
boundary users call, seeded with the inputs that once broke these parsers (the pep508_rs
panics on `a_ >=1`, `foo[b-]`; deep nesting and NUL bytes in manifests).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent


# ── mutation ──────────────────────────────────────────────────────────────────────────────


def mutate_bytes(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3, 8))):
        op = rng.randrange(7)
        at = rng.randrange(len(out) + 1)
        if op == 0 and out:  # flip a bit
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        elif op == 1 and out:  # set a byte to an interesting value
            out[rng.randrange(len(out))] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == 2:  # insert random bytes
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        elif op == 3 and out:  # delete a run
            del out[at : at + rng.randrange(1, 17)]
        elif op == 4:  # splice a run of another seed
            other = rng.choice(pool)
            start = rng.randrange(len(other) + 1)
            out[at:at] = other[start : start + rng.randrange(1, 65)]
        elif op == 5 and out:  # repeat a run (nesting, long counts)
            start = rng.randrange(len(out))
            run = out[start : start + rng.randrange(1, 9)]
            out[at:at] = run * rng.randrange(2, 200)
        elif op == 6:  # truncate
            del out[at:]
    return bytes(out)


PEP508_ALPHABET = "abcxyz019_-.[](),;<>=!~@ *'\"/:\\+\t"


def mutate_text(rng: random.Random, text: str, pool: list[str]) -> str:
    chars = list(text)
    for _ in range(rng.choice((1, 1, 2, 4))):
        op = rng.randrange(5)
        at = rng.randrange(len(chars) + 1)
        if op == 0:
            chars[at:at] = rng.choice(PEP508_ALPHABET)
        elif op == 1 and chars:
            del chars[at : at + rng.randrange(1, 4)]
        elif op == 2 and chars:
            chars[rng.randrange(len(chars))] = rng.choice(PEP508_ALPHABET)
        elif op == 3:
            other = rng.choice(pool)
            start = rng.randrange(len(other) + 1)
            chars[at:at] = other[start : start + rng.randrange(1, 12)]
        elif op == 4:
            chars[at:at] = rng.choice(("\u00e9", "\x00", "\n", "\u200b", "\U0001f600", "\x1b"))
    return "".join(chars)


# ── targets: (seeds, one run) ─────────────────────────────────────────────────────────────


def pickle_target(work: Path) -> Callable[[random.Random], None]:
    import cloudpickle
    import numpy as np

    from takeout import _core
    from takeout.errors import PickleScanError

    def sample(x: float) -> float:
        return float(np.sqrt(x)) + len([v for v in range(3)])

    objects: list[Any] = [
        None,
        {"a": [1, 2.5, "s", b"b", (True, None)], 3: {4, 5}},
        np.arange(12, dtype=np.float32).reshape(3, 4),
        Path("x"),
    ]
    seeds = [pickle.dumps(o, protocol=p) for o in objects for p in range(6)]
    seeds += [cloudpickle.dumps(sample, protocol=5), cloudpickle.dumps(lambda: np.pi)]

    def run(rng: random.Random) -> None:
        if rng.random() < 0.05:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        else:
            data = mutate_bytes(rng, rng.choice(seeds), seeds)
        try:
            _core.scan_pickle(data)
        except PickleScanError:
            pass

    return run


REQUIREMENTS = [
    "numpy==2.1.3",
    "scikit-learn>=1.5,<2 ; python_version >= '3.9'",
    "requests[security,socks]~=2.31",
    "pkg @ https://example.org/pkg-1.0-py3-none-any.whl",
    "foo; extra == 'test' and sys_platform != 'win32'",
    "a_ >=1",
    "foo[b-]",
    "foo_ >=1",
    "name (>=1.0, !=1.3.*)",
]


def requirement_target(work: Path) -> Callable[[random.Random], None]:
    from takeout import _core
    from takeout.errors import RequirementError

    def run(rng: random.Random) -> None:
        try:
            _core.parse_requirement(mutate_text(rng, rng.choice(REQUIREMENTS), REQUIREMENTS))
        except RequirementError:
            pass

    return run


METADATA = """Metadata-Version: 2.1
Name: fuzzed
Version: 1.0
Summary: a distribution
Requires-Dist: numpy>=1.20
Requires-Dist: pyyaml ; extra == "yaml"
Requires-Dist: foo_ >=1
Provides-Extra: yaml
Description-Content-Type: text/plain
 continued line

Body: Requires-Dist: not-a-header
"""


def metadata_target(work: Path) -> Callable[[random.Random], None]:
    from takeout import _core, _env
    from takeout.errors import TakeoutError

    site = work / "site"
    markers = dict(_env.marker_values())
    lines = METADATA.splitlines(keepends=True)

    def run(rng: random.Random) -> None:
        shutil.rmtree(site, ignore_errors=True)
        dist = site / "fuzzed-1.0.dist-info"
        dist.mkdir(parents=True)
        chosen = list(lines)
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(len(chosen))
            if rng.random() < 0.3:
                chosen.insert(i, rng.choice(lines))
            else:
                chosen[i] = mutate_text(rng, chosen[i], REQUIREMENTS + lines)
        text = "".join(chosen).encode("utf-8", "surrogatepass")
        if rng.random() < 0.2:
            text = mutate_bytes(rng, text, [text])
        (dist / "METADATA").write_bytes(text)
        (dist / "RECORD").write_text("fuzzed/__init__.py,,\n")
        try:
            index = _core.EnvIndex([str(site)])
            for i in range(len(index)):
                index.lock([(i, ["yaml"])], markers)
        except TakeoutError:
            pass

    return run


class Marker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (Path.write_text, (self.path, "unpickled"))


def _mutate_json(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """A structure-aware change somewhere in `value`."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(list(value))
        out = dict(value)
        roll = rng.random()
        if roll < 0.15:
            del out[key]
        elif roll < 0.25:
            out[mutate_text(rng, key, ["files", "buffers", "/", "..", "\x00"])] = out[key]
        else:
            out[key] = _mutate_json(rng, value[key], depth + 1)
        return out
    if isinstance(value, list) and value and rng.random() < 0.7:
        out = list(value)
        i = rng.randrange(len(out))
        out[i] = _mutate_json(rng, out[i], depth + 1)
        return out
    choices: list[Callable[[], Any]] = [
        lambda: None,
        lambda: rng.choice((True, False)),
        lambda: rng.choice((0, -1, 2**64, 1e308, -0.0)),
        lambda: "",
        lambda: rng.choice(("../x", "/etc/passwd", "a\x00b", "buffers//0", "sha256:00")),
        lambda: [],
        lambda: {},
        lambda: [value] * rng.randrange(1, 4),
        lambda: {"file": "buffers/0000.bin", "size": rng.choice((0, -1, 2**40, "1"))},
        lambda: _nested(rng.randrange(1, 150)),
    ]
    if isinstance(value, str):
        choices.append(lambda: mutate_text(rng, value, ["sha256:", "/", ".."]))
    return rng.choice(choices)()


def _nested(n: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(n):
        value = [value]
    return value


def _deep(rng: random.Random) -> str:
    n = rng.choice((50, 199, 201, 1000, 5000))
    return "[" * n + "]" * n


def manifest_target(work: Path) -> Callable[[random.Random], None]:
    import takeout
    from takeout.errors import TakeoutError

    marker = work / "unpickled"
    ns: dict[str, Any] = {"__name__": "__main__"}
    exec("def predict(x: float, k: int = 2) -> float:\n    return x * k", ns)
    bundle = takeout.pack(ns["predict"], work / "seed.takeout", examples=[(1.5,)])
    original = (bundle.path / "manifest.json").read_bytes()
    seed = json.loads(original)
    evil = pickle.dumps(Marker(marker), protocol=5)
    root = work / "m.takeout"
    shutil.copytree(bundle.path, root)

    def run(rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.6:
            value = seed
            for _ in range(rng.randrange(1, 4)):
                value = _mutate_json(rng, value)
            text = json.dumps(value, ensure_ascii=rng.random() < 0.5).encode()
        elif roll < 0.7:
            text = original.replace(b'"examples"', f'"deep": {_deep(rng)}, "examples"'.encode())
        else:
            text = mutate_bytes(rng, original, [original])
        (root / "manifest.json").write_bytes(text)
        (root / "function.pkl").write_bytes(evil if rng.random() < 0.5 else b"")
        try:
            takeout.load(root)
        except TakeoutError:
            pass
        if marker.exists():
            marker.unlink()
            raise AssertionError("a byte of function.pkl was unpickled")

    return run


TARGETS: dict[str, Callable[[Path], Callable[[random.Random], None]]] = {
    "pickle": pickle_target,
    "requirement": requirement_target,
    "metadata": metadata_target,
    "manifest": manifest_target,
}


def fuzz(name: str, seconds: float, seed: int, out: Path) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"takeout-fuzz-{name}-"))
    findings: dict[str, int] = {}
    tried = panics = 0
    try:
        run = TARGETS[name](work)
        rng = random.Random(seed)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for _ in range(64):
                state = rng.getstate()
                tried += 1
                try:
                    run(rng)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as err:  # a panic or an error that is not ours
                    kind = type(err).__name__
                    panics += kind == "PanicException"
                    key = f"{kind}: {str(err)[:120]}"
                    if key not in findings:
                        _save(out, name, len(findings), key, state, err)
                    findings[key] = findings.get(key, 0) + 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"target": name, "tried": tried, "seconds": seconds, "panics": panics,
            "findings": findings}  # fmt: skip


def _save(out: Path, name: str, n: int, key: str, state: Any, err: BaseException) -> None:
    """The finding, where it was raised, and the generator state that reproduces its input."""
    import traceback

    out.mkdir(parents=True, exist_ok=True)
    where = "".join(traceback.format_exception(type(err), err, err.__traceback__)[-4:])
    finding = {"target": name, "error": key, "traceback": where, "rng_state": repr(state)}
    (out / f"{name}-{n}.json").write_text(json.dumps(finding, indent=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="budget per target")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "0")))
    parser.add_argument("--only", default=",".join(TARGETS), help="comma-separated targets")
    parser.add_argument("--out", type=Path, default=ROOT / "target" / "fuzz-findings")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    sys.setrecursionlimit(1000)  # the interpreter's default: what users run with
    results = []
    for name in args.only.split(","):
        print(f"· fuzzing {name} for {args.seconds:g} s", file=sys.stderr, flush=True)
        results.append(fuzz(name, args.seconds, args.seed, args.out))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{'target':<12} {'inputs':>10} {'per s':>8} {'panics':>7} {'other findings':>15}")
        for r in results:
            other = sum(r["findings"].values()) - r["panics"]
            rate = r["tried"] / r["seconds"]
            print(f"{r['target']:<12} {r['tried']:>10,} {rate:>8,.0f} {r['panics']:>7} {other:>15}")
            for key, count in r["findings"].items():
                print(f"    {count:>6} × {key}")
    failed = sum(1 for r in results if r["findings"])
    print(f"fuzz: {len(results) - failed} passed, {failed} failed")  # a target per count
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
