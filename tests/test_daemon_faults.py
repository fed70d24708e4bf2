"""Daemons in real processes through faults: relays on network servers, a stop or a SIGKILL
in the middle of a 150 MB transfer on either side. Whatever happens, the next start
converges, every copy is byte-identical and no temporary file is left."""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

from escale_core.config import load_config
from escale_core.daemon.control import ask_daemon
from escale_core.local import TEMP_PREFIX
from escale_core.plugins import get_plugins

from .clients import MIB, Client, Cluster, add, network_cluster, same_tree
from .servers import RelayServer
from .test_daemon import alive, escale, started_pid, wait_until, watching

BIG_MIB = 150


@pytest.fixture
def start() -> Iterator[Callable[[Client], int]]:
    """``start(client)`` runs ``escale start``; every daemon still running is killed at the
    end (some tests leave one killed, whose ``stop`` would say it is not running)."""
    pids: list[int] = []

    def run(client: Client) -> int:
        pid = started_pid(escale(client, "start"))
        pids.append(pid)
        return pid

    yield run
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def big_file_into(client: Client, scratch: Path) -> str:
    """Write 150 MB of random bytes outside the folder, move them in at once (a user's file
    appears whole); return their SHA-256."""
    outside = scratch / f"big-{client.name}.bin"
    with open(outside, "wb") as out:
        for _ in range(BIG_MIB):
            out.write(os.urandom(MIB))
    digest = sha256(outside)
    os.replace(outside, client.root / "big.bin")
    return digest


def moving(client: Client, phase: str) -> bool:
    """Whether the client's daemon is moving data in ``phase`` (asked on its socket: fast
    enough to catch a transfer that takes a second)."""
    answer = ask_daemon(load_config(client.config, get_plugins()), "status")
    if answer is None:
        return False
    (status,) = answer["sections"]
    transfer = status["transfer"]
    return transfer is not None and transfer["phase"] == phase and transfer["bytes"] > 0


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def complete(client: Client, digest: str) -> bool:
    path = client.root / "big.bin"
    return path.exists() and sha256(path) == digest


def converged(a: Client, b: Client, digest: str) -> None:
    wait_until(lambda: complete(b, digest), "the big file whole on bob", timeout=180)
    wait_until(
        lambda: same_tree(a.root, b.root) and not temp_files(a.root) + temp_files(b.root),
        "identical folders without temporary files",
        timeout=60,
    )


@pytest.fixture(params=["file", "sftp", "webdav"])
def pair(
    request: pytest.FixtureRequest, cluster: Cluster, tmp_path: Path, isolated_env: dict[str, str]
) -> tuple[Client, Client]:
    """Two clients on one relay of the kind the parameter names, listed every second."""
    if request.param == "file":
        return cluster.add("alice", extra="refresh = 1"), cluster.add("bob", extra="refresh = 1")
    server: RelayServer = request.getfixturevalue(f"{request.param}_server")
    shared = network_cluster(server, tmp_path / "net", isolated_env)
    return add(shared, server, "alice", "refresh = 1"), add(shared, server, "bob", "refresh = 1")


def test_two_daemons_propagate_creates_edits_deletes_and_renames_both_ways(
    pair: tuple[Client, Client], start: Callable[[Client], int]
) -> None:
    a, b = pair
    a.write("docs/one.txt", "one")
    for client in (a, b):
        start(client)
    wait_until(lambda: (b.root / "docs/one.txt").exists(), "alice's first file on bob")
    a.write("docs/two.txt", "two, from alice")
    wait_until(lambda: (b.root / "docs/two.txt").exists(), "alice's new file on bob")
    b.write("docs/one.txt", "one, edited by bob")
    wait_until(lambda: (a.root / "docs/one.txt").read_text() == "one, edited by bob", "bob's edit")
    (a.root / "docs/two.txt").rename(a.root / "docs/renamed.txt")
    (b.root / "docs/one.txt").unlink()
    b.write("from-bob/new.txt", "three")
    wait_until(
        lambda: same_tree(a.root, b.root) and not (a.root / "docs/one.txt").exists(),
        "convergence",
        timeout=60,
    )
    assert sorted(p.name for p in (a.root / "docs").iterdir()) == ["renamed.txt"]
    assert (a.root / "from-bob/new.txt").read_text() == "three"


def test_stop_during_a_150_mb_push_then_start_converges_with_nothing_corrupt(
    cluster: Cluster, start: Callable[[Client], int], tmp_path: Path
) -> None:
    a = cluster.add("alice", extra="refresh = 1")
    b = cluster.add("bob", extra="refresh = 1")
    pid = start(a)
    wait_until(lambda: watching(a), "alice's daemon to follow events")
    digest = big_file_into(a, tmp_path)
    wait_until(lambda: moving(a, "pushing"), "the push to start", timeout=60)
    os.kill(pid, signal.SIGTERM)  # what 'escale stop' sends, without its start-up time
    wait_until(lambda: not alive(pid), "the daemon to exit")
    log = (a.config.parent / "state" / "escale.log").read_text()
    assert "daemon stopped" in log and "Traceback" not in log, log
    assert "not running" in escale(a, "stop").stdout  # the pid file is released
    start(a)
    start(b)
    converged(a, b, digest)


@pytest.mark.parametrize("side", ["pushing", "pulling"])
def test_a_daemon_killed_mid_transfer_leaves_nothing_the_next_start_cannot_recover(
    side: str, cluster: Cluster, start: Callable[[Client], int], tmp_path: Path
) -> None:
    a = cluster.add("alice", extra="refresh = 1")
    b = cluster.add("bob", extra="refresh = 1")
    victim = a if side == "pushing" else b
    if side == "pulling":
        a.sync()
        b.sync()
    pid = start(victim)
    wait_until(lambda: watching(victim), "the daemon to follow events")
    digest = big_file_into(a, tmp_path)
    if side == "pulling":
        a.sync()  # alice publishes it: bob's daemon sees the relay change
    wait_until(lambda: moving(victim, side), f"the daemon to start {side}", timeout=60)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), "the daemon to die")
    pid_file = victim.config.parent / "state" / "escale.pid"
    assert pid_file.read_text().split()[0] == str(pid)  # left behind, stale
    big = b.root / "big.bin"
    assert not big.exists() or sha256(big) == digest  # never a partial file under its name
    for client in (a, b):
        start(client)
    converged(a, b, digest)
    assert escale(victim, "status").returncode == 0
