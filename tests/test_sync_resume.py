"""An interrupted push of a big file resumes from its last complete chunk, not from zero."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from .clients import Cluster, same_tree

MIB = 1 << 20


def stored_chunks(relay: Path) -> int:
    """Complete data objects on a file relay."""
    data = relay / "data"
    return (
        sum(1 for p in data.rglob("*") if p.is_file() and not p.name.startswith("."))
        if data.exists()
        else 0
    )


def test_a_killed_push_resumes_from_the_chunks_already_stored(cluster: Cluster) -> None:
    relay = Path(cluster.relay.removeprefix("file://"))
    a = cluster.add("alice", extra='max_page_size = "2MiB"')
    b = cluster.add("bob")
    with open(a.write("big.bin", b""), "wb") as out:
        for _ in range(64):
            out.write(os.urandom(MIB))
    push = a.start_sync()
    deadline = time.monotonic() + 60
    while stored_chunks(relay) < 8 and time.monotonic() < deadline and push.poll() is None:
        time.sleep(0.005)
    push.send_signal(signal.SIGKILL)
    push.wait()
    stored = stored_chunks(relay)
    assert 0 < stored < 32, "the push was not interrupted in the middle"
    run = a.sync("--json")
    report = json.loads(run.stdout)["shared"]
    assert report["bytes_resumed"] >= stored * 2 * MIB - 2 * MIB  # at most one chunk redone
    assert report["wire_up"] < 64 * MIB - report["bytes_resumed"] + 4 * MIB
    b.sync()
    assert same_tree(a.root, b.root)


def test_chunks_of_a_changed_file_are_not_reused(cluster: Cluster) -> None:
    relay = Path(cluster.relay.removeprefix("file://"))
    a = cluster.add("alice", extra='max_page_size = "1MiB"')
    b = cluster.add("bob")
    path = a.write("big.bin", b"")
    with open(path, "wb") as out:
        for _ in range(32):
            out.write(os.urandom(MIB))
    push = a.start_sync()
    deadline = time.monotonic() + 60
    while stored_chunks(relay) < 4 and time.monotonic() < deadline and push.poll() is None:
        time.sleep(0.005)
    push.send_signal(signal.SIGKILL)
    push.wait()
    with open(path, "r+b") as out:  # the file changes before the retry
        out.write(os.urandom(MIB))
    report = json.loads(a.sync("--json").stdout)["shared"]
    assert report["bytes_resumed"] == 0
    b.sync()
    assert same_tree(a.root, b.root)
