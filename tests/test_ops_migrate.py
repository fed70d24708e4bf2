"""``escale migrate``: the repository copied object by object to another relay, every copy
verified before the configuration is switched, the header last, resumable; the old relay
tells its clients where the repository went. Real ``escale`` processes, a real SFTP server."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from escale_relay_fsspec.relay import FsspecRelay

from escale_core.address import parse_relay_url
from escale_core.config import load_config
from escale_core.config.editing import update_section
from escale_core.errors import IntegrityError, RelayUnavailableError
from escale_core.ops.migrate import migrate
from escale_core.plugins import Plugins

from .clients import Client, Cluster, add, same_tree, toml_value, tree
from .servers import RelayServer, free_port

COMMENTED = "# where the photos go\n"


def run(client: Client, *args: str) -> subprocess.CompletedProcess[str]:
    """``escale -c CONFIG ARGS`` of ``client``, to completion."""
    return subprocess.run(
        client.command(*args),
        capture_output=True,
        text=True,
        env=client.env,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def relay_files(folder: Path) -> dict[str, bytes]:
    """The objects of a local relay folder (locks left out, and the hidden temporary objects
    of a write killed half-way: no listing shows them, the relay removes them after an hour)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
        and not p.relative_to(folder).as_posix().startswith("locks/")
        and not p.name.startswith(".tmp-")
    }


def join(new: Client, old: Client) -> None:
    """A new client joins: it asks for a full update, which ``old`` sends in its next round
    (updates already collected are only in the others' indexes). A client that has not
    followed the move yet sends its own full update only once it has: the new client gets
    every file meanwhile, but is not "in sync" (exit 1) until then."""
    new.sync(check=False)
    old.sync()
    new.sync(check=False)
    assert same_tree(new.root, old.root)


def option_args(server: RelayServer) -> list[str]:
    """``--option KEY=VALUE`` for each relay option of ``server``."""
    args = []
    for key, value in server.relay_options.items():
        args += ["--option", f"{key}={toml_value(value)}"]
    return args


def commented(client: Client) -> None:
    """Put comments in the client's configuration file (a migration must keep them)."""
    text = client.config.read_text()
    client.config.write_text(COMMENTED + text.replace("[shared]", "[shared]  # mine"))


@pytest.mark.parametrize("direction", ["file-to-sftp", "sftp-to-file", "file-to-webdav"])
def test_migrate_moves_the_repository_new_and_migrating_clients_follow_old_ones_are_told(
    direction: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    isolated_env: dict[str, str],
) -> None:
    backend = "webdav" if "webdav" in direction else "sftp"
    server: RelayServer = request.getfixturevalue(f"{backend}_server")
    local_url = f"file://{tmp_path / 'local-relay'}"
    remote_url = server.url(f"repo-{uuid.uuid4().hex[:8]}")
    source, dest = (
        (local_url, remote_url) if direction.startswith("file") else (remote_url, local_url)
    )
    old = Cluster(tmp_path / "old", source, isolated_env)
    if source == remote_url:
        alice, bob = add(old, server, "alice"), add(old, server, "bob")
    else:
        # the destination's credentials settings (a password...) are the section's
        alice, bob = (old.add(name, extra=server.config) for name in ("alice", "bob"))
    commented(alice)
    alice.write("docs/a.txt", "from alice")
    bob.write("b.bin", b"\x00\x01" * 50_000)
    for client in (alice, bob, alice):
        client.sync()

    options = option_args(server) if dest == remote_url else []
    moved = run(alice, "migrate", "shared", dest, *options)
    assert moved.returncode == 0, moved.stderr
    assert "every copy verified" in moved.stdout
    text = alice.config.read_text()
    assert text.startswith(COMMENTED) and "[shared]  # mine" in text
    assert f'relay = "{dest}"' in text
    assert ("relay_options" in text) == bool(dest == remote_url and server.relay_options)

    # a new client of the destination gets every file
    carol = (
        add(Cluster(tmp_path / "new", dest, isolated_env), server, "carol")
        if dest == remote_url
        else Cluster(tmp_path / "new", dest, isolated_env).add("carol")
    )
    join(carol, alice)
    # the migrating client keeps syncing, with the destination (the header it kept)
    alice.write("after.txt", "after the move")
    alice.sync()
    carol.sync(check=False)
    assert (carol.root / "after.txt").read_text() == "after the move"

    # an old client of the source is told where it went, and writes nothing
    bob.write("bob-new.txt", "not sent")
    before = tree(bob.root)
    refused = bob.sync(check=False)
    shown = parse_relay_url(dest).display()
    assert refused.returncode == 1
    line = refused.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"escale: error: \[shared\] relay {re.escape(parse_relay_url(source).display())}: this "
        rf"repository moved to {re.escape(shown)} on \d{{4}}-\d\d-\d\d \d\d:\d\d UTC \(escale "
        rf'migrate\): set relay = "{re.escape(shown)}" in {re.escape(str(bob.config))}',
        line,
    ), line
    assert tree(bob.root) == before

    # once it follows the move, every client converges
    options = server.relay_options if dest == remote_url else None
    update_section(bob.config, "shared", {"relay": dest, "relay_options": options})
    for client in (bob, alice, carol, bob, alice):
        client.sync(check=False)  # each waits for the others' full updates at first
    for client in (carol, bob, alice):
        client.sync()
    assert same_tree(alice.root, bob.root) and same_tree(alice.root, carol.root)
    assert (carol.root / "bob-new.txt").read_text() == "not sent"


class _FailingRelay(FsspecRelay):
    """A local destination that fails after ``fail_after`` objects (a lost connection), or
    stores every data object with one byte changed (a faulty storage)."""

    fail_after = 10**9
    corrupt = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.written = 0

    def write_stream(self, name: str, chunks: Iterable[bytes]) -> None:
        if name.startswith("locks/"):
            return super().write_stream(name, chunks)
        if self.written >= self.fail_after:
            raise RelayUnavailableError(f"writing {name}: connection lost")
        self.written += 1
        if self.corrupt and name.startswith("data/"):
            data = bytearray(b"".join(chunks))
            data[-1] ^= 1
            chunks = [bytes(data)]
        return super().write_stream(name, chunks)


def _migrate_in_process(client: Client, plugins: Plugins, dest: Path, **faults: Any) -> None:
    relay = _FailingRelay(parse_relay_url(f"file://{dest}"))
    for key, value in faults.items():
        setattr(relay, key, value)
    config = load_config(client.config, plugins)
    migrate(config, "shared", plugins, f"file://{dest}", dest_relay=relay)


def _cluster_with_updates(cluster: Cluster) -> Client:
    alice = cluster.add("alice")
    for i in range(6):
        alice.write(f"f{i}.txt", f"file {i} " * 1000)
        alice.sync()
    return alice


def test_an_interrupted_migration_run_again_skips_verified_copies_redoes_damaged_ones(
    cluster: Cluster, tmp_path: Path, plugins: Plugins
) -> None:
    alice = _cluster_with_updates(cluster)
    config_before = alice.config.read_text()
    dest = tmp_path / "dest"
    with pytest.raises(RelayUnavailableError):
        _migrate_in_process(alice, plugins, dest, fail_after=5)
    partial = relay_files(dest)
    assert len(partial) == 5 and "escale.json" not in partial  # the header comes last
    assert alice.config.read_text() == config_before
    assert not (tmp_path / "relay" / "moved").exists()
    damaged = sorted(partial)[0]
    blob = bytearray((dest / damaged).read_bytes())
    blob[-1] ^= 1
    (dest / damaged).write_bytes(bytes(blob))

    again = run(alice, "migrate", "shared", f"file://{dest}")
    assert again.returncode == 0, again.stderr
    assert "4 already there" in again.stdout and "1 that differed copied again" in again.stdout
    source = relay_files(tmp_path / "relay")
    assert source.pop("moved")
    assert relay_files(dest) == source
    alice.write("after.txt", "after the move")
    carol = Cluster(tmp_path / "new", f"file://{dest}", cluster.env).add("carol")
    join(carol, alice)


def test_a_copy_that_reads_back_different_is_detected_and_nothing_is_switched(
    cluster: Cluster, tmp_path: Path, plugins: Plugins
) -> None:
    alice = _cluster_with_updates(cluster)
    config_before = alice.config.read_text()
    with pytest.raises(IntegrityError, match=r"relay object data/.*differs from the source"):
        _migrate_in_process(alice, plugins, tmp_path / "dest", corrupt=True)
    assert alice.config.read_text() == config_before
    assert not (tmp_path / "dest" / "escale.json").exists()
    assert not (tmp_path / "relay" / "moved").exists()
    alice.sync()  # the source is untouched


def test_migrate_refuses_a_destination_holding_other_files_or_another_repository(
    cluster: Cluster, tmp_path: Path
) -> None:
    alice = _cluster_with_updates(cluster)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    refused = run(alice, "migrate", "shared", f"file://{other}")
    assert refused.returncode == 1
    assert "holds other files (e.g. 'notes.txt')" in refused.stderr
    elsewhere = Cluster(tmp_path / "elsewhere", f"file://{tmp_path / 'second'}", cluster.env)
    elsewhere.add("dave").sync()
    refused = run(alice, "migrate", "shared", f"file://{tmp_path / 'second'}")
    assert refused.returncode == 1
    assert "holds another repository" in refused.stderr
    assert f'relay = "file://{tmp_path / "relay"}"' in alice.config.read_text()
    same = run(alice, "migrate", "shared", f"file://{tmp_path / 'relay'}")
    assert same.returncode == 2 and "already the section's relay" in same.stderr


def test_inter_relay_copy_of_the_seed_api_copies_verified_and_skips_equal_objects(
    cluster: Cluster, tmp_path: Path
) -> None:
    from escale_core.manager import Backup, inter_relay_copy

    _cluster_with_updates(cluster)
    source, dest = Backup(tmp_path / "relay"), Backup(tmp_path / "copy")
    try:
        assert inter_relay_copy(source, dest) == []
        assert relay_files(tmp_path / "copy") == relay_files(tmp_path / "relay")
        (tmp_path / "copy" / "escale.json").write_text("{}")
        assert inter_relay_copy(source, dest, files=["escale.json", "missing/x"]) == []
        assert relay_files(tmp_path / "copy") == relay_files(tmp_path / "relay")
    finally:
        source.close()
        dest.close()


def test_a_tampered_moved_note_is_refused_naming_it(cluster: Cluster, tmp_path: Path) -> None:
    alice = _cluster_with_updates(cluster)
    (tmp_path / "relay" / "moved").write_bytes(b"ESC\x01\x05" + bytes(16) + b"forged")
    refused = alice.sync(check=False)
    assert refused.returncode == 1
    assert "relay object moved: aes-256-gcm: authentication failed" in refused.stderr


def test_a_killed_migration_is_run_again_at_once_and_completes(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Killed mid-copy (SIGKILL), the migration leaves its maintenance locks behind; its own
    client takes them back at once (it keeps their token), skips what was copied and verified,
    and completes."""
    import signal
    import time

    alice = cluster.add("alice")
    big = alice.root / "big.bin"
    with open(big, "wb") as out:
        for _ in range(200):
            out.write(os.urandom(1 << 20))
    alice.sync()
    dest = tmp_path / "dest"
    proc = subprocess.Popen(
        alice.command("migrate", "shared", f"file://{dest}"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=alice.env,
    )
    deadline = time.monotonic() + 120
    while len(list(dest.rglob("0*"))) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert (tmp_path / "relay" / "locks" / "maintenance").exists()
    assert not (dest / "escale.json").exists()

    started = time.monotonic()
    again = run(alice, "migrate", "shared", f"file://{dest}")
    assert again.returncode == 0, again.stderr
    assert time.monotonic() - started < 25  # not held up by its own stale lock
    assert "already there" in again.stdout
    source = relay_files(tmp_path / "relay")
    source.pop("moved")
    assert relay_files(dest) == source
    assert not (tmp_path / "relay" / "locks").exists() or not any(
        (tmp_path / "relay" / "locks").iterdir()
    )


@pytest.mark.parametrize(
    "note",
    [
        {"format": "escale-moved", "version": 1, "to": "x\nforged line", "time": 1.0},
        {"format": "escale-moved", "version": 1, "to": "file:///x", "time": 1e300},
        {"format": "escale-moved", "version": 1, "to": "file:///x", "time": True},
        {"format": "other", "to": "file:///x", "time": 1.0},
    ],
)
def test_a_malformed_moved_note_sealed_with_the_key_is_refused_naming_it(
    note: dict[str, Any], cluster: Cluster, plugins: Plugins
) -> None:
    import json

    from escale_core.crypto import KIND_MOVED
    from escale_core.session import open_section_relay, open_section_repository

    alice = _cluster_with_updates(cluster)
    section = load_config(alice.config, plugins).section("shared")
    relay = open_section_relay(section, plugins)
    try:
        repo = open_section_repository(section, relay, plugins)
        sealed = repo.sealer.seal(KIND_MOVED, repo.context("moved"), [json.dumps(note).encode()])
        relay.write_stream("moved", sealed)
    finally:
        relay.close()
    refused = alice.sync(check=False)
    assert refused.returncode == 1
    assert "relay object moved: malformed" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_migrate_errors_never_show_the_password_given_in_dest_url(
    cluster: Cluster, tmp_path: Path
) -> None:
    alice = cluster.add("alice")
    alice.sync()
    closed = free_port()  # nothing listens there: the relay cannot be reached
    for url, problem in [
        ("sftp://me:s3cret-pw@host:99999999/x", "invalid host or port"),
        ("nosuch://me:s3cret-pw@host/x", "no installed relay serves"),
        (f"sftp://me:s3cret-pw@127.0.0.1:{closed}/x", "127.0.0.1"),
    ]:
        refused = run(alice, "migrate", "shared", url)
        assert refused.returncode != 0 and problem in refused.stderr, refused.stderr
        assert "s3cret-pw" not in refused.stderr + refused.stdout
        assert "me:***@" in refused.stderr or "me@" in refused.stderr, refused.stderr
