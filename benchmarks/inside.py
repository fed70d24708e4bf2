"""Where the time of a first push and a first pull goes: the durability syncs (``syncfs``),
the key derivation (Argon2id) and the rest, timed inside each ``escale sync`` process.

    python benchmarks/inside.py                       # W1 and W2, 3 runs each, medians
    python benchmarks/inside.py --runs 5 --output inside.md
    python benchmarks/inside.py --runs 1 --scale 100  # a smoke run

Each sync runs in its own process after an ``os.sync()`` (as every timed step of run.py), on
a fresh tree, relay and state; the process wraps escale's ``sync_filesystem`` and
``derive_key`` to time them and prints its own wall time from its first line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: (name, files, bytes per file, files per folder): W1 and W2 of run.py.
TREES = [("W1", 10_000, 4096, 100), ("W2", 1_000, 65536, 100)]

_ONE = """
import json, sys, time
started = time.perf_counter()
import escale_core.crypto as crypto
import escale_core.writeback as writeback
spent = {"syncfs": 0.0, "argon2": 0.0}

def timed(name, function):
    def wrapper(*args, **kwargs):
        begun = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - begun
    return wrapper

# before the modules that import them by name are loaded
writeback.sync_filesystem = timed("syncfs", writeback.sync_filesystem)
crypto.derive_key = timed("argon2", crypto.derive_key)
from escale_core.cli.main import main
try:
    main(["-c", sys.argv[1], "-q", "sync", "s"])
except SystemExit as exc:
    assert not exc.code, exc.code
spent["wall"] = time.perf_counter() - started
print(json.dumps(spent))
"""


def make_tree(root: Path, files: int, size: int, per_folder: int) -> None:
    for index in range(files):
        folder = root / f"d{index // per_folder:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index:05d}.bin").write_bytes(os.urandom(size))


def config(work: Path, client: str) -> Path:
    path = work / f"{client}.toml"
    path.write_text(
        f'state_dir = "{work}/state-{client}"\n[s]\npath = "{work}/{client}"\n'
        f'relay = "{work}/R"\nclient = "{client}"\npassphrase_file = "{work}/key"\n'
        'encryption = "aes-256-gcm"\npullers = 1\n'
    )
    return path


def one_sync(configuration: Path) -> dict[str, float]:
    os.sync()
    done = subprocess.run(
        [sys.executable, "-c", _ONE, str(configuration)], capture_output=True, text=True, check=True
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def run_tree(
    parent: Path, name: str, files: int, size: int, per_folder: int
) -> dict[str, dict[str, float]]:
    work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=parent))
    make_tree(work / "A", files, size, per_folder)
    (work / "B").mkdir()
    (work / "R").mkdir()
    key = work / "key"
    key.write_text("benchmark passphrase\n")
    key.chmod(0o600)
    return {"push": one_sync(config(work, "A")), "pull": one_sync(config(work, "B"))}


def table(runs: dict[str, list[dict[str, dict[str, float]]]], counts: dict[str, int]) -> str:
    """The medians of each tree's runs (``counts``: its files), as a markdown table."""
    rows = [
        "| tree | step | wall (s) | syncfs (s) | Argon2id (s) | the rest (s) |",
        "|---|---|---|---|---|---|",
    ]
    for (name, _, size, _), samples in zip(TREES, runs.values()):
        files = counts[name]
        for step in ("push", "pull"):
            wall, syncfs, argon2 = (
                statistics.median(sample[step][key] for sample in samples)
                for key in ("wall", "syncfs", "argon2")
            )
            rows.append(
                f"| {name} ({files:,} × {size // 1024} KiB) | first {step} | {wall:.3f} "
                f"| {syncfs:.3f} | {argon2:.3f} | {wall - syncfs - argon2:.3f} |"
            )
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    count = len(next(iter(runs.values())))
    return "\n".join(rows) + f"\n\nMedians of {count} runs ({when}).\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--scale", type=int, default=1, help="divide the file counts by N")
    args = parser.parse_args()
    counts = {name: max(files // args.scale, 2) for name, files, _, _ in TREES}
    with tempfile.TemporaryDirectory(prefix="escale-inside-") as scratch:
        runs = {
            name: [
                run_tree(Path(scratch), name, counts[name], size, per_folder)
                for _ in range(args.runs)
            ]
            for name, _, size, per_folder in TREES
        }
    text = table(runs, counts)
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
