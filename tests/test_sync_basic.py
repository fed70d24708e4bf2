"""A first end-to-end check: two escale processes sync through a file relay."""

from __future__ import annotations

from .clients import Cluster, same_tree, tree


def test_two_clients_end_byte_identical_with_matching_mtimes(cluster: Cluster) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    a.write("docs/a.txt", "from alice", mtime=1_600_000_000.123456789)
    a.write("empty", b"")
    a.write("deep/er/ünï cödé name.bin", bytes(range(256)) * 100)
    b.write("b.txt", "from bob")
    a.sync()
    b.sync()
    a.sync()
    assert same_tree(a.root, b.root)
    assert tree(a.root) == tree(b.root)
    assert set(tree(a.root)) == {"docs/a.txt", "empty", "deep/er/ünï cödé name.bin", "b.txt"}


def test_folders_emptied_by_a_deletion_are_removed_on_the_other_client(cluster: Cluster) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    a.write("x/y/z.txt", "deep")
    a.write("x/keep.txt", "stays")
    a.sync()
    b.sync()
    (a.root / "x" / "y" / "z.txt").unlink()
    (a.root / "x" / "y").rmdir()
    a.sync()
    b.sync()
    assert not (b.root / "x" / "y").exists() and (b.root / "x" / "keep.txt").exists()
    assert same_tree(a.root, b.root)
