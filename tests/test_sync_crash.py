"""A client killed with SIGKILL at random points of its push or its pull (DESIGN §2.2): the
relay stays readable, no local file is ever half-written or wrong, and plain rounds after a
restart bring every client back in sync."""

from __future__ import annotations

import hashlib
import random
import signal
import time
from collections import defaultdict
from pathlib import Path

from .clients import Client, Cluster, same_tree, tree

MIB = 1 << 20
TEMP_PREFIX = ".escale-tmp-"
#: small pages, so a few MiB make several chunks and packs (more points to be killed at)
EXTRA = 'pullers = 1\nmax_page_size = "1MiB"'
TRIALS = 16


class Versions:
    """Every content each path ever had, by SHA-256: a file holding anything else is partial
    or wrong."""

    def __init__(self) -> None:
        self.seen: dict[str, set[str]] = defaultdict(set)

    def put(self, client: Client, rel: str, data: bytes) -> None:
        client.write(rel, data)
        self.seen[rel].add(hashlib.sha256(data).hexdigest())

    def check(self, root: Path) -> None:
        for path in root.rglob("*"):
            if not path.is_file():
                continue
            rel = path.relative_to(root).as_posix()
            if any(part.startswith(TEMP_PREFIX) for part in rel.split("/")):
                continue  # a temporary file or folder: removed by the next round (checked there)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if rel == ".escale/folder":  # the folder's marker
                continue
            if rel.startswith(".escale/"):  # a previous version: of some file, complete
                assert any(digest in seen for seen in self.seen.values()), rel
                continue
            assert digest in self.seen[rel], f"{rel}: content that was never written"


def temp_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob(f"{TEMP_PREFIX}*"))


def mutate(rng: random.Random, client: Client, versions: Versions, trial: int) -> int:
    """A round's worth of changes: two new multi-chunk files, small files added, edited and
    deleted. Return the bytes written."""
    written = 0
    for n in range(2):
        data = rng.randbytes(3 * MIB + rng.randrange(2 * MIB))
        versions.put(client, f"big/{(2 * trial + n) % 5}.bin", data)
        written += len(data)
    for i in range(60):
        data = rng.randbytes(rng.randrange(1, 6000))
        versions.put(client, f"small/t{trial}/{i}.txt", data)
        written += len(data)
    existing = sorted(
        p for p in versions.seen if p.startswith("small/") and (client.root / p).exists()
    )
    for rel in rng.sample(existing, min(4, len(existing))):
        data = rng.randbytes(rng.randrange(1, 3000))
        versions.put(client, rel, data)
        written += len(data)
    for rel in rng.sample(existing, min(3, len(existing))):
        (client.root / rel).unlink(missing_ok=True)
    return written


def timed_sync(client: Client) -> float:
    start = time.monotonic()
    client.sync()
    return time.monotonic() - start


def written_by(pid: int) -> int:
    """Bytes process ``pid`` has written so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/io", encoding="ascii") as io:
            for line in io:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def kill_during_sync(client: Client, *, after_bytes: int = 0, after_seconds: float = 0) -> int:
    """Start a round and SIGKILL it once it wrote ``after_bytes`` bytes (files, relay objects)
    or, with ``after_seconds``, after that long; return its exit status."""
    proc = client.start_sync()
    deadline = time.monotonic() + (after_seconds or 60)
    while proc.poll() is None and time.monotonic() < deadline:
        if not after_seconds and written_by(proc.pid) >= after_bytes:
            break
        time.sleep(0.0005)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate()
    return proc.returncode


def test_sigkill_at_random_points_of_push_and_pull_leaves_no_partial_file_and_converges(
    cluster: Cluster,
) -> None:
    rng = random.Random(20261125)
    victim, peer = cluster.add("victim", extra=EXTRA), cluster.add("peer", extra=EXTRA)
    versions = Versions()
    # a first round, and how long a round takes here (start-up and key derivation included)
    mutate(rng, victim, versions, trial=-1)
    round_time = timed_sync(victim)
    peer.sync()
    killed = 0
    for trial in range(TRIALS):
        pushing = trial % 2 == 0
        if pushing:  # the victim is killed while sending its own changes
            size = mutate(rng, victim, versions, trial)
            expected = tree(victim.root)
        else:  # the victim is killed while applying the peer's changes
            size = mutate(rng, peer, versions, trial)
            expected = tree(peer.root)
            peer.sync()
        if trial % 4 < 3:  # at a random point of the data it writes (relay objects or files)
            status = kill_during_sync(victim, after_bytes=rng.randrange(size * 11 // 10))
        else:  # at a random instant of the round: start-up, listing, metadata, collection
            status = kill_during_sync(victim, after_seconds=rng.uniform(0.05, 1.0) * round_time)
        killed += status == -signal.SIGKILL
        versions.check(victim.root)
        peer.sync()  # the relay as the crash left it is readable by others

        # restart: plain rounds, which must succeed and clean up
        victim.sync()
        assert temp_files(victim.root) == [], f"trial {trial}: temp files left"
        peer.sync()
        victim.sync()
        versions.check(victim.root)
        versions.check(peer.root)
        assert tree(victim.root) == expected, f"trial {trial} ({pushing=}): victim differs"
        assert tree(peer.root) == expected, f"trial {trial} ({pushing=}): peer differs"
        assert same_tree(victim.root, peer.root)
    assert killed >= TRIALS // 2, f"only {killed} of {TRIALS} rounds were killed"
    assert temp_files(peer.root) == []
