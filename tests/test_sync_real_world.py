"""Where the world is messy: names the file system gives that a relay path cannot hold or that
a conflict copy would make too long, a synced folder that is missing or replaced, a relay
whose header is lost or replaced. Never a crash, never a poisoned update, never a deletion
taken from a missing folder, never a new repository in place of a lost one."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import pytest

from escale_core.cli.output import changed_while_read_message, summary
from escale_core.config import load_config
from escale_core.engine import RoundReport
from escale_core.plugins import get_plugins
from escale_core.session import sync_section

from .clients import Client, Cluster, tree

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


# -- .escaleignore --------------------------------------------------------------------------


def test_escaleignore_is_synced_and_ignored_paths_are_neither_sent_nor_applied(
    cluster: Cluster,
) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    a.write("notes.log", "shared log, v1")
    a.write("src/main.c", "int main;")
    a.sync()
    b.sync()
    a.write(".escaleignore", "# build output\nbuild/\n*.log\n")
    a.write("build/out.o", "alice's object")
    a.sync()
    b.write("notes.log", "bob's log, v2")  # bob still syncs it: he has not pulled the rules
    b.write("build/out.o", "bob's object")  # a synced file of bob's until the rules arrive
    b.sync()
    assert (b.root / ".escaleignore").read_text() == "# build output\nbuild/\n*.log\n"
    a.sync()
    # alice ignores *.log: bob's change is not applied, her file is left as it is
    assert (a.root / "notes.log").read_text() == "shared log, v1"
    assert (a.root / "build/out.o").read_text() == "alice's object"
    # a deleted ignored file is no deletion for the others
    (a.root / "notes.log").unlink()
    shutil.rmtree(a.root / "build")
    assert "deleted" not in a.sync().stdout
    b.sync()
    assert (b.root / "notes.log").read_text() == "bob's log, v2"
    assert (b.root / "build/out.o").read_text() == "bob's object"
    # what is not ignored still syncs both ways
    b.write("src/util.c", "int util;")
    b.sync()
    a.sync()
    assert (a.root / "src/util.c").read_text() == "int util;"
    assert not (a.root / "notes.log").exists() and not (a.root / "build").exists()


def test_an_invalid_escaleignore_line_stops_the_section_in_one_line(cluster: Cluster) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    a.write("kept.txt", "x")
    a.write(".escaleignore", "*.tmp\n!\n")
    run = a.sync(check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{a.root / '.escaleignore'} line 2: invalid pattern '!'" in lines[0]
    b.sync()
    assert tree(b.root) == {}  # nothing was synced
    (a.root / ".escaleignore").write_bytes(b"*.tmp\n\xff\xfe\n")
    run = a.sync(check=False)
    assert run.returncode == 1 and "cannot be read (not utf-8 text)" in run.stderr, run.stderr
    (a.root / ".escaleignore").write_text("*.tmp\n")
    a.sync()
    b.sync()
    assert sorted(tree(b.root)) == [".escaleignore", "kept.txt"]


# -- symlinks and unreadable files ----------------------------------------------------------


def test_symlinks_are_counted_and_named_not_skipped_in_silence(cluster: Cluster) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    a.write("real.txt", "content")
    os.symlink("real.txt", a.root / "link.txt")
    os.symlink("/etc", a.root / "etc-link")
    run = a.sync()
    assert "2 symlinks not synced" in run.stdout and "; in sync" in run.stdout, run.stdout
    verbose = subprocess.run(
        [*a.command("-v", "sync", a.section)], capture_output=True, text=True, env=a.env
    )
    assert verbose.returncode == 0, verbose.stderr
    assert "  symlink, not synced  link.txt" in verbose.stdout.splitlines()
    assert "  symlink, not synced  etc-link" in verbose.stdout.splitlines()
    status = subprocess.run(
        [*a.command("status", "--json")], capture_output=True, text=True, env=a.env
    )
    data = json.loads(status.stdout)[a.section]
    assert data["skipped_symlinks"] == 2 and data["unreadable"] == 0
    assert sorted(data["not_synced"]["symlinks"]) == ["etc-link", "link.txt"]
    human = subprocess.run([*a.command("status")], capture_output=True, text=True, env=a.env)
    assert "  last round: 2 symlinks not synced" in human.stdout.splitlines(), human.stdout
    b.sync()
    assert sorted(tree(b.root)) == ["real.txt"]


def _unprivileged(cluster_base: Path) -> list[str]:
    """The command prefix that runs escale as a user for whom chmod 000 means unreadable:
    the user ``nobody`` when the tests run as root (given ``cluster_base``), else nothing."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: chmod 000 cannot make a file unreadable")
    nobody = pwd.getpwnam("nobody")
    for path in [cluster_base, *cluster_base.rglob("*")]:
        os.chown(path, nobody.pw_uid, nobody.pw_gid, follow_symlinks=False)
    return [setpriv, f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]


def test_unreadable_files_and_folders_are_errors_and_never_taken_for_deleted(
    isolated_env: dict[str, str],
) -> None:
    base = Path(tempfile.mkdtemp(prefix="escale-perm-"))  # reachable by nobody, unlike tmp_path
    try:
        base.chmod(0o755)
        env = {**isolated_env, "HOME": str(base / "home")}
        cluster = Cluster(base / "clients", f"file://{base / 'relay'}", env)
        a, b = cluster.add("alice"), cluster.add("bob")
        a.write("good.txt", "fine")
        a.write("secret.txt", "v1")
        a.write("private/p.txt", "private")
        prefix = _unprivileged(base)

        def sync_a() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*prefix, *a.command("sync", a.section)], capture_output=True, text=True, env=env
            )

        assert sync_a().returncode == 0
        b.sync()
        a.write("secret.txt", "v2")
        (a.root / "secret.txt").chmod(0)
        (a.root / "private").chmod(0)
        run = sync_a()
        assert run.returncode == 1, run.stdout + run.stderr
        assert "Traceback" not in run.stderr
        errors = sorted(line for line in run.stderr.splitlines() if "permission denied" in line)
        assert errors == [
            "escale: error: [shared] local file secret.txt: permission denied, not synced; "
            "fix its permissions",
            "escale: error: [shared] local folder private: permission denied, not synced; "
            "fix its permissions",
        ], errors
        assert "1 unreadable file and 1 unreadable folder not synced" in run.stdout, run.stdout
        assert "deleted" not in run.stdout
        b.sync()
        assert (b.root / "private/p.txt").read_text() == "private"  # never taken for deleted
        assert (b.root / "secret.txt").read_text() == "v1"
        (a.root / "secret.txt").chmod(0o644)
        (a.root / "private").chmod(0o755)
        assert sync_a().returncode == 0
        b.sync()
        assert (b.root / "secret.txt").read_text() == "v2"
    finally:
        for path in [base, *base.rglob("*")]:
            if not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(base)


# -- files changed or deleted while the push reads them ---------------------------------------


def _round_with_hook(client: Client, hook: Callable[[], None]) -> RoundReport:
    """One round of ``client`` in this process, ``hook`` run once when the first chunk has
    been read and uploaded (the rest of the file is still to be read)."""
    plugins = get_plugins()
    config = load_config(client.config, plugins)
    calls: list[int] = []

    def progress(_: int) -> None:
        if not calls:
            hook()
        calls.append(1)

    return sync_section(config, config.section(client.section), plugins, progress=progress)


def test_a_file_rewritten_while_read_is_not_sent_until_the_next_round(cluster: Cluster) -> None:
    a, b = cluster.add("alice", extra='max_page_size = "64KiB"'), cluster.add("bob")
    a.write("small.txt", "small")
    big = a.write("big.bin", os.urandom(300_000), mtime=T0 / 1e9)
    final = os.urandom(300_000)

    def rewrite() -> None:
        big.write_bytes(final)
        os.utime(big, ns=(T0 + 10**9, T0 + 10**9))

    report = _round_with_hook(a, rewrite)
    assert report.changed_while_read == ["big.bin"] and report.pushed == ["small.txt"]
    assert not report.errors
    line = summary("shared", report)
    assert "1 file changed while read: sent next round" in line and line.endswith("; in sync")
    assert changed_while_read_message("big.bin") == (
        "local file big.bin changed while it was read; it will be sent next round"
    )
    b.sync()
    assert sorted(tree(b.root)) == ["small.txt"]  # never a half-old, half-new file
    run = a.sync()
    assert "pushed 1" in run.stdout and "changed while" not in run.stdout + run.stderr
    b.sync()
    assert (b.root / "big.bin").read_bytes() == final


def test_a_file_deleted_while_read_is_neither_sent_nor_deleted_in_that_round(
    cluster: Cluster,
) -> None:
    a, b = cluster.add("alice", extra='max_page_size = "64KiB"'), cluster.add("bob")
    big = a.write("big.bin", b"v1" * 100_000)
    a.sync()
    b.sync()
    big.write_bytes(b"v2" * 150_000)
    report = _round_with_hook(a, big.unlink)
    assert not report.pushed and not report.deleted_remote and not report.errors
    assert not report.changed_while_read and report.in_sync
    b.sync()
    assert (b.root / "big.bin").read_bytes() == b"v1" * 100_000
    a.sync()  # the next round's scan sees it gone: a deletion
    b.sync()
    assert not (b.root / "big.bin").exists()


def listing(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name → content)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


FOREIGN = {
    "another program": ({"notes.txt": b"mine", "photos/cat.jpg": b"jpeg"}, "holds files but no"),
    "original Escale": (
        {"index.manifest": b"...", "a1b2.placeholder": b"", "0001.lock": b""},
        "new, empty folder (docs/migrating.md)",
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


def test_a_folder_deeper_than_the_system_reaches_is_reported_not_skipped_in_silence(
    cluster: Cluster,
) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    fd = os.open(a.root, os.O_RDONLY)
    for _ in range(21):  # 4,221 bytes: a path the kernel only reaches folder by folder
        os.mkdir("d" * 200, dir_fd=fd)
        inner = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    with os.fdopen(os.open("deep.txt", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "w") as out:
        out.write("deep")
    os.close(fd)
    a.write("shallow.txt", "fine")
    run = a.sync(check=False)
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "path is too long" in errors[0], errors
    b.sync()
    assert sorted(tree(b.root)) == ["shallow.txt"]
