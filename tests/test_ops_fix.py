"""``escale fix``: a lost header is put back from this client's copy, lost or damaged updates
are replaced by a full update of this client's folder, leftovers and orphans go; local files
are never changed; a second run finds nothing more to repair. Each test runs over a
``file://`` relay and an SFTP server, with real ``escale`` processes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from escale_core.config import load_config
from escale_core.errors import RoundAbandoned
from escale_core.ops.fix import fix_repository
from escale_core.ops.maintenance import maintenance
from escale_core.plugins import get_plugins
from escale_core.relay import Relay
from escale_core.session import open_section_relay, open_section_repository

from .clients import (
    Backend,
    Client,
    Cluster,
    backend,
    big_file,
    converge,
    open_relay_of,
    run_escale,
    tree,
)

BACKENDS = ["file", "sftp"]


@pytest.fixture(params=BACKENDS)
def relay_backend(
    request: pytest.FixtureRequest, tmp_path: Path, isolated_env: dict[str, str]
) -> Backend:
    return backend(request.param, request, tmp_path, isolated_env)


def two_synced_clients(on: Backend) -> tuple[Client, Client]:
    a, b = on.add("a"), on.add("b")
    a.write("notes.txt", "from a\n")
    a.write("photos/big.bin", os.urandom(200_000))
    b.write("b.txt", "from b\n")
    converge([a, b])
    return a, b


def client_id(client: Client) -> str:
    """The id of ``client`` in its repository."""
    plugins = get_plugins()
    section = load_config(client.config, plugins).section(client.section)
    relay = open_section_relay(section, plugins)
    try:
        return open_section_repository(section, relay, plugins, create=False).client_id(client.name)
    finally:
        relay.close()


def fix(client: Client, *args: str) -> list[str]:
    run = run_escale(client, "fix", client.section, *args)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    return run.stdout.splitlines()


def delete_objects(client: Client, *prefixes: str) -> list[str]:
    relay = open_relay_of(client)
    try:
        gone = [name for name in relay.list("") if name.startswith(prefixes)]
        for name in gone:
            relay.delete(name)
        return gone
    finally:
        relay.close()


def test_fix_puts_back_a_lost_header_then_every_client_and_a_new_one_converge(
    relay_backend: Backend,
) -> None:
    a, b = two_synced_clients(relay_backend)
    assert delete_objects(a, "escale.json") == ["escale.json"]
    refused = b.sync(check=False)
    assert refused.returncode == 1 and "escale fix" in refused.stderr, refused.stderr
    checked = run_escale(b, "check", "shared")
    assert checked.returncode == 1
    assert "[shared] damage: relay object escale.json: missing" in checked.stdout
    before = tree(a.root)
    lines = fix(a)
    assert any("republished relay object escale.json" in line for line in lines), lines
    assert tree(a.root) == before
    b.write("after.txt", "after the fix\n")
    c = relay_backend.add("c")
    converge([a, b, c])
    assert sorted(tree(c.root)) == ["after.txt", "b.txt", "notes.txt", "photos/big.bin"]


def test_fix_after_lost_updates_lets_a_new_client_get_every_file_in_one_round(
    relay_backend: Backend,
) -> None:
    a, _ = two_synced_clients(relay_backend)
    a.write("late.txt", "pushed, then lost\n")
    a.sync()
    assert delete_objects(a, "updates", "data")
    lines = fix(a)
    assert any(line.startswith("[shared] published full update") for line in lines), lines
    c = relay_backend.add("c")
    c.sync(check=False)
    assert tree(c.root) == tree(a.root)
    assert run_escale(a, "check", "shared", "--read-data").returncode == 0


def test_fix_deletes_damaged_updates_and_a_new_client_gets_everything_again(
    relay_backend: Backend,
) -> None:
    a = relay_backend.add("a")
    a.write("one.txt", "one\n")
    a.sync()
    a.write("two.bin", os.urandom(5000))
    a.sync()
    relay = open_relay_of(a)
    try:
        first, second = relay.list("updates")
        flip(relay, first)  # a manifest: found by every check
        flip(relay, relay.list(second.replace("updates/", "data/"))[0])  # with --read-data
    finally:
        relay.close()
    assert run_escale(a, "check", "shared", "--read-data").returncode == 1
    lines = fix(a, "--read-data")
    deleted = [line for line in lines if line.startswith("[shared] deleted damaged update")]
    assert len(deleted) == 2, lines
    assert run_escale(a, "check", "shared", "--read-data").returncode == 0
    b = relay_backend.add("b")
    b.sync(check=False)
    assert tree(b.root) == tree(a.root)


def flip(relay: Relay, name: str) -> None:
    """Flip one bit in the middle of relay object ``name``."""
    data = bytearray(relay.read_bytes(name))
    data[len(data) // 2] ^= 1
    relay.write_bytes(name, bytes(data))


def test_fix_removes_leftovers_and_orphans_never_changes_a_local_file_and_runs_again(
    relay_backend: Backend,
) -> None:
    a, b = two_synced_clients(relay_backend)
    b.write("b.txt", "changed by b, not pulled by a's fix\n")
    b.write("new-from-b.txt", "new\n")
    b.sync()
    a.write("unsynced.txt", "local only so far\n")
    os.remove(a.root / "notes.txt")  # a local deletion the fix must not undo
    relay = open_relay_of(a)
    try:
        leftover = "clients/.tmp-" + "1" * 32
        relay.fs.pipe_file(relay._path(leftover), b"half")
        old = time.time() - 1200  # a writer killed 20 minutes ago (a younger one may be live)
        os.utime(on_disk(relay_backend, leftover), (old, old))
        # as a push of b going on: no manifest yet (a's own would be its round's to remove)
        pending = f"data/{client_id(b)}/9999999999/000000"
        relay.write_bytes(pending, b"a data object before its manifest")
    finally:
        relay.close()
    before = tree(a.root)
    lines = fix(a)
    assert f"[shared] deleted relay object {leftover} (temporary object" in "\n".join(lines)
    assert tree(a.root) == before
    relay = open_relay_of(a)
    try:
        assert relay.exists(pending)  # the data of an update not published yet stays
        relay.delete(pending)
    finally:
        relay.close()
    again = fix(a)
    assert not any("deleted" in line or "republished" in line for line in again), again
    assert tree(a.root) == before
    check = run_escale(a, "check", "shared")
    assert check.returncode == 0 and "0 leftover" in check.stdout, check.stdout


def test_fix_is_refused_on_a_client_that_never_synced(relay_backend: Backend) -> None:
    two_synced_clients(relay_backend)
    stranger = relay_backend.add("stranger")
    run = run_escale(stranger, "fix", "shared")
    assert run.returncode == 2
    assert "never synced with the repository there" in run.stderr, run.stderr
    assert "internal error" not in run.stderr


def test_check_and_fix_are_refused_while_the_daemon_syncs_the_section(cluster: Cluster) -> None:
    a = cluster.add("a", extra="refresh = 600\nwatch = false")
    a.write("x.txt", "x\n")
    a.sync()
    assert run_escale(a, "start").returncode == 0
    try:
        for command in ("check", "fix"):
            run = run_escale(a, command, "shared")
            assert run.returncode == 2, run.stderr
            assert "being synced by the running daemon" in run.stderr
            assert "escale pause shared" in run.stderr
        assert run_escale(a, "pause", "shared").returncode == 0
        assert run_escale(a, "check", "shared").returncode == 0
        assert run_escale(a, "fix", "shared").returncode == 0
    finally:
        run_escale(a, "stop")


def test_a_fix_stopped_mid_way_and_run_again_loses_nothing(relay_backend: Backend) -> None:
    a, _ = two_synced_clients(relay_backend)
    big_file(a, "video.bin", 3)
    a.write("small.txt", "small\n")
    a.sync()
    assert delete_objects(a, "updates", "data")
    before = tree(a.root)
    plugins = get_plugins()
    config = load_config(a.config, plugins)

    def stop(count: int) -> None:
        raise RoundAbandoned("stopped by request")

    with (
        pytest.raises(RoundAbandoned),
        maintenance(config, config.section("shared"), plugins, "fix shared") as m,
    ):
        fix_repository(m, progress=stop)
    assert tree(a.root) == before
    fix(a)
    assert tree(a.root) == before
    c = relay_backend.add("c")
    c.sync(check=False)
    assert tree(c.root) == before


def on_disk(backend: Backend, name: str) -> Path:
    """Where relay object ``name`` of ``backend``'s repository is on this machine's disk."""
    if backend.server is None:
        return Path(backend.cluster.relay[len("file://") :]) / name
    assert backend.server.files is not None
    return backend.server.files / backend.cluster.relay.rsplit("/", 1)[1] / name
