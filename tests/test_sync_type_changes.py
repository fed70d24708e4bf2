"""A path that changes type: a file replaced by a folder of the same name, or a folder by a
file. The update that carries the change deletes the old type before it places the new one, so
every client follows in one round; a clash it cannot resolve refuses the whole update before
anything of it is placed."""

from __future__ import annotations

import shutil

from .clients import Cluster, tree, versions


def test_a_file_replaced_by_a_folder_of_the_same_name_follows_in_one_round(
    cluster: Cluster,
) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    a.write("notes", "a file at first")
    a.write("other.txt", "unchanged")
    a.sync()
    b.sync()
    (a.root / "notes").unlink()
    a.write("notes/today.txt", "now a folder")
    a.sync()
    run = b.sync()
    assert "Traceback" not in run.stderr and run.stderr.strip() == "", run.stderr
    assert sorted(tree(b.root)) == ["notes/today.txt", "other.txt"]
    assert (b.root / "notes/today.txt").read_text() == "now a folder"
    assert list(versions(b.root).values()) == [b"a file at first"]  # the old file is kept
    assert tree(a.root) == tree(b.root)


def test_a_folder_replaced_by_a_file_of_the_same_name_follows_in_one_round(
    cluster: Cluster,
) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    a.write("build/one.o", "1")
    a.write("build/two.o", "2")
    a.sync()
    b.sync()
    shutil.rmtree(a.root / "build")
    a.write("build", "now a file")
    a.sync()
    run = b.sync()
    assert run.stderr.strip() == "", run.stderr
    assert tree(b.root) == tree(a.root)
    assert (b.root / "build").read_text() == "now a file"
    assert sorted(versions(b.root).values()) == [b"1", b"2"]


def test_a_folder_holding_local_files_is_never_replaced_the_file_comes_as_a_copy(
    cluster: Cluster,
) -> None:
    a = cluster.add("alice")
    b = cluster.add("bob", extra='exclude = ["*.tmp"]')
    a.write("first.txt", "1")
    a.write("report", "a file named like bob's folder", mtime=1_700_000_000)
    b.write("report/draft.tmp", "bob's excluded file")  # never synced, so never deleted
    a.sync()
    run = b.sync()
    assert run.stderr.strip() == "", run.stderr
    assert (b.root / "report/draft.tmp").read_text() == "bob's excluded file"
    assert (b.root / "first.txt").read_text() == "1"
    (copy,) = [p for p in tree(b.root) if p.startswith("report.sync-conflict-")]
    assert (b.root / copy).read_text() == "a file named like bob's folder"
    b.sync()  # bob announces the copy
    a.sync()  # alice keeps her file and gets the copy: both versions everywhere
    assert (a.root / copy).read_text() == (a.root / "report").read_text()


def test_a_file_and_a_folder_made_under_one_name_on_two_clients_converge_keeping_both(
    cluster: Cluster,
) -> None:
    """Alice makes a file ``plans``, Bob a folder ``plans/``, concurrently: every client ends
    with Bob's folder and Alice's file as a conflict copy beside it, whatever the order in
    which the updates reach it; no update is refused, none waits forever."""
    a, b, c = (cluster.add(name, extra="pullers = 2") for name in ("alice", "bob", "carol"))
    for client in (a, b, c):
        client.sync()
    a.write("plans", "alice's file", mtime=1_700_000_000)
    b.write("plans/q1.txt", "bob's folder")
    a.sync()
    c.sync()  # carol has alice's file before bob's folder reaches her
    b.sync()  # bob has his folder when alice's file reaches him
    for _ in range(3):
        for client in (a, b, c):
            run = client.sync()
            assert "Traceback" not in run.stderr
    trees = [tree(client.root) for client in (a, b, c)]
    assert trees[0] == trees[1] == trees[2]
    final = trees[0]
    assert final["plans/q1.txt"][0] == b"bob's folder"
    copies = [p for p in final if p.startswith("plans.sync-conflict-")]
    assert len(copies) == 1 and copies[0].endswith("-alice"), copies
    assert final[copies[0]][0] == b"alice's file"
