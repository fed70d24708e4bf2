"""``escale backup`` / ``escale restore``: the relay objects (still sealed) in a tar archive,
streamed with bounded memory; a restore checks the whole archive before writing anything and
writes the header last. Real ``escale`` processes, a real WebDAV server."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from .clients import MIB, Client, Cluster, add, same_tree, tree
from .servers import RelayServer


def run(client: Client, *args: str) -> subprocess.CompletedProcess[str]:
    """``escale -c CONFIG ARGS`` of ``client``, to completion."""
    return subprocess.run(
        client.command(*args),
        capture_output=True,
        text=True,
        env=client.env,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )


def converge(clients: list[Client], rounds: int = 4) -> None:
    """Rounds until every client is in sync (exit 0) with the same tree."""
    for _ in range(rounds):
        results = [c.sync(check=False) for c in clients]
        if all(r.returncode == 0 for r in results) and all(
            same_tree(clients[0].root, c.root) for c in clients[1:]
        ):
            return
    raise AssertionError(
        {c.name: (r.stdout, r.stderr, sorted(tree(c.root))) for c, r in zip(clients, results)}
    )


@pytest.fixture(params=["file", "webdav"])
def clients(
    request: pytest.FixtureRequest, tmp_path: Path, isolated_env: dict[str, str]
) -> tuple[list[Client], Path | None]:
    """Three clients of one repository, and its local relay folder (``None`` over WebDAV)."""
    if request.param == "file":
        cluster = Cluster(tmp_path / "clients", f"file://{tmp_path / 'relay'}", isolated_env)
        return [cluster.add(n, extra="pullers = 2") for n in ("alice", "bob", "carol")], (
            tmp_path / "relay"
        )
    server: RelayServer = request.getfixturevalue("webdav_server")
    cluster = Cluster(
        tmp_path / "clients", server.url(f"repo-{uuid.uuid4().hex[:8]}"), isolated_env
    )
    return [add(cluster, server, n, "pullers = 2") for n in ("alice", "bob", "carol")], None


def wipe(client: Client, folder: Path | None) -> None:
    """Lose the relay folder: every object deleted."""
    if folder is not None:
        shutil.rmtree(folder)
        return
    from escale_core.config import load_config
    from escale_core.plugins import get_plugins
    from escale_core.session import open_section_relay

    relay = open_section_relay(
        load_config(client.config, get_plugins()).section("shared"), get_plugins()
    )
    try:
        for name in relay.list(""):
            relay.delete(name)
        assert relay.list("") == []
    finally:
        relay.close()


def test_backup_wipe_restore_then_every_client_converges_even_after_later_writes(
    clients: tuple[list[Client], Path | None], tmp_path: Path
) -> None:
    (alice, bob, carol), folder = clients
    alice.write("docs/a.txt", "from alice")
    bob.write("b.bin", os.urandom(200_000))
    converge([alice, bob, carol])
    archive = tmp_path / "backup.tar"
    saved = run(alice, "backup", "shared", str(archive))
    assert saved.returncode == 0, saved.stderr
    # written after the backup: the restored relay has lost these updates
    carol.write("later.txt", "after the backup")
    alice.write("docs/a.txt", "edited after the backup")
    converge([alice, bob, carol])
    # ... and this one was never pulled by anyone before the relay was lost
    carol.write("unseen.txt", "pushed, then lost with the relay")
    carol.sync(check=False)
    wipe(alice, folder)

    restored = run(bob, "restore", "shared", str(archive))
    assert restored.returncode == 0, restored.stderr
    converge([alice, bob, carol])
    assert (bob.root / "later.txt").read_text() == "after the backup"
    assert (carol.root / "docs/a.txt").read_text() == "edited after the backup"
    assert (alice.root / "unseen.txt").read_text() == "pushed, then lost with the relay"
    bob.write("new.txt", "after the restore")
    converge([alice, bob, carol])
    assert (alice.root / "new.txt").read_text() == "after the restore"


def test_restore_refuses_a_non_empty_repository_without_force(
    cluster: Cluster, tmp_path: Path
) -> None:
    alice = cluster.add("alice")
    alice.write("a.txt", "a")
    alice.sync()
    archive = tmp_path / "backup.tar"
    assert run(alice, "backup", "shared", str(archive)).returncode == 0
    alice.write("b.txt", "b")
    alice.sync()
    before = relay_objects(tmp_path / "relay")
    refused = run(alice, "restore", "shared", str(archive))
    assert refused.returncode == 2
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .endswith(
            f"the relay folder is not empty ({len(before)} objects): a restore replaces them; "
            f"run 'escale restore shared {archive} --force'"
        )
    )
    assert relay_objects(tmp_path / "relay") == before
    forced = run(alice, "restore", "shared", str(archive), "--force")
    assert forced.returncode == 0, forced.stderr
    with tarfile.open(archive) as tar:
        assert sorted(relay_objects(tmp_path / "relay")) == sorted(tar.getnames())


def relay_objects(folder: Path) -> dict[str, bytes]:
    """The objects of a local relay folder (locks left out)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.relative_to(folder).as_posix().startswith("locks/")
    }


def test_backup_leaves_out_locks_temporary_and_unknown_objects(
    cluster: Cluster, tmp_path: Path
) -> None:
    alice = cluster.add("alice")
    alice.write("a.txt", "a")
    alice.sync()
    relay = tmp_path / "relay"
    (relay / "locks").mkdir(exist_ok=True)
    (relay / "locks" / "gc").write_text("{}")
    (relay / "updates" / ".tmp-0123").write_text("half")
    (relay / "notes.txt").write_text("not ours")
    archive = tmp_path / "backup.tar"
    assert run(alice, "backup", "shared", str(archive)).returncode == 0
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[0] == "escale.json"
    assert not [n for n in names if n.startswith("locks/") or ".tmp-" in n or n == "notes.txt"]
    assert {n.split("/")[0] for n in names} == {"escale.json", "data", "updates", "clients"}


def _tampered(archive: Path, how: str) -> Path:
    """A copy of ``archive`` with one bad member at the end (after good objects)."""
    out = archive.with_name(f"{how}.tar")
    with tarfile.open(archive) as source, tarfile.open(out, "w") as tar:
        for member in source.getmembers():
            tar.addfile(member, source.extractfile(member))
        info = tarfile.TarInfo({"dotdot": "../x", "unknown": "data/evil", "symlink": "moved"}[how])
        if how == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    return out


@pytest.mark.parametrize("how", ["dotdot", "symlink", "unknown"])
def test_a_tampered_archive_is_refused_before_anything_is_written(
    how: str, cluster: Cluster, tmp_path: Path
) -> None:
    alice = cluster.add("alice")
    alice.write("a.txt", "a")
    alice.sync()
    archive = tmp_path / "backup.tar"
    assert run(alice, "backup", "shared", str(archive)).returncode == 0
    shutil.rmtree(tmp_path / "relay")
    refused = run(alice, "restore", "shared", str(_tampered(archive, how)))
    assert refused.returncode == 1
    line = refused.stderr.strip().splitlines()[-1]
    assert "refused" in line and f"{how}.tar" in line, line
    assert not (tmp_path / "relay").exists() or relay_objects(tmp_path / "relay") == {}
    assert not (tmp_path / "x").exists()


def _vmhwm(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss(client: Client, *args: str) -> int:
    """Run ``escale ARGS``; the peak RSS of that process, read while it runs (ru_maxrss of a
    child would include what the test process had before the fork)."""
    peak = 0
    proc = subprocess.Popen(
        client.command(*args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=client.env,
    )
    while proc.poll() is None:
        with contextlib.suppress(OSError, ValueError):
            peak = max(peak, _vmhwm(proc.pid))
        time.sleep(0.005)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    return peak


def test_a_200_mib_object_goes_through_backup_restore_and_migrate_in_bounded_memory(
    cluster: Cluster, tmp_path: Path
) -> None:
    alice = cluster.add("alice")
    alice.write("a.txt", "a")
    alice.sync()
    archive = tmp_path / "small.tar"
    baseline = peak_rss(alice, "backup", "shared", str(archive))
    relay = tmp_path / "relay"
    cid = next((relay / "clients").iterdir()).name
    big = relay / "data" / cid / "0000000099" / "000000"  # sealed bytes are opaque to a backup
    big.parent.mkdir(parents=True)
    with open(big, "wb") as out:
        for _ in range(200):
            out.write(os.urandom(MIB))
    archive = tmp_path / "big.tar"
    peaks = {"backup": peak_rss(alice, "backup", "shared", str(archive))}
    assert archive.stat().st_size > 200 * MIB
    shutil.rmtree(relay)
    peaks["restore"] = peak_rss(alice, "restore", "shared", str(archive))
    assert big.stat().st_size == 200 * MIB
    peaks["migrate"] = peak_rss(alice, "migrate", "shared", f"file://{tmp_path / 'moved'}")
    assert (tmp_path / "moved" / big.relative_to(relay)).stat().st_size == 200 * MIB
    for what, peak in peaks.items():
        assert peak - baseline < 48 * MIB, (what, peak >> 20, baseline >> 20)


def test_a_member_streamed_in_odd_sized_chunks_is_archived_whole() -> None:
    """tarfile takes a short read for the end of the data: the reader fills every read across
    the relay's chunk boundaries."""
    from escale_core.ops.backup import _ChunkReader

    data = os.urandom(300_001)
    cuts = [0, 7, 16_384, 16_390, 100_000, 250_000, 300_001]
    chunks = iter([data[a:b] for a, b in zip(cuts[1:], cuts[2:])])
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w|") as tar:
        info = tarfile.TarInfo("data/x")
        info.size = len(data)
        tar.addfile(info, _ChunkReader(chunks, data[: cuts[1]]))  # type: ignore[arg-type]
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        member = tar.extractfile("data/x")
        assert member is not None and member.read() == data


def test_backup_to_stdout_and_the_seed_api_round_trip(cluster: Cluster, tmp_path: Path) -> None:
    from escale_core.manager import Backup, backup_relay_repository, restore_relay_repository

    alice = cluster.add("alice")
    alice.write("a.txt", "a")
    alice.sync()
    piped = subprocess.run(
        alice.command("backup", "shared", "-"), capture_output=True, env=alice.env, timeout=120
    )
    assert piped.returncode == 0, piped.stderr
    assert b"objects" in piped.stderr  # the summary: the archive is stdout
    (tmp_path / "piped.tar").write_bytes(piped.stdout)
    relay = tmp_path / "relay"
    before = relay_objects(relay)
    with tarfile.open(tmp_path / "piped.tar") as tar:
        assert sorted(tar.getnames()) == sorted(before)
    source, copy = Backup(relay), Backup(tmp_path / "copy")
    try:
        backup_relay_repository(source, tmp_path / "api.tar")
        restore_relay_repository(copy, tmp_path / "api.tar")
    finally:
        source.close()
        copy.close()
    assert relay_objects(tmp_path / "copy") == before


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("escale.json", "header"),
        ("moved", "moved"),
        ("clients/" + "a" * 32, "client"),
        ("retired/" + "b" * 32, "retired"),
        ("updates/" + "c" * 32 + "/0000000001", "manifest"),
        ("data/" + "d" * 32 + "/0000000001/000000", "data"),
        ("../escale.json", None),
        ("/escale.json", None),
        ("data/" + "d" * 32 + "/0000000001/000000/x", None),
        ("clients/" + "A" * 32, None),
        ("locks/maintenance", None),
        ("updates/.tmp-0123", None),
    ],
)
def test_only_the_object_names_of_the_format_are_moved(name: str, kind: str | None) -> None:
    from escale_core.ops.objects import in_write_order, kind_of

    assert kind_of(name) == kind
    assert in_write_order([name, "escale.json"])[-1] == "escale.json"


def test_a_restore_after_a_passphrase_change_keeps_the_passphrase_in_force(
    cluster: Cluster, tmp_path: Path
) -> None:
    alice, bob = cluster.add("alice"), cluster.add("bob")
    alice.write("a.txt", "saved in the backup")
    converge([alice, bob])
    archive = tmp_path / "backup.tar"
    assert run(alice, "backup", "shared", str(archive)).returncode == 0
    # the passphrase changes after the backup; both clients get the new one
    assert run(alice, "key", "passwd", "shared", "--generate").returncode == 0
    alice_key = tmp_path / "clients" / "alice" / "key"
    (tmp_path / "clients" / "bob" / "key").write_text(alice_key.read_text())
    converge([alice, bob])
    wipe(alice, tmp_path / "relay")
    restored = run(alice, "restore", "shared", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert "the passphrase in force" in restored.stdout, restored.stdout
    converge([alice, bob])  # the new passphrase opens the restored repository
    bob.write("b.txt", "after the restore")
    converge([alice, bob])
    assert (alice.root / "b.txt").read_text() == "after the restore"


def test_a_restore_of_another_repositorys_archive_is_refused_before_anything_changes(
    tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    photos = Cluster(tmp_path / "photos", f"file://{tmp_path / 'photos-relay'}", isolated_env)
    docs = Cluster(tmp_path / "docs", f"file://{tmp_path / 'docs-relay'}", isolated_env)
    alice, dora = photos.add("alice"), docs.add("dora")
    alice.write("cat.jpg", "photo")
    dora.write("notes.txt", "document")
    alice.sync()
    dora.sync()
    archive = tmp_path / "docs.tar"
    assert run(dora, "backup", "shared", str(archive)).returncode == 0
    before = relay_objects(tmp_path / "photos-relay")
    refused = run(alice, "restore", "shared", str(archive), "--force")
    assert refused.returncode == 2, refused.stderr
    assert "holds repository" in refused.stderr and "nothing was changed" in refused.stderr
    assert relay_objects(tmp_path / "photos-relay") == before


def test_a_backup_archive_that_cannot_be_written_is_one_line_naming_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    alice = cluster.add("alice")
    alice.write("a.txt", "a")
    alice.sync()
    (tmp_path / "afile").write_text("a file, not a folder")
    archive = tmp_path / "afile" / "backup.tar"  # its parent is a file: an OSError as root
    run_ = run(alice, "backup", alice.section, str(archive))
    assert run_.returncode == 1
    assert run_.stderr.strip().splitlines() == [
        f"escale: error: cannot write {archive}: Not a directory"
    ]


def test_backup_refuses_to_overwrite_an_existing_archive_unless_forced(
    cluster: Cluster, tmp_path: Path
) -> None:
    alice = cluster.add("alice")
    alice.write("a.txt", "a")
    alice.sync()
    archive = tmp_path / "backup.tar"
    archive.write_bytes(b"an older backup, or any file of mine")
    refused = run(alice, "backup", alice.section, str(archive))
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"escale: error: archive {archive} exists: not overwritten (add --force to replace it)"
    ]
    assert archive.read_bytes() == b"an older backup, or any file of mine"
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
    forced = run(alice, "backup", alice.section, str(archive), "--force")
    assert forced.returncode == 0, forced.stderr
    with tarfile.open(archive) as tar:
        assert tar.getnames()[0] == "escale.json"
