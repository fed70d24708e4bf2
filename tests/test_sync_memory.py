"""Bounded memory (DESIGN §2.7): syncing a 1 GiB file streams it, so the peak resident size of
the pushing and of the pulling escale process stays flat, near that of an idle round.

Peak RSS is measured, not timed: ``wait4`` reports the ``ru_maxrss`` of exactly the escale
process that ran the round."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from .clients import Client, Cluster

MIB = 1 << 20
GIB = 1 << 30
#: absolute ceiling for one round's process (interpreter, libraries and the 64 MiB Argon2id
#: key derivation included)
CEILING = 150 * MIB
#: how much more than an idle round a round moving 1 GiB may use
FLAT_MARGIN = 64 * MIB


def write_sparse_ish(path: Path, size: int) -> str:
    """Mostly zeros with a random MiB every 8 MiB, written block by block; return SHA-256."""
    digest = hashlib.sha256()
    zeros = bytes(MIB)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        for i in range(size // MIB):
            block = os.urandom(MIB) if i % 8 == 0 else zeros
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def peak_rss_of_round(client: Client, tmp_path: Path) -> int:
    """Run one ``escale sync`` round; return the peak RSS of that process in bytes."""
    log = tmp_path / f"{client.name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            client.command("sync", client.section),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=client.env,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, log.read_text(errors="replace")
    return int(usage.ru_maxrss) * 1024  # KiB on Linux


@pytest.mark.slow
def test_one_gib_file_pushes_and_pulls_with_flat_peak_memory(
    cluster: Cluster, tmp_path: Path
) -> None:
    sender, receiver = cluster.add("sender"), cluster.add("receiver")
    sender.write("small.txt", "a small file")
    peak_rss_of_round(sender, tmp_path)
    idle = max(peak_rss_of_round(receiver, tmp_path), peak_rss_of_round(sender, tmp_path))

    expected = write_sparse_ish(sender.root / "disk image.raw", GIB)
    push = peak_rss_of_round(sender, tmp_path)
    pull = peak_rss_of_round(receiver, tmp_path)

    copy = receiver.root / "disk image.raw"
    assert copy.stat().st_size == GIB
    assert sha256(copy) == expected
    for what, peak in (("push", push), ("pull", pull)):
        assert peak < CEILING, f"{what} of 1 GiB peaked at {peak / MIB:.0f} MiB"
        assert peak < idle + FLAT_MARGIN, (
            f"{what} of 1 GiB peaked at {peak / MIB:.0f} MiB, an idle round at {idle / MIB:.0f} MiB"
        )
