"""Where the world is messy: names the file system gives that a relay path cannot hold or that
a conflict copy would make too long, a synced folder that is missing or replaced, a relay
whose header is lost or replaced. Never a crash, never a poisoned update, never a deletion
taken from a missing folder, never a new repository in place of a lost one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .clients import Cluster, tree

T0 = 1_600_000_000_000_000_000


def test_a_name_that_is_not_utf8_is_reported_and_skipped_and_the_rest_syncs(
    cluster: Cluster,
) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    a.write("good.txt", "fine")
    bad = os.fsencode(a.root) + b"/bad\xff\xfe.txt"
    with open(bad, "wb") as out:
        out.write(b"not utf-8 named")
    first = a.sync(check=False)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "Traceback" not in first.stderr and "internal error" not in first.stderr
    lines = [line for line in first.stderr.splitlines() if "bad" in line]
    assert len(lines) == 1 and "bad\\xff\\xfe.txt" in lines[0] and "UTF-8" in lines[0], lines
    b.sync()
    assert tree(b.root) == {"good.txt": (b"fine", (a.root / "good.txt").stat().st_mtime_ns)}
    again = a.sync(check=False)
    assert "pushed 0" in again.stdout, again.stdout  # nothing is sent again, round after round
    assert os.path.exists(bad)  # never touched


def test_a_conflict_on_a_long_name_keeps_both_versions_under_names_that_fit(
    cluster: Cluster,
) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    name = "é" * 110 + "-report.txt"  # 231 bytes: legal, but the conflict suffix overflows
    assert len(name.encode()) == 231
    a.write(name, "alice's version", mtime=T0 / 1e9)
    b.write(name, "bob's version", mtime=T0 / 1e9 + 60)
    for client in (a, b, a, b):
        client.sync()
    final = tree(a.root)
    assert final == tree(b.root)
    assert final[name][0] == b"bob's version"  # the later edit keeps the name
    copies = [path for path in final if ".sync-conflict-" in path]
    assert len(copies) == 1 and final[copies[0]][0] == b"alice's version"
    assert len(copies[0].encode()) <= 255 and copies[0].endswith("-alice.txt")


def test_a_missing_folder_is_never_recreated_and_its_files_never_deleted_elsewhere(
    cluster: Cluster,
) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    for i in range(3):
        a.write(f"photos/{i}.jpg", f"photo {i}")
    a.sync()
    b.sync()
    moved = a.root.with_name("moved away")
    a.root.rename(moved)  # moved, or a disk that is not mounted
    run = a.sync(check=False)
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and str(a.root) in errors[0] and "missing" in errors[0], errors
    assert not a.root.exists(), "never re-created"
    b.sync()
    assert sorted(tree(b.root)) == ["photos/0.jpg", "photos/1.jpg", "photos/2.jpg"]
    moved.rename(a.root)
    a.sync()
    assert sorted(tree(a.root)) == sorted(tree(b.root))


def test_an_empty_folder_in_place_of_the_synced_one_is_refused(cluster: Cluster) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    a.write("doc.txt", "kept")
    a.sync()
    b.sync()
    real = a.root.with_name("real")
    a.root.rename(real)
    a.root.mkdir()  # an empty mount point where the disk should be
    run = a.sync(check=False)
    assert run.returncode == 1
    assert ".escale/folder" in run.stderr and str(a.root) in run.stderr, run.stderr
    b.sync()
    assert tree(b.root)["doc.txt"][0] == b"kept"


def relay_folder(cluster: Cluster) -> Path:
    return Path(cluster.relay.removeprefix("file://"))


def test_a_lost_header_is_refused_and_never_replaced_by_a_new_repository(
    cluster: Cluster,
) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    a.write("doc.txt", "v1")
    a.sync()
    b.sync()
    header = relay_folder(cluster) / "escale.json"
    saved = header.read_bytes()
    header.unlink()
    run = a.sync(check=False)
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "escale.json" in errors[0] and "missing" in errors[0], errors
    assert not header.exists(), "no new repository (a new key) was created"
    header.write_bytes(saved)  # put back: syncing goes on
    a.write("doc.txt", "v2")
    a.sync()
    b.sync()
    assert (b.root / "doc.txt").read_text() == "v2"


def test_an_unmounted_relay_folder_is_never_created_again(cluster: Cluster) -> None:
    a = cluster.add("alice")
    a.write("doc.txt", "on the usb disk")
    a.sync()
    relay = relay_folder(cluster)
    relay.rename(relay.with_name("unmounted"))
    run = a.sync(check=False)
    assert run.returncode == 1 and "escale.json" in run.stderr, run.stderr
    assert not relay.exists(), "the relay folder was created on the wrong disk"


def test_another_repository_in_the_relay_folder_is_refused(cluster: Cluster) -> None:
    a = cluster.add("alice")
    a.write("doc.txt", "mine")
    a.sync()
    relay = relay_folder(cluster)
    shutil.rmtree(relay)
    other = cluster.add("other")
    other.write("theirs.txt", "another repository")
    other.sync()  # creates a new repository in the same folder
    run = a.sync(check=False)
    assert run.returncode == 1 and "not the header this client joined" in run.stderr, run.stderr
    assert not (a.root / "theirs.txt").exists()


def listing(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name → content)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


FOREIGN = {
    "another program": ({"notes.txt": b"mine", "photos/cat.jpg": b"jpeg"}, "holds files but no"),
    "original Escale": (
        {"index.manifest": b"...", "a1b2.placeholder": b"", "0001.lock": b""},
        "'escale import', not built yet",
    ),
    "escale objects without header": (
        {"updates/" + "a" * 32 + "/0000000001": b"sealed", "clients/" + "a" * 32: b"sealed"},
        "'escale fix'",
    ),
}


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_a_relay_folder_holding_anything_else_is_refused_never_written_into(
    cluster: Cluster, kind: str
) -> None:
    """DESIGN §2.12: a brand-new client never creates a repository in a folder that holds
    other files; it says what the folder holds and what to do, in one line."""
    files, hint = FOREIGN[kind]
    relay = relay_folder(cluster)
    for name, content in files.items():
        (relay / name).parent.mkdir(parents=True, exist_ok=True)
        (relay / name).write_bytes(content)
    a = cluster.add("alice")
    a.write("doc.txt", "mine")
    run = a.sync(check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, errors
    assert str(relay) in errors[0] and "escale.json" in errors[0], errors[0]
    assert "refusing to create a repository there" in errors[0] and hint in errors[0], errors[0]
    assert listing(relay) == files, "nothing was written into the relay folder"
    assert tree(a.root) == {"doc.txt": (b"mine", (a.root / "doc.txt").stat().st_mtime_ns)}


def test_an_empty_relay_folder_gets_a_new_repository(cluster: Cluster) -> None:
    relay = relay_folder(cluster)
    relay.mkdir()
    a, b = cluster.add("alice"), cluster.add("bob")
    a.write("doc.txt", "first")
    a.sync()
    b.sync()
    assert (relay / "escale.json").is_file()
    assert (b.root / "doc.txt").read_text() == "first"
