"""The sync rules, end to end with real ``escale`` processes: modes, filters, pullers and space
reclaiming, quota, conflict copies, deletions and the mass-deletion guard, wrong passphrase."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .clients import Client, Cluster, tree

T0 = 1_600_000_000.0
T1 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def relay_root(cluster: Cluster) -> Path:
    """The folder of a ``file://`` relay."""
    return Path(cluster.relay.removeprefix("file://"))


def relay_objects(cluster: Cluster, *kinds: str) -> dict[str, bytes]:
    """Relay objects under ``kinds`` (top folders; all of them by default) by name."""
    root = relay_root(cluster)
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and (not kinds or p.relative_to(root).parts[0] in kinds)
    }


def update_objects(cluster: Cluster) -> set[str]:
    """Names of the manifests and data objects on the relay."""
    return set(relay_objects(cluster, "updates", "data"))


def files(client: Client) -> dict[str, bytes]:
    """Relative path → content of the client's folder."""
    return {path: content for path, (content, _) in tree(client.root).items()}


def one_error(run: subprocess.CompletedProcess[str]) -> str:
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, run.stderr
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr
    return errors[0]


# -- modes ----------------------------------------------------------------------------------


def test_shared_mode_pushes_and_pulls_changes_both_ways(cluster: Cluster) -> None:
    alice, bob = cluster.add("alice"), cluster.add("bob")
    alice.write("a.txt", "from alice")
    bob.write("b.txt", "from bob")
    alice.sync()
    bob.sync()
    alice.sync()
    assert files(alice) == files(bob) == {"a.txt": b"from alice", "b.txt": b"from bob"}
    bob.write("a.txt", "edited by bob", mtime=T1)
    bob.sync()
    alice.sync()
    assert (alice.root / "a.txt").read_text() == "edited by bob"
    assert tree(alice.root) == tree(bob.root)


def test_upload_mode_never_writes_to_the_local_folder(cluster: Cluster) -> None:
    up = cluster.add("up", extra='mode = "upload"')
    peer = cluster.add("peer")
    up.write("both.txt", "version of up", mtime=T0)
    up.write("gone.txt", "peer deletes this")
    up.sync()
    peer.sync()
    assert files(peer) == files(up)  # upload does push
    before = tree(up.root)
    peer.write("both.txt", "version of peer", mtime=T1)
    peer.write("new.txt", "new file of peer")
    (peer.root / "gone.txt").unlink()
    peer.sync()
    up.sync()
    assert tree(up.root) == before


def test_download_mode_never_pushes(cluster: Cluster) -> None:
    down = cluster.add("down", extra='mode = "download"')
    peer = cluster.add("peer")
    down.write("local-only.txt", "never leaves this client")
    down.sync()
    assert update_objects(cluster) == set()
    peer.write("p.txt", "from peer")
    peer.sync()
    published = update_objects(cluster)
    assert published
    down.write("p2.txt", "another local file")
    down.sync()
    assert (down.root / "p.txt").read_text() == "from peer"
    assert update_objects(cluster) <= published  # down added nothing (only collected)
    peer.sync()
    assert set(files(peer)) == {"p.txt"}


def test_download_mode_gives_the_path_to_the_relayed_version_over_a_local_file_never_pushed(
    cluster: Cluster,
) -> None:
    peer = cluster.add("peer")
    down = cluster.add("down", extra='mode = "download"')
    peer.write("p.txt", "from peer, older", mtime=T0)
    down.write("p.txt", "local file of down, later", mtime=T1)  # would win if it were pushed
    peer.sync()
    down.sync()
    copy = "p.sync-conflict-20231114-221320-down.txt"
    assert files(down) == {"p.txt": b"from peer, older", copy: b"local file of down, later"}
    # the path's version is in down's index: a deletion there reaches the others once it pushes
    (down.root / "p.txt").unlink()
    down.config.write_text(down.config.read_text().replace('"download"', '"shared"'))
    down.sync()
    peer.sync()
    assert files(peer) == files(down) == {copy: b"local file of down, later"}


def test_conservative_mode_never_overwrites_a_local_file_that_did_not_come_from_the_relay(
    cluster: Cluster,
) -> None:
    cons = cluster.add("cons", extra='mode = "conservative"')
    peer = cluster.add("peer")
    cons.write("mine.txt", "conservative's own version", mtime=T0)
    cons.sync()  # pushes it: conservative clients are pushers
    peer.sync()
    assert (peer.root / "mine.txt").read_text() == "conservative's own version"
    peer.write("mine.txt", "peer's edit", mtime=T1)
    peer.write("fresh.txt", "new file")
    peer.write("relayed.txt", "version 1", mtime=T0)
    peer.sync()
    cons.sync()
    assert (cons.root / "mine.txt").read_text() == "conservative's own version"
    assert (cons.root / "fresh.txt").read_text() == "new file"
    assert (cons.root / "relayed.txt").read_text() == "version 1"
    # a file that came from the relay and is unchanged since is updated
    peer.write("relayed.txt", "version 2", mtime=T1)
    peer.sync()
    cons.sync()
    assert (cons.root / "relayed.txt").read_text() == "version 2"
    assert (cons.root / "mine.txt").read_text() == "conservative's own version"


def test_conservative_mode_keeps_a_relayed_file_modified_locally(cluster: Cluster) -> None:
    cons = cluster.add("cons", extra='mode = "conservative"')
    peer = cluster.add("peer")
    peer.write("doc.txt", "version 1", mtime=T0)
    peer.sync()
    cons.sync()
    cons.write("doc.txt", "local edit of conservative", mtime=T0 + 10)
    peer.write("doc.txt", "version 2, newer", mtime=T1)
    peer.sync()
    cons.sync()
    assert (cons.root / "doc.txt").read_text() == "local edit of conservative"
    assert [p for p in files(cons) if "sync-conflict" in p] == []


# -- filters --------------------------------------------------------------------------------


def pushed_set(cluster: Cluster, extra: str, paths: list[str]) -> set[str]:
    """Paths a client with ``extra`` settings pushes to a client without filters."""
    sender, receiver = cluster.add("sender", extra=extra), cluster.add("receiver")
    for path in paths:
        sender.write(path, f"content of {path}")
    sender.sync()
    receiver.sync()
    return set(files(receiver))


def test_include_keeps_only_matching_names(cluster: Cluster) -> None:
    got = pushed_set(
        cluster,
        'include = ["*.txt", "/^IMG_[0-9]+\\\\.jpg$/"]',
        ["a.txt", "sub/b.txt", "a.txt.bak", "IMG_0012.jpg", "IMG_x.jpg", "photo.jpg"],
    )
    assert got == {"a.txt", "sub/b.txt", "IMG_0012.jpg"}


def test_exclude_wildcards_match_whole_names_and_regexes_are_searched(cluster: Cluster) -> None:
    got = pushed_set(
        cluster,
        'exclude = ["*.tmp", "draft", "/~$/", "/secret/"]',
        [
            "a.tmp",
            "a.tmp.txt",
            "draft",
            "draft.txt",
            "notes.txt~",
            "x~y.txt",
            "top-secret-plan.txt",
            "sec.txt",
        ],
    )
    assert got == {"a.tmp.txt", "draft.txt", "x~y.txt", "sec.txt"}


def test_exclude_also_filters_what_a_puller_accepts(cluster: Cluster) -> None:
    alice = cluster.add("alice")
    bob = cluster.add("bob", extra='exclude = ["*.tmp"]')
    alice.write("keep.txt", "k")
    alice.write("scratch.tmp", "s")
    alice.sync()
    bob.sync()
    assert set(files(bob)) == {"keep.txt"}


def test_file_types_compare_the_last_extension_case_insensitively(cluster: Cluster) -> None:
    got = pushed_set(
        cluster,
        'file_types = ["jpg", ".PNG"]',
        ["a.jpg", "b.png", "c.PNG", "d.txt", "e.jpg.txt", "f.txt.jpg", "jpg", "dir/g.jpg"],
    )
    assert got == {"a.jpg", "b.png", "c.PNG", "f.txt.jpg", "dir/g.jpg"}


def test_include_directories_include_their_whole_subtree(cluster: Cluster) -> None:
    got = pushed_set(
        cluster,
        'include_directories = ["photos"]',
        ["photos/a.jpg", "photos/2023/b.jpg", "docs/c.txt", "other/photos/d.jpg"],
    )
    assert got == {"photos/a.jpg", "photos/2023/b.jpg"}


def test_exclude_directories_match_folder_names_anywhere(cluster: Cluster) -> None:
    got = pushed_set(
        cluster,
        'exclude_directories = ["cache", "/^build$/"]',
        ["cache/a.txt", "src/cache/b.txt", "build/c.txt", "builder/d.txt", "src/e.txt", "f.txt"],
    )
    assert got == {"builder/d.txt", "src/e.txt", "f.txt"}


def test_hidden_files_and_folders_are_never_synced(cluster: Cluster) -> None:
    got = pushed_set(
        cluster,
        "",
        [".hidden", ".config/x.txt", "a/.b/c.txt", "a/.d", "a/visible.txt", "visible.txt"],
    )
    assert got == {"a/visible.txt", "visible.txt"}


# -- pullers: space is reclaimed once enough pullers acknowledged ----------------------------


@pytest.mark.parametrize("pullers", [1, 2, 3])
def test_update_is_deleted_right_after_the_last_required_puller_acknowledged(
    cluster: Cluster, pullers: int
) -> None:
    extra = f"pullers = {pullers}"
    alice = cluster.add("alice", extra=extra)
    clients = [cluster.add(f"puller{i}", extra=extra) for i in range(pullers)]
    alice.write("a.txt", "one")
    alice.write("b.bin", os.urandom(5000))
    alice.sync()
    published = update_objects(cluster)
    assert len(published) == 2  # one manifest, one pack
    for i, puller in enumerate(clients):
        alice.sync()  # the pusher's rounds never collect what too few acknowledged
        assert update_objects(cluster) == published
        puller.sync()
        assert files(puller) == files(alice)
        if i < pullers - 1:
            assert update_objects(cluster) == published, f"collected after puller {i + 1}"
            puller.sync()  # the same puller again does not count twice
            assert update_objects(cluster) == published
    assert update_objects(cluster) == set()


# -- quota ----------------------------------------------------------------------------------


def test_push_over_quota_sends_what_fits_and_finishes_once_space_is_reclaimed(
    cluster: Cluster,
) -> None:
    quota = 100_000
    alice = cluster.add("alice", extra='quota = "100KB"')
    bob = cluster.add("bob")
    contents = {f"f{i}.bin": os.urandom(30_000) for i in range(5)}
    for name, content in contents.items():
        alice.write(name, content)
    first = alice.sync(check=False)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "2 file(s) wait for quota" in first.stdout
    assert sum(map(len, relay_objects(cluster, "updates", "data").values())) <= quota
    bob.sync()
    assert len(files(bob)) == 3
    assert update_objects(cluster) == set()  # bob acknowledged: space reclaimed
    alice.sync()  # the rest fits now: in sync, exit 0
    assert sum(map(len, relay_objects(cluster, "updates", "data").values())) <= quota
    bob.sync()
    assert files(bob) == contents


# -- conflicts ------------------------------------------------------------------------------


def test_concurrent_edits_keep_both_versions_with_the_older_as_conflict_copy(
    cluster: Cluster,
) -> None:
    alice, bob = cluster.add("alice"), cluster.add("bob")
    alice.write("notes.txt", "original", mtime=T0)
    alice.sync()
    bob.sync()
    alice.write("notes.txt", "alice's edit", mtime=T1)  # older: loses the name
    bob.write("notes.txt", "bob's edit, made later", mtime=T1 + 100)
    alice.sync()
    bob.sync()
    alice.sync()
    bob.sync()
    alice.sync()
    copy = "notes.sync-conflict-20231114-221320-alice.txt"
    for client in (alice, bob):
        assert files(client) == {"notes.txt": b"bob's edit, made later", copy: b"alice's edit"}
    assert tree(alice.root) == tree(bob.root)  # contents and mtimes


def test_same_new_file_created_on_two_clients_keeps_both_versions(cluster: Cluster) -> None:
    alice, bob = cluster.add("alice"), cluster.add("bob")
    alice.write("todo", "alice's list", mtime=T1)
    bob.write("todo", "bob's list", mtime=T1 + 60)
    alice.sync()
    bob.sync()
    alice.sync()
    bob.sync()
    assert files(alice) == {
        "todo": b"bob's list",
        "todo.sync-conflict-20231114-221320-alice": b"alice's list",
    }
    assert tree(alice.root) == tree(bob.root)


@pytest.mark.parametrize("newer", ["bob", "carol"])
def test_conflict_copy_is_identical_on_every_client_after_convergence(
    cluster: Cluster, newer: str
) -> None:
    """Alice applies both concurrent edits, in an order she does not choose: she names the
    loser after its author like the two authors do."""
    # two pullers: nobody misses an update (a client that did would wait for a re-send)
    alice, bob, carol = (cluster.add(n, extra="pullers = 2") for n in ("alice", "bob", "carol"))
    alice.write("dir/plan.md", "v0", mtime=T0)
    for client in (alice, bob, carol):
        client.sync()
    older = "carol" if newer == "bob" else "bob"
    cluster.clients[newer].write("dir/plan.md", f"{newer}'s newer edit", mtime=T1 + 500)
    cluster.clients[older].write("dir/plan.md", f"{older}'s edit", mtime=T1)
    for _ in range(3):
        for client in (bob, carol, alice):
            client.sync()
    expected = {
        "dir/plan.md": f"{newer}'s newer edit".encode(),
        f"dir/plan.sync-conflict-20231114-221320-{older}.md": f"{older}'s edit".encode(),
    }
    for client in (alice, bob, carol):
        assert files(client) == expected, client.name
    assert tree(alice.root) == tree(bob.root) == tree(carol.root)


# -- deletions ------------------------------------------------------------------------------


def test_deletion_propagates(cluster: Cluster) -> None:
    alice, bob = cluster.add("alice"), cluster.add("bob")
    alice.write("a.txt", "a")
    alice.write("dir/b.txt", "b")
    alice.sync()
    bob.sync()
    (alice.root / "dir" / "b.txt").unlink()
    alice.sync()
    bob.sync()
    assert set(files(bob)) == {"a.txt"}


def test_tombstone_does_not_delete_a_file_modified_since(cluster: Cluster) -> None:
    alice, bob = cluster.add("alice"), cluster.add("bob")
    alice.write("a.txt", "v1", mtime=T0)
    alice.sync()
    bob.sync()
    (alice.root / "a.txt").unlink()
    alice.sync()
    bob.write("a.txt", "bob's edit", mtime=T1)
    bob.sync()
    assert (bob.root / "a.txt").read_text() == "bob's edit"
    alice.sync()  # the edited version comes back
    assert (alice.root / "a.txt").read_text() == "bob's edit"


def test_propagate_deletions_off_keeps_files_on_both_sides(cluster: Cluster) -> None:
    keeper = cluster.add("keeper", extra="propagate_deletions = false")
    other = cluster.add("other")
    keeper.write("k.txt", "keeper deletes this locally")
    other.write("o.txt", "other deletes this")
    keeper.sync()
    other.sync()
    keeper.sync()
    (keeper.root / "k.txt").unlink()
    (other.root / "o.txt").unlink()
    keeper.sync()  # does not send its deletion
    other.sync()  # sends its deletion
    keeper.sync()  # does not apply it
    assert (other.root / "k.txt").read_text() == "keeper deletes this locally"
    assert (keeper.root / "o.txt").read_text() == "other deletes this"


def test_mass_deletion_stops_until_forced(cluster: Cluster) -> None:
    alice, bob = cluster.add("alice"), cluster.add("bob")
    for i in range(12):
        alice.write(f"f{i:02d}.txt", f"file {i}")
    alice.sync()
    bob.sync()
    for i in range(10):
        (alice.root / f"f{i:02d}.txt").unlink()
    alice.write("new.txt", "still pushed")
    run = alice.sync(check=False)
    assert run.returncode == 1
    assert "--force" in one_error(run)
    bob.sync()
    assert len(files(bob)) == 13  # nothing deleted, other changes went through
    assert (bob.root / "new.txt").read_text() == "still pushed"
    again = alice.sync(check=False)  # still waiting for --force
    assert again.returncode == 1 and "--force" in again.stderr
    bob.sync()
    assert len(files(bob)) == 13
    alice.sync("--force")
    bob.sync()
    assert set(files(bob)) == {"f10.txt", "f11.txt", "new.txt"}
    assert alice.sync().returncode == 0


def test_deleting_a_few_of_many_files_needs_no_force(cluster: Cluster) -> None:
    alice, bob = cluster.add("alice"), cluster.add("bob")
    for i in range(12):
        alice.write(f"f{i:02d}.txt", f"file {i}")
    alice.sync()
    bob.sync()
    for i in range(5):
        (alice.root / f"f{i:02d}.txt").unlink()
    alice.sync()
    bob.sync()
    assert len(files(bob)) == 7


# -- wrong passphrase -----------------------------------------------------------------------


def test_wrong_passphrase_fails_with_one_line_and_transfers_nothing(cluster: Cluster) -> None:
    alice = cluster.add("alice")
    alice.write("a.txt", "alice's file")
    alice.sync()
    eve = cluster.add("eve", passphrase="not the passphrase")
    eve.write("e.txt", "would be pushed")
    objects = relay_objects(cluster)
    before = tree(eve.root)
    run = eve.sync(check=False)
    assert run.returncode != 0
    error = one_error(run)
    assert "passphrase" in error and str(relay_root(cluster)) in error
    assert relay_objects(cluster) == objects
    assert tree(eve.root) == before
