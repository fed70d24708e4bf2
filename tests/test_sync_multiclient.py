"""Two and three real escale processes syncing through one ``file://`` relay: additions,
edits, deletions, odd names, a 100 MiB file, space reclaimed once ``pullers`` clients
acknowledged, and a client joining after the history was garbage-collected."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from .clients import Client, Cluster, same_tree, tree

MIB = 1 << 20
T0 = 1_600_000_000_000_000_000  # a fixed mtime in nanoseconds


def put(client: Client, rel: str, data: bytes | str, mtime_ns: int) -> None:
    """Write a file with an exact nanosecond mtime."""
    path = client.write(rel, data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def converge(clients: Sequence[Client], max_rounds: int = 4) -> dict[str, tuple[bytes, int]]:
    """Sync every client in turn until all trees (contents and mtimes) are equal."""
    for _ in range(max_rounds):
        for client in clients:
            client.sync()
        trees = [tree(c.root) for c in clients]
        if all(t == trees[0] for t in trees):
            for other in clients[1:]:
                assert same_tree(clients[0].root, other.root)
            return trees[0]
    differing = {c.name: sorted(tree(c.root)) for c in clients}
    raise AssertionError(f"no convergence after {max_rounds} rounds: {differing}")


def settle_in_sync(clients: Sequence[Client], max_rounds: int = 4) -> None:
    """Sync in turn until one whole pass ends in sync everywhere with equal trees; a client
    may only be out of sync while it waits for a full re-send."""
    for _ in range(max_rounds):
        codes = []
        for client in clients:
            run = client.sync(check=False)
            if run.returncode != 0:
                assert "waiting for a full re-send" in run.stdout, run.stdout + run.stderr
            codes.append(run.returncode)
        trees = [tree(c.root) for c in clients]
        if not any(codes) and all(t == trees[0] for t in trees):
            return
    raise AssertionError(f"not in sync after {max_rounds} passes")


def relay_updates(cluster: Cluster) -> list[str]:
    """The update manifests currently on the relay (their relay names)."""
    root = Path(cluster.relay.removeprefix("file://"))
    folder = root / "updates"
    if not folder.exists():
        return []
    return sorted(
        p.relative_to(root).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )


ODD_NAMES: dict[str, bytes | str] = {
    "with space.txt": "spaces in the name",
    "ünï cödé/日本語 ファイル.txt": "unicode folder and name",
    "emoji 🎉/party 🎈.md": "# emoji",
    "a/b/c/d/e/deep.bin": bytes(range(256)) * 33,
    "empty": b"",
    "nested/empty file": b"",
}


def test_two_clients_propagate_additions_edits_and_deletions_with_exact_mtimes(
    cluster: Cluster,
) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    for i, (rel, data) in enumerate(ODD_NAMES.items()):
        put(a, rel, data, T0 + i * 1_000_000_007)
    put(b, "bob/notes.txt", "bob's notes", T0 + 123_456_789)
    put(b, "bob/sub/more.txt", "more", T0 + 987_654_321)

    first = converge([a, b])
    assert set(first) == set(ODD_NAMES) | {"bob/notes.txt", "bob/sub/more.txt"}
    assert first["ünï cödé/日本語 ファイル.txt"] == (
        b"unicode folder and name",
        T0 + 1_000_000_007,
    )
    assert first["empty"][0] == b""

    # edits on both sides (different files), deletions on both sides, new nested files
    put(a, "with space.txt", "edited by alice, longer now", T0 + 5_000_000_001)
    put(b, "a/b/c/d/e/deep.bin", b"\x00" * 5000, T0 + 6_000_000_003)
    put(b, "empty", "no longer empty", T0 + 7_000_000_005)
    (a.root / "bob/notes.txt").unlink()
    (b.root / "emoji 🎉/party 🎈.md").unlink()
    put(a, "new/from alice/x.txt", "x", T0 + 8_000_000_009)
    (a.root / "moved/here").mkdir(parents=True)
    os.rename(a.root / "a/b/c/d/e/deep.bin", a.root / "moved/here/deep.bin")  # a move
    put(b, "new/from bob/y.txt", "y", T0 + 9_000_000_011)

    second = converge([a, b])
    assert "bob/notes.txt" not in second
    assert "emoji 🎉/party 🎈.md" not in second
    assert second["with space.txt"] == (b"edited by alice, longer now", T0 + 5_000_000_001)
    assert second["a/b/c/d/e/deep.bin"] == (b"\x00" * 5000, T0 + 6_000_000_003)
    assert second["moved/here/deep.bin"] == (bytes(range(256)) * 33, T0 + 3 * 1_000_000_007)
    assert second["empty"] == (b"no longer empty", T0 + 7_000_000_005)
    assert second["new/from alice/x.txt"][0] == b"x"
    assert second["new/from bob/y.txt"][0] == b"y"
    assert not any("sync-conflict" in p for p in second)


def test_three_clients_with_two_pullers_all_receive_every_change(cluster: Cluster) -> None:
    extra = "pullers = 2"
    clients = [cluster.add(n, extra=extra) for n in ("ann", "ben", "cat")]
    for n, client in enumerate(clients):
        for i in range(5):
            put(client, f"{client.name}/file{i}.txt", f"{client.name} {i}" * (i + 1), T0 + n + i)
        put(client, f"shared/{client.name} ü.bin", os.urandom(3000), T0 + 100 + n)
    first = converge(clients)
    assert len(first) == 3 * 6

    ann, ben, cat = clients
    put(ann, "ben/file0.txt", "ann edited ben's file", T0 + 1000)
    (ben.root / "cat/file1.txt").unlink()
    put(cat, "ann/file2.txt", b"", T0 + 2000)
    put(cat, "deeper/still/new.txt", "from cat", T0 + 3000)
    second = converge(clients)
    assert second["ben/file0.txt"] == (b"ann edited ben's file", T0 + 1000)
    assert "cat/file1.txt" not in second
    assert second["ann/file2.txt"] == (b"", T0 + 2000)
    assert second["deeper/still/new.txt"] == (b"from cat", T0 + 3000)
    assert len(second) == 3 * 6


def test_update_stays_on_relay_until_two_pullers_acknowledged_it(cluster: Cluster) -> None:
    extra = "pullers = 2"
    a, b, c = (cluster.add(n, extra=extra) for n in ("a", "b", "c"))
    for client in (a, b, c):  # every client known to the relay, nothing to send
        client.sync()
    put(a, "doc.txt", "for both", T0)
    a.sync()
    assert len(relay_updates(cluster)) == 1
    b.sync()
    a.sync()
    assert len(relay_updates(cluster)) == 1, "collected after one of two pullers"
    assert not (c.root / "doc.txt").exists()
    c.sync()
    assert (c.root / "doc.txt").read_bytes() == b"for both"
    a.sync()
    assert relay_updates(cluster) == []
    assert tree(a.root) == tree(b.root) == tree(c.root)


def test_three_clients_stop_holding_relay_space_once_in_sync(cluster: Cluster) -> None:
    clients = [cluster.add(n, extra="pullers = 2") for n in ("x", "y", "z")]
    for n, client in enumerate(clients):
        put(client, f"{client.name}.txt", client.name * 100, T0 + n)
    converge(clients)
    for client in clients:
        client.sync()
    assert relay_updates(cluster) == []


def _write_random(path: Path, size: int, mtime_ns: int) -> str:
    """Write ``size`` random bytes in 1 MiB blocks; return the SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for _ in range(size // MIB):
            block = os.urandom(MIB)
            digest.update(block)
            out.write(block)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def test_100_mib_file_reaches_two_other_clients_byte_identical_with_its_mtime(
    cluster: Cluster,
) -> None:
    clients = [cluster.add(n, extra="pullers = 2") for n in ("big", "one", "two")]
    big, one, two = clients
    mtime = T0 + 424_242_424
    expected = _write_random(big.root / "media/video 100.bin", 100 * MIB, mtime)
    put(big, "media/small.txt", "beside the big one", T0)
    for client in clients:
        client.sync()
    for client in (one, two):
        copy = client.root / "media/video 100.bin"
        assert copy.stat().st_size == 100 * MIB
        assert copy.stat().st_mtime_ns == mtime
        assert _sha256(copy) == expected
        assert same_tree(big.root, client.root)
        assert not [p for p in client.root.rglob(".escale-tmp-*")]
    big.sync()
    assert relay_updates(cluster) == []


def test_new_client_joining_after_updates_were_collected_gets_current_files(
    cluster: Cluster,
) -> None:
    a, b = cluster.add("old-a"), cluster.add("old-b")
    for i in range(6):
        put(a, f"photos/{i:02d}.jpg", os.urandom(2000 + i), T0 + i)
    put(b, "from b/readme.txt", "b was here", T0 + 50)
    converge([a, b])
    put(a, "photos/00.jpg", b"edited later", T0 + 99)
    (a.root / "photos/01.jpg").unlink()
    put(b, "from b/later.txt", "later", T0 + 77)
    converge([a, b])
    a.sync()
    b.sync()
    assert relay_updates(cluster) == [], "history must be gone before the newcomer joins"

    c = cluster.add("newcomer")
    first = c.sync(check=False)
    assert first.returncode == 1, "a newcomer is not in sync before the re-sends arrive"
    assert "waiting for a full re-send from old-a, old-b" in first.stdout
    a.sync()
    b.sync()  # both old clients re-send everything they have
    c.sync()  # in sync now: exit 0
    assert tree(c.root) == tree(a.root)
    assert "photos/01.jpg" not in tree(c.root)
    assert tree(c.root)["photos/00.jpg"] == (b"edited later", T0 + 99)
    # with pullers = 1 a re-send is collected once the newcomer has it, so the other old
    # client may ask for a re-send of what it missed; everything still settles
    settle_in_sync([a, b, c])
    assert relay_updates(cluster) == []


def test_changes_built_on_each_other_reach_a_later_client_in_order(cluster: Cluster) -> None:
    # pullers = 2 keeps every update on the relay until the third client read it
    a, b = cluster.add("chain-a", extra="pullers = 2"), cluster.add("chain-b", extra="pullers = 2")
    put(a, "one.txt", "one by a", T0 + 1)
    a.sync()
    put(b, "two.txt", "two by b", T0 + 2)
    b.sync()  # pushes two.txt, pulls one.txt
    put(b, "one.txt", "one edited by b on top of a", T0 + 3)
    b.sync()
    a.sync()  # pulls two.txt and b's edit of one.txt
    put(a, "two.txt", "two edited by a on top of b", T0 + 4)
    a.sync()
    # whatever the order of the two clients' ids, the later versions win, without conflicts
    c = cluster.add("chain-c", extra="pullers = 2")
    c.sync()
    assert tree(c.root) == {
        "one.txt": (b"one edited by b on top of a", T0 + 3),
        "two.txt": (b"two edited by a on top of b", T0 + 4),
    }
    final = converge([a, b, c])
    assert set(final) == {"one.txt", "two.txt"}


def test_full_resend_for_a_newcomer_never_replaces_a_newer_version(cluster: Cluster) -> None:
    a = cluster.add("stale-a", extra="pullers = 1")
    b = cluster.add("fresh-b", extra="pullers = 2")
    put(a, "f.txt", "version 0", T0)
    a.sync()
    b.sync()  # a's update is collected: one puller acknowledged it
    put(b, "f.txt", "version 1, newer", T0 + 1_000_000_000)
    b.sync()
    c = cluster.add("newcomer-c", extra="pullers = 2")
    waiting = c.sync(check=False)  # gets b's version 1, asks a for everything
    assert "waiting for a full re-send from stale-a" in waiting.stdout
    a.sync()  # re-sends what it has (version 0, not yet replaced) for c, then pulls version 1
    final = converge([b, c, a])
    assert final == {"f.txt": (b"version 1, newer", T0 + 1_000_000_000)}
