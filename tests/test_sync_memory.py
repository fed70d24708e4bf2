"""Bounded memory (DESIGN §2.7): syncing a 1 GiB file streams it, so the peak resident size of
the pushing and of the pulling escale process stays flat, near that of an idle round.

Peak RSS is measured, not timed: the VmHWM of exactly the escale process that ran the round,
read while it runs."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import time
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


def _vmhwm(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss_of_round(client: Client, tmp_path: Path) -> int:
    """Run one ``escale sync`` round; return the peak RSS of that process in bytes.

    VmHWM is read while the process runs: ``ru_maxrss`` would report the test process's own
    peak, which a child inherits across fork and exec (see shared/notes/relays-measured.md).
    """
    log = tmp_path / f"{client.name}.log"
    peak = 0
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            client.command("sync", client.section),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=client.env,
        )
        while proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                peak = max(peak, _vmhwm(proc.pid))
            time.sleep(0.005)
    assert proc.returncode == 0, log.read_text(errors="replace")
    assert peak > 0
    return peak


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
