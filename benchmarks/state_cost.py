"""What the causal history costs: bytes per file record and per tombstone in the local state,
and per entry in a manifest, with version vectors of 1 to 5 clients.

Run: ``.venv/bin/python benchmarks/state_cost.py [--files 20000]``. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from escale_core.history import FileRecord, LocalState, Tombstone
from escale_core.manifest import Deletion, FileEntry, Manifest
from escale_core.vectors import dumps

REPO = "0" * 32
SEQ = 1_800_000_000  # clock-seeded numbers are the largest a vector holds


def clients(count: int) -> list[str]:
    """``count`` client ids."""
    return [f"{i:032x}" for i in range(1, count + 1)]


def path_of(i: int) -> str:
    """A realistic 28-character path."""
    return f"photos/2026/12/IMG_{i:06d}.jpg"


def database_bytes(count: int, writers: int, tombstones: bool) -> int:
    """The size of a vacuumed state database holding ``count`` records."""
    ids = clients(writers)
    vector = dumps({cid: SEQ + n for n, cid in enumerate(ids)})
    with tempfile.TemporaryDirectory() as folder:
        state = LocalState("cost", Path(folder))
        checksum = "ab" * 32  # sha256 hex
        for i in range(count):
            path = path_of(i)
            if tombstones:
                mark = Tombstone(vector, ids[0], "laptop", time.time_ns(), SEQ, 3)
                state.set_tombstone(path, mark)
            else:
                record = FileRecord(
                    4096, time.time_ns(), 1000 + i, checksum, checksum, "laptop", vector,
                    ids[0], time.time_ns(), SEQ, 3,
                )  # fmt: skip
                state.set(path, record)
        state.commit()
        state.db.execute("VACUUM")
        state.close()
        database = next(Path(folder).glob("*.sqlite"))
        return database.stat().st_size


def empty_bytes() -> int:
    """The size of a vacuumed state database with no record."""
    with tempfile.TemporaryDirectory() as folder:
        state = LocalState("cost", Path(folder))
        state.db.execute("VACUUM")
        state.close()
        return next(Path(folder).glob("*.sqlite")).stat().st_size


def manifest_bytes(count: int, writers: int, tombstones: bool) -> tuple[int, int]:
    """(JSON bytes, zstd bytes) of a manifest listing ``count`` entries."""
    ids = clients(writers)
    vector = {cid: SEQ + n for n, cid in enumerate(ids)}
    manifest = Manifest(REPO, ids[0], SEQ + 99, "sha256", 1, time.time(), prev=SEQ + 98)
    manifest.names = {cid: f"client-{n}" for n, cid in enumerate(ids)}
    for i in range(count):
        if tombstones:
            manifest.deletions.append(Deletion(path_of(i), vector, ids[0], SEQ, 3, time.time_ns()))
        else:
            entry = FileEntry(
                path_of(i), 4096, time.time_ns(), os.urandom(32).hex(), vector, ids[0], SEQ,
                3, [(0, 4096 * i, 4096)],
            )  # fmt: skip
            manifest.files.append(entry)
    packed = manifest.encode()
    import zstandard

    reader = zstandard.ZstdDecompressor().stream_reader(packed)  # size not in the frame
    return len(reader.read()), len(packed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=20_000)
    count = parser.parse_args().files
    base = empty_bytes()
    path_len = len(path_of(0))
    print(f"sqlite {sqlite3.sqlite_version}; {count} records; paths of {path_len} bytes\n")
    print("| clients in the vector | file record (state) | tombstone (state) |", end="")
    print(" file entry (manifest JSON / zstd) | tombstone (manifest JSON / zstd) |")
    print("|---|---|---|---|---|")
    for writers in (1, 3, 5):
        row = [str(writers)]
        for tomb in (False, True):
            size = database_bytes(count, writers, tomb) - base
            row.append(f"{size / count:.0f} B (path + {size / count - path_len:.0f})")
        for tomb in (False, True):
            raw, packed = manifest_bytes(count, writers, tomb)
            row.append(f"{raw / count:.0f} / {packed / count:.0f} B")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
